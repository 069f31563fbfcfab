use resilience::protected;

#[protected(every = 0, backup_missing = "ignore", retry(maxx = 2))]
fn job() -> Result<(), resilience::Error> {
    Ok(())
}

fn main() {
    let _ = job();
}
