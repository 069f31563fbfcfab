use resilience::{Checkpointable, Error, checkpointed};

#[derive(Default, serde::Serialize, serde::Deserialize, Checkpointable)]
struct Sum {
    sum: u64,
}

#[tracing::instrument(skip_all)]
#[checkpointed(every = 10)]
fn sum(state: &mut Sum) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

fn main() {}
