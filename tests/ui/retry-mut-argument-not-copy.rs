use resilience::retry;

#[retry(max = 2)]
fn send(mut buffer: Vec<u8>) -> Result<usize, std::io::Error> {
    buffer.push(b'\n');
    Ok(buffer.len())
}

fn main() {
    let _ = send(b"hi".to_vec());
}
