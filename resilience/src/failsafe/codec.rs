//! The one place that knows how user state becomes bytes.
//!
//! Codec id 1 is bincode 2 through serde, little-endian, fixed-size integers. The id is stored in
//! every record, so a future codec can sit beside this one without misreading old files.

use bincode::config::{Config, Configuration, Fixint, LittleEndian, NoLimit};
use bincode::enc::write::Writer;
use bincode::error::EncodeError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The codec id written in records produced by [`encode_into`].
pub(crate) const BINCODE2: u8 = 1;

const fn config() -> Configuration<LittleEndian, Fixint, NoLimit> {
    bincode::config::standard().with_little_endian().with_fixed_int_encoding()
}

struct VecWriter<'a>(&'a mut Vec<u8>);

impl Writer for VecWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }
}

/// Replaces the contents of `out` with the encoding of `data`.
pub(crate) fn encode_into<T: Serialize + ?Sized>(
    data: &T,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    out.clear();
    bincode::serde::encode_into_writer(data, VecWriter(out), config()).map_err(|e| e.to_string())
}

/// Decodes a whole payload written with codec `codec`.
///
/// Decoding is bounded: bincode refuses any length claim beyond the limit, and the limit is the
/// smallest tier at least as large as the payload, so a hostile length field cannot make it
/// allocate more than 16 times the bytes the file actually holds.
pub(crate) fn decode<T: DeserializeOwned>(codec: u8, bytes: &[u8]) -> Result<T, String> {
    if codec != BINCODE2 {
        return Err(format!("unknown codec id {codec}"));
    }
    let n = bytes.len();
    let decoded = if n <= 4 << 10 {
        decode_with(bytes, config().with_limit::<{ 4 << 10 }>())
    } else if n <= 64 << 10 {
        decode_with(bytes, config().with_limit::<{ 64 << 10 }>())
    } else if n <= 1 << 20 {
        decode_with(bytes, config().with_limit::<{ 1 << 20 }>())
    } else if n <= 16 << 20 {
        decode_with(bytes, config().with_limit::<{ 16 << 20 }>())
    } else if n <= 256 << 20 {
        decode_with(bytes, config().with_limit::<{ 256 << 20 }>())
    } else {
        decode_with(bytes, config().with_limit::<{ u32::MAX as usize }>())
    };
    match decoded {
        Ok((value, used)) if used == n => Ok(value),
        Ok((_, used)) => Err(format!("{} trailing bytes after the data", n - used)),
        Err(e) => Err(e.to_string()),
    }
}

fn decode_with<T: DeserializeOwned, C: Config>(
    bytes: &[u8],
    config: C,
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let mut buf = Vec::new();
        encode_into(&(7u64, String::from("x")), &mut buf).unwrap();
        assert_eq!(decode::<(u64, String)>(BINCODE2, &buf).unwrap(), (7, "x".into()));
        buf.push(0);
        assert!(decode::<(u64, String)>(BINCODE2, &buf).is_err());
        assert!(decode::<(u64, String)>(9, &buf[..buf.len() - 1]).is_err());
    }

    #[test]
    fn hostile_length_is_refused_without_allocating() {
        // A string whose length field claims 2^62 bytes.
        let mut buf = (1u64 << 62).to_le_bytes().to_vec();
        buf.extend_from_slice(b"abc");
        assert!(decode::<String>(BINCODE2, &buf).is_err());
        assert!(decode::<Vec<u64>>(BINCODE2, &buf).is_err());
    }
}
