use resilience::{Error, protected};

#[protected(backup = "data/photos.db", backup_missing = "ignore")]
fn import(items: &[u32]) -> Result<(), Error> {
    for _ in items {}
    Ok(())
}

fn main() {}
