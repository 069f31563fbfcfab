use resilience::Classify;

#[derive(Debug, Classify)]
enum ApiError {
    #[classify(retry, retry_after = wait)]
    RateLimited { delay: std::time::Duration },
}

fn main() {}
