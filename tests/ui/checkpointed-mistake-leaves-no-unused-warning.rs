use resilience::checkpointed;

#[checkpointed(id = "import-{batch}", evry = 10)]
fn import(batch: u32, items: &[u64]) -> Result<(), resilience::Error> {
    for _ in items {}
    Ok(())
}

fn main() {
    let _ = import(1, &[]);
}
