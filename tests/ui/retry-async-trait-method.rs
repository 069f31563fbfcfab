// The shape `#[async_trait]` gives a method before `#[retry]` sees it.
use std::future::Future;
use std::pin::Pin;

use resilience::retry;

trait Fetch {
    fn fetch<'a>(&'a self) -> Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send + 'a>>;
}

struct Client;

impl Fetch for Client {
    #[retry(max = 3)]
    fn fetch<'a>(&'a self) -> Pin<Box<dyn Future<Output = Result<u32, std::io::Error>> + Send + 'a>> {
        Box::pin(async move {
            let __ret: Result<u32, std::io::Error> = { Ok(1) };
            __ret
        })
    }
}

fn main() {}
