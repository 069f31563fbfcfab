use resilience::{Error, checkpointed};

#[checkpointed]
fn sums(items: &[u64], names: &[String]) -> Result<u64, Error> {
    let mut sum = 0;
    let mut last = 0;
    let mut seen = Vec::new();
    let mut longest = String::new();
    let mut fine = 0;
    for (item, name) in items.iter().zip(names) {
        sum += item;
        last = *item;
        seen.push(*item);
        std::mem::swap(&mut longest, &mut name.clone());
        let fine = fine + 1;
        println!("{fine}");
    }
    fine += 1;
    Ok(sum + last + seen.len() as u64 + longest.len() as u64 + fine)
}

fn main() {}
