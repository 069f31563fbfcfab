//! The run section of a checkpoint record: what a `#[checkpointed]` run keeps besides the
//! user's state: the fingerprints of its inputs, and the items it skipped.
//!
//! ```text
//! version u8 (1) | skip_count u64 | input_count u16
//!     | input_count × (name_len u16 | name | fingerprint u64)
//!     | skipped_count u32
//!     | skipped_count × (position u64 | code_len u16 | code | message_len u32 | message)
//! ```
//! Little-endian, inside the record's checksum. Decoding checks every length against the
//! bytes that are left, so a forged count costs nothing.

use std::collections::VecDeque;

use super::SkippedItem;

const VERSION: u8 = 1;
/// Skipped items kept with a checkpoint: the newest ones.
pub(crate) const MAX_SKIPPED: usize = 1000;
/// Longest error message kept per skipped item, in bytes.
pub(crate) const MAX_MESSAGE: usize = 1024;

/// What a run keeps with each checkpoint besides the user's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunInfo {
    /// Items skipped by the operation's runs so far (counted across resumed runs).
    pub(crate) skip_count: u64,
    /// Per parameter name, the fingerprint of the call's argument.
    pub(crate) inputs: Vec<(String, u64)>,
    /// The newest skipped items, oldest first (at most [`MAX_SKIPPED`]).
    pub(crate) skipped: VecDeque<SkippedItem>,
}

impl RunInfo {
    /// Whether there is anything to store.
    pub(crate) fn is_empty(&self) -> bool {
        self.skip_count == 0 && self.inputs.is_empty() && self.skipped.is_empty()
    }

    /// Notes a skipped item, keeping the newest [`MAX_SKIPPED`].
    pub(crate) fn push_skipped(&mut self, mut item: SkippedItem) {
        truncate_utf8(&mut item.message, MAX_MESSAGE);
        truncate_utf8(&mut item.error_code, usize::from(u16::MAX));
        self.skip_count += 1;
        if self.skipped.len() == MAX_SKIPPED {
            self.skipped.pop_front();
        }
        self.skipped.push_back(item);
    }

    /// Replaces `out` with the encoding; empty when there is nothing to store.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.clear();
        if self.is_empty() {
            return;
        }
        out.push(VERSION);
        out.extend_from_slice(&self.skip_count.to_le_bytes());
        let inputs = &self.inputs[..self.inputs.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(inputs.len() as u16).to_le_bytes());
        for (name, fingerprint) in inputs {
            let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
            out.extend_from_slice(&fingerprint.to_le_bytes());
        }
        out.extend_from_slice(&(self.skipped.len() as u32).to_le_bytes());
        for item in &self.skipped {
            out.extend_from_slice(&item.position.to_le_bytes());
            out.extend_from_slice(&(item.error_code.len() as u16).to_le_bytes());
            out.extend_from_slice(item.error_code.as_bytes());
            out.extend_from_slice(&(item.message.len() as u32).to_le_bytes());
            out.extend_from_slice(item.message.as_bytes());
        }
    }

    /// Decodes a run section; an empty one is the default.
    pub(crate) fn decode(bytes: &[u8]) -> Result<RunInfo, &'static str> {
        if bytes.is_empty() {
            return Ok(RunInfo::default());
        }
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err("unknown run section version");
        }
        let skip_count = r.u64()?;
        let input_count = r.u16()?;
        let mut inputs = Vec::new();
        for _ in 0..input_count {
            let len = usize::from(r.u16()?);
            let name = r.str(len)?;
            inputs.push((name, r.u64()?));
        }
        let skipped_count = r.u32()?;
        let mut skipped = VecDeque::new();
        for _ in 0..skipped_count {
            let position = r.u64()?;
            let len = usize::from(r.u16()?);
            let error_code = r.str(len)?;
            let len = r.u32()? as usize;
            let message = r.str(len)?;
            skipped.push_back(SkippedItem { position, error_code, message });
        }
        if !r.0.is_empty() {
            return Err("trailing bytes in the run section");
        }
        Ok(RunInfo { skip_count, inputs, skipped })
    }
}

fn truncate_utf8(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], &'static str> {
        if self.0.len() < n {
            return Err("run section cut short");
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, &'static str> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, &'static str> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn str(&mut self, len: usize) -> Result<String, &'static str> {
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes).map(str::to_owned).map_err(|_| "run section text is not UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RunInfo {
        let mut info = RunInfo {
            inputs: vec![("batch".into(), 7), ("photos".into(), u64::MAX)],
            ..RunInfo::default()
        };
        info.push_skipped(SkippedItem {
            position: 3,
            error_code: "E_DAMAGED".into(),
            message: "photo IMG_0003 is damaged".into(),
        });
        info.push_skipped(SkippedItem {
            position: 9,
            error_code: "Job::Bad".into(),
            message: "é".repeat(MAX_MESSAGE),
        });
        info
    }

    #[test]
    fn round_trip_and_bounded_messages() {
        let info = sample();
        assert_eq!(info.skip_count, 2);
        assert!(info.skipped[1].message.len() <= MAX_MESSAGE);
        let mut bytes = Vec::new();
        info.encode(&mut bytes);
        assert_eq!(RunInfo::decode(&bytes).unwrap(), info);
        RunInfo::default().encode(&mut bytes);
        assert!(bytes.is_empty());
        assert_eq!(RunInfo::decode(&[]).unwrap(), RunInfo::default());
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let mut bytes = Vec::new();
        sample().encode(&mut bytes);
        for cut in 0..bytes.len() {
            assert!(RunInfo::decode(&bytes[..cut]).is_err() || cut == 0, "cut at {cut}");
        }
        let mut forged = bytes.clone();
        forged[9..11].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(RunInfo::decode(&forged).is_err());
        let mut longer = bytes;
        longer.push(0);
        assert!(RunInfo::decode(&longer).is_err());
    }

    #[test]
    fn only_the_newest_skipped_items_are_kept() {
        let mut info = RunInfo::default();
        for position in 0..(MAX_SKIPPED as u64 + 5) {
            info.push_skipped(SkippedItem {
                position,
                error_code: "E".into(),
                message: String::new(),
            });
        }
        assert_eq!(info.skip_count, MAX_SKIPPED as u64 + 5);
        assert_eq!(info.skipped.len(), MAX_SKIPPED);
        assert_eq!(info.skipped[0].position, 5);
    }
}
