use resilience::{Error, checkpointed};

#[checkpointed(evry = 10)]
fn import(items: &[u32], retries: &[u32]) -> Result<(), Error> {
    for _ in retries {}
    // The marker is removed even when the arguments are wrong: one error, not two.
    #[checkpoint]
    for _ in items {}
    Ok(())
}

fn main() {}
