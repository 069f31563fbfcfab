use resilience::{Error, checkpointed};

#[checkpointed(state = items)]
fn import(items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    Ok(())
}

fn main() {}
