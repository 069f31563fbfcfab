use resilience::retry;

#[retry(max = 3)]
fn fetch() -> Option<u8> {
    Some(1)
}

fn main() {
    let _ = fetch();
}
