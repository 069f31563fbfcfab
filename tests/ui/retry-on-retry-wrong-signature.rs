use resilience::retry;

#[derive(Debug)]
struct Busy;

fn log_retry(_: &Busy) {}

#[retry(on_retry = log_retry)]
fn fetch() -> Result<u32, Busy> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
