use resilience::retry;

#[retry(multiplier = 0.5)]
fn fetch() -> Result<u8, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
