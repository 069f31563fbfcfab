use resilience::Checkpointable;

#[derive(serde::Serialize, serde::Deserialize, Checkpointable)]
enum Phase {
    #[checkpoint(opaque)]
    Scanning { seen: u64 },
    Copying(#[checkpoint(cursor)] u64),
}

fn main() {}
