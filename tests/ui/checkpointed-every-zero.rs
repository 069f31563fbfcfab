use resilience::{Error, checkpointed};

#[checkpointed(every = 0)]
fn import(items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    Ok(())
}

fn main() {}
