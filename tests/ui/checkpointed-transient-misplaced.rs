use resilience::{Error, checkpointed};

#[checkpointed]
fn import(items: &[u64]) -> Result<u64, Error> {
    #[checkpoint(transient)]
    for _ in items {}
    Ok(0)
}

fn main() {}
