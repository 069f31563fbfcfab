use resilience::{Checkpointable, FailsafeManager, checkpointed};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize, Checkpointable)]
struct Progress {
    #[checkpoint(cursr)]
    done: u64,
}

// Uses the type as the state of a tracked loop: the derive's mistake stays the only error.
#[checkpointed(manager = store)]
fn import(store: &FailsafeManager, items: &[u64], progress: &mut Progress) -> Result<(), resilience::Error> {
    for _ in items {
        progress.done += 1;
    }
    Ok(())
}

fn main() {}
