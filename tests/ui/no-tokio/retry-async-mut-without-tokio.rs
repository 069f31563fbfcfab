use resilience::retry;

struct Uploader {
    sent: u32,
}

impl Uploader {
    #[retry(max = 2)]
    async fn upload(&mut self) -> Result<u32, std::io::Error> {
        self.sent += 1;
        Ok(self.sent)
    }
}

fn main() {
    let mut uploader = Uploader { sent: 0 };
    let _ = uploader.upload();
}
