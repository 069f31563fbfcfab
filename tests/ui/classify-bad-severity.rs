use resilience::Classify;

#[derive(Debug, Classify)]
#[classify(severity = "warn")]
struct Timeout;

fn main() {}
