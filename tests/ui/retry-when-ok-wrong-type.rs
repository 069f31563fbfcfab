use resilience::retry;

#[derive(Debug)]
struct Busy;

fn is_empty(body: &String) -> bool {
    body.is_empty()
}

#[retry(when_ok = is_empty)]
fn fetch() -> Result<u32, Busy> {
    Ok(1)
}

fn main() {
    let _ = fetch();
}
