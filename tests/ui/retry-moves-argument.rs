use resilience::retry;

#[retry(max = 2)]
fn send(payload: String) -> Result<usize, std::io::Error> {
    let owned: String = payload;
    Ok(owned.len())
}

fn main() {
    let _ = send(String::from("hi"));
}
