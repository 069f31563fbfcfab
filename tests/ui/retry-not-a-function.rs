use resilience::retry;

#[retry]
struct Fetcher;

fn main() {
    let _ = Fetcher;
}
