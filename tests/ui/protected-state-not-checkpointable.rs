use resilience::{Error, protected};

#[derive(Default)]
struct Report {
    rows: u64,
}

#[protected(every = 5)]
fn nightly(tables: &[&str], report: &mut Report) -> Result<(), Error> {
    for _ in tables {
        report.rows += 1;
    }
    Ok(())
}

fn main() {}
