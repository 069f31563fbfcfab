use resilience::{Checkpointable, Error, checkpointed, protected};

#[derive(Default, serde::Serialize, serde::Deserialize, Checkpointable)]
struct Sum {
    sum: u64,
}

#[checkpointed(every = 10)]
#[protected(every = 10)]
fn sum(state: &mut Sum) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

#[protected(every = 10)]
#[resilience::checkpointed(every = 10)]
fn sum_again(state: &mut Sum) -> Result<u64, Error> {
    for item in 0..20u64 {
        state.sum += item;
    }
    Ok(state.sum)
}

fn main() {}
