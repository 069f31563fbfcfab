use resilience::{Error, checkpointed};

#[checkpointed]
fn import(items: &[u32], seen: &mut Vec<u32>, log: &mut String) -> Result<(), Error> {
    for &item in items {
        seen.push(item);
        log.push('.');
    }
    Ok(())
}

fn main() {}
