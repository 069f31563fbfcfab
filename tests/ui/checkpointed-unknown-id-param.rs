use resilience::{Error, checkpointed};

#[checkpointed(id = "import-{btch}")]
fn import(batch: u32, items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    let _ = batch;
    Ok(())
}

fn main() {}
