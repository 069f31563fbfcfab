use resilience::Classify;

#[derive(Debug, Classify)]
enum FetchError {
    #[classify(code = "E1")]
    #[classify(code = "E2", retry, abort)]
    Timeout,
}

fn main() {}
