use resilience::Classify;

#[derive(Debug)]
struct Inner;

#[derive(Debug, Classify)]
enum Outer {
    #[classify(transparent)]
    Wrapped(Inner),
}

fn main() {}
