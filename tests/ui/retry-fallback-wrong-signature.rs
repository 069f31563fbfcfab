use resilience::retry;

#[derive(Debug)]
struct Busy;

fn cached(_: Busy) -> u32 {
    0
}

#[retry(fallback = cached)]
fn fetch() -> Result<u32, Busy> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
