use resilience::{Error, checkpointed};

struct Settings {
    verbose: bool,
}

#[checkpointed(input = [items, settings])]
fn import(items: &[u64], settings: &Settings) -> Result<u64, Error> {
    let _ = settings.verbose;
    for _ in items {}
    Ok(0)
}

fn main() {}
