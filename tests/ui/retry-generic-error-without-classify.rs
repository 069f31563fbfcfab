use resilience::retry;

#[retry(max = 3)]
fn call<E: std::fmt::Debug>(make: impl Fn() -> E) -> Result<u32, E> {
    Err(make())
}

fn main() {
    let _ = call(|| "down");
}
