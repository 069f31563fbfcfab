use resilience::{Error, checkpointed};

#[checkpointed(input = [items, batch])]
fn import(items: &[u64]) -> Result<u64, Error> {
    for _ in items {}
    Ok(0)
}

#[checkpointed(input = all)]
fn import_all(items: &[u64]) -> Result<u64, Error> {
    for _ in items {}
    Ok(0)
}

#[checkpointed(on_input_change = "ignore")]
fn import_ignoring(items: &[u64]) -> Result<u64, Error> {
    for _ in items {}
    Ok(0)
}

fn main() {}
