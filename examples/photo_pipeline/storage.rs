//! A stand-in for a remote photo storage service that times out now and then.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;

use resilience::retry;

use crate::error::PhotoError;
use crate::photos::{Photo, checksum, mix};

/// Stores uploaded photos in a directory, after timing out a seeded number of times per photo.
pub struct Storage {
    dir: PathBuf,
    seed: u64,
    attempts: RefCell<HashMap<String, u32>>,
}

impl Storage {
    pub fn new(dir: PathBuf, seed: u64) -> Result<Self, PhotoError> {
        fs::create_dir_all(&dir).map_err(PhotoError::io(&dir))?;
        Ok(Storage { dir, seed, attempts: RefCell::default() })
    }

    /// Uploads one photo and returns the bytes stored.
    ///
    /// `#[retry]` runs this body again while it returns an error that `PhotoError`'s `Classify`
    /// says is `retry` (here `UploadTimeout`), up to 3 more times, waiting about 20 ms, 40 ms,
    /// 80 ms in between (exponential backoff with ±50 % jitter). Any other error is returned at
    /// once. The call counts under the name "upload" in `RetryManager::global().statistics()`.
    #[retry(max = 3, initial = "20ms", name = "upload")]
    pub fn upload(&self, photo: &Photo, bytes: &[u8]) -> Result<u64, PhotoError> {
        let attempt = {
            let mut attempts = self.attempts.borrow_mut();
            let n = attempts.entry(photo.name.clone()).or_default();
            *n += 1;
            *n
        };
        if attempt <= self.timeouts(&photo.name) {
            return Err(PhotoError::UploadTimeout { photo: photo.name.clone(), attempt });
        }
        // Writing the same photo twice (after a crash, say) stores the same bytes: uploads are
        // idempotent, which is what at-least-once processing needs.
        let path = self.dir.join(&photo.name);
        fs::write(&path, bytes).map_err(PhotoError::io(path))?;
        Ok(bytes.len() as u64)
    }

    /// How many times in a row the service times out on this photo: none for about 90 % of
    /// the photos, 1, 2 or 3 times for the others, so three retries always get through.
    fn timeouts(&self, name: &str) -> u32 {
        match mix(self.seed ^ checksum(name.as_bytes())) % 100 {
            0..6 => 1,
            6..9 => 2,
            9 => 3,
            _ => 0,
        }
    }
}
