use resilience::retry;

struct Opaque;

#[retry(max = 3)]
fn fetch() -> Result<u8, Opaque> {
    Err(Opaque)
}

fn main() {
    let _ = fetch();
}
