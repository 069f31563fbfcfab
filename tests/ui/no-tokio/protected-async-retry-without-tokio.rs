use resilience::{Error, protected};

#[protected(retry(max = 2))]
async fn import(items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    Ok(())
}

fn main() {}
