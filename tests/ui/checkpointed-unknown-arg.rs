use resilience::{Error, checkpointed};

#[checkpointed(evry = 10)]
fn import(items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    Ok(())
}

fn main() {}
