use resilience::retry;

#[retry]
fn fetch() {
    println!("fetching");
}

fn main() {
    fetch();
}
