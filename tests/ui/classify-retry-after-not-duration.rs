use resilience::Classify;

#[derive(Debug, Classify)]
enum ApiError {
    #[classify(retry, retry_after = seconds)]
    RateLimited { seconds: u64 },
}

fn main() {}
