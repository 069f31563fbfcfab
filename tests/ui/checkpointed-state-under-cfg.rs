use resilience::{Checkpointable, Error, checkpointed};

#[derive(Default, serde::Serialize, serde::Deserialize, Checkpointable)]
struct Sum {
    sum: u64,
}

#[checkpointed(every = 10, state = state)]
fn sum(#[cfg(any())] state: &mut Sum) -> Result<u64, Error> {
    Ok(0)
}

fn main() {}
