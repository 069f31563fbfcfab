use resilience::retry;

type Status = std::fmt::Result;
type Count = std::num::NonZeroU32;

#[retry(max = 3)]
fn ok() -> Status {
    Ok(())
}

#[retry(max = 3)]
fn count() -> Count {
    Count::MIN
}

fn main() {
    let _ = (ok(), count());
}
