use resilience::Checkpointable;

#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
struct Progress {
    #[checkpoint(cursor)]
    done: String,
}

fn main() {}
