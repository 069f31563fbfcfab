use resilience::{Error, checkpointed};

#[derive(Default)]
struct Progress {
    done: u64,
}

#[checkpointed(every = 10)]
async fn import(items: &[u32], progress: &mut Progress) -> Result<(), Error> {
    for _ in items {
        progress.done += 1;
    }
    Ok(())
}

fn main() {}
