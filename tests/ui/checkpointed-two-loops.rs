use resilience::{Error, checkpointed};

#[checkpointed]
fn import(batches: &[Vec<u32>], total: &mut u64) -> Result<(), Error> {
    for batch in batches {
        println!("{} items", batch.len());
    }
    for batch in batches {
        *total += batch.iter().map(|&x| u64::from(x)).sum::<u64>();
    }
    Ok(())
}

fn main() {}
