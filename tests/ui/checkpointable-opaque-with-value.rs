use resilience::{Checkpointable, FailsafeManager};

#[derive(serde::Serialize, serde::Deserialize)]
struct Foreign {
    at: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
struct Progress {
    #[checkpoint(opaque = "chrono")]
    started: Foreign,
}

// Uses of the type get no second error.
#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
struct Outer {
    runs: Vec<Progress>,
}

fn main() {
    let store = FailsafeManager::open("checkpoints").unwrap();
    let _ = store.load_checkpoint::<Progress>("import");
    let _ = Outer::SCHEMA;
}
