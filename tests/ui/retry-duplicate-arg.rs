use resilience::retry;

#[retry(max = 3, initial = "10ms", max = 5)]
fn fetch() -> Result<u8, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
