use resilience::retry;

trait Job {
    type Error: std::fmt::Debug;

    fn error(&self) -> Self::Error;

    #[retry(max = 3)]
    fn run(&self) -> Result<u32, Self::Error> {
        Err(self.error())
    }
}

fn main() {}
