use resilience::retry;

#[derive(Debug)]
struct Busy;

#[async_trait::async_trait]
trait Counter {
    async fn bump(&mut self) -> Result<u32, Busy>;
}

struct Tally(u32);

#[async_trait::async_trait]
impl Counter for Tally {
    #[retry(max = 3)]
    async fn bump(&mut self) -> Result<u32, Busy> {
        self.0 += 1;
        Err(Busy)
    }
}

fn main() {}
