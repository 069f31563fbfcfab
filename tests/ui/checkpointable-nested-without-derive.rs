use std::collections::BTreeMap;

use resilience::Checkpointable;

#[derive(serde::Serialize, serde::Deserialize)]
struct Upload {
    bytes: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
struct Progress {
    #[checkpoint(cursor)]
    done: u64,
    uploads: BTreeMap<String, Vec<Upload>>,
}

fn main() {}
