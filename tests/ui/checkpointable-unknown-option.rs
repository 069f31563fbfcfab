use resilience::Checkpointable;

#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
#[checkpoint(versoin = 2)]
struct Progress {
    #[checkpoint(cursr)]
    done: u64,
}

fn main() {}
