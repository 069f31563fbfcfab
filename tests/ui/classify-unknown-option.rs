use resilience::Classify;

#[derive(Debug, Classify)]
enum FetchError {
    #[classify(skip, categroy = "network")]
    Timeout,
}

fn main() {}
