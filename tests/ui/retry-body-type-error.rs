use resilience::retry;

#[retry(max = 3)]
fn count(items: &[u8]) -> Result<u32, std::io::Error> {
    let total: u32 = items.len();
    Ok(total)
}

fn main() {
    let _ = count(&[1, 2]);
}
