use resilience::{Classify, ErrorContext, ErrorHandler};

#[derive(Debug, thiserror::Error, Classify)]
enum FetchError {
    #[error("timed out")]
    #[classify(retyr)]
    Timeout,
}

fn main() {
    // Uses the type as `Classify`: the derive's mistake above stays the only error.
    let _ = ErrorHandler::new(10).handle_error(&FetchError::Timeout, ErrorContext::new());
}
