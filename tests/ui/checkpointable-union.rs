use resilience::Checkpointable;

#[derive(Checkpointable)]
union Bits {
    int: u64,
    float: f64,
}

fn main() {}
