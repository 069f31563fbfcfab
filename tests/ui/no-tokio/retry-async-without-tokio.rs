use resilience::retry;

#[retry(max = 2)]
async fn fetch() -> Result<u8, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
