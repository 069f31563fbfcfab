use resilience::Checkpointable;

#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
struct Progress {
    #[checkpoint(cursor)]
    done: u64,
    #[checkpoint(cursor)]
    seen: u64,
}

fn main() {}
