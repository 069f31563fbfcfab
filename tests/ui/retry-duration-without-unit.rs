use resilience::retry;

#[retry(max_delay = 500)]
fn fetch() -> Result<u8, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
