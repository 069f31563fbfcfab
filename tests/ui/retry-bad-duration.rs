use resilience::retry;

#[retry(initial = "2 sec")]
fn fetch() -> Result<u8, std::io::Error> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
