use resilience::checkpointed;

#[derive(Debug)]
struct ImportError;

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("import failed")
    }
}

#[checkpointed(every = 10)]
fn import(items: &[u32]) -> Result<(), ImportError> {
    for _ in items {}
    Ok(())
}

fn main() {}
