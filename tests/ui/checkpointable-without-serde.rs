use resilience::Checkpointable;

#[derive(Debug, Default, Checkpointable)]
struct Progress {
    #[checkpoint(cursor)]
    done: u64,
}

fn main() {}
