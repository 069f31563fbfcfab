use resilience::{Error, protected};

#[protected(retry(maxx = 3, initial = "1s"))]
fn import(items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    Ok(())
}

fn main() {}
