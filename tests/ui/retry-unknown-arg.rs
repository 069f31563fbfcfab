use resilience::retry;

#[retry(maxx = 3)]
fn fetch() -> Result<u8, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
