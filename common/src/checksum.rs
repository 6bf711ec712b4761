//! Checksummed files: the bytes of a file sluice alone reads (state deltas and snapshots) framed
//! with a header that says how long they are and what their CRC32C is, so a zero-length,
//! truncated or bit-flipped file fails loudly, naming itself, instead of loading as empty or
//! wrong state.
//!
//! Layout: `SLCK` (magic), format version `1` (one byte), CRC32C of the body (4 bytes, little
//! endian), body length (8 bytes, little endian), then the body. Files Spark must read stay in
//! Spark's format and are validated by structure instead.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Result, SluiceError};

const MAGIC: &[u8; 4] = b"SLCK";
const VERSION: u8 = 1;
/// Bytes of the header of a sealed file.
pub const HEADER_LEN: usize = 4 + 1 + 4 + 8;

/// `body` with its checksum header.
pub fn seal(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + body.len());
    out.put_slice(MAGIC);
    out.put_u8(VERSION);
    out.put_u32_le(crc32c::crc32c(body));
    out.put_u64_le(body.len() as u64);
    out.put_slice(body);
    out.freeze()
}

/// True when `bytes` carry a checksum header (files written before checksums did not).
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

/// True when `bytes` are a sealed file cut short — what a write leaves when its writer dies in
/// the middle, unlike a flipped bit: a whole header whose body is shorter than it says, or a
/// header cut short itself (an empty file too). A file from before checksums is a whole Arrow
/// stream, which is never that short and never starts with the magic.
pub fn is_cut_short(bytes: &[u8]) -> bool {
    if bytes.len() < HEADER_LEN {
        return MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())]);
    }
    sealed_file_len(bytes).is_some_and(|whole| (bytes.len() as u64) < whole)
}

/// [`is_cut_short`] for a file of `len` bytes from its first [`HEADER_LEN`] bytes (all of them,
/// when it is shorter): a length check that does not read the file.
pub fn is_cut_short_at(header: &[u8], len: u64) -> bool {
    if len < HEADER_LEN as u64 {
        return is_cut_short(header);
    }
    sealed_file_len(header).is_some_and(|whole| len < whole)
}

/// The body length a whole header declares.
fn declared_len(header: &[u8]) -> usize {
    let mut len = [0u8; 8];
    len.copy_from_slice(&header[9..HEADER_LEN]);
    usize::try_from(u64::from_le_bytes(len)).unwrap_or(usize::MAX)
}

/// The length of the whole file a sealed header (its first [`HEADER_LEN`] bytes or more)
/// announces, or `None` when `header` is not one.
pub fn sealed_file_len(header: &[u8]) -> Option<u64> {
    (header.len() >= HEADER_LEN && is_sealed(header)).then(|| (HEADER_LEN + declared_len(header)) as u64)
}

/// The body of a sealed file, after checking its length and checksum; `what` names the file in
/// the error.
pub fn open<'a>(bytes: &'a [u8], what: &str) -> Result<&'a [u8]> {
    let corrupt = |why: String| SluiceError::user(format!("{what} is corrupt: {why}"));
    if bytes.len() < HEADER_LEN || !is_sealed(bytes) {
        return Err(corrupt(format!("{} bytes, not a complete sluice file header", bytes.len())));
    }
    if bytes[4] != VERSION {
        return Err(corrupt(format!("format version {} (this sluice reads version {VERSION})", bytes[4])));
    }
    let crc = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    let len = declared_len(bytes) as u64;
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(corrupt(format!("{} bytes of body where the header says {len}: the file was cut short", body.len())));
    }
    if crc32c::crc32c(body) != crc {
        return Err(corrupt("its checksum does not match its content".into()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_bytes_open_to_the_body() {
        let sealed = seal(b"state rows");
        assert_eq!(open(&sealed, "1.delta").unwrap(), b"state rows");
        assert_eq!(open(&seal(b""), "1.delta").unwrap(), b"");
    }

    #[test]
    fn empty_truncated_and_flipped_files_are_refused_by_name() {
        let sealed = seal(b"state rows");
        let e = open(b"", "state/0/3/7.delta").unwrap_err();
        assert!(e.message.starts_with("state/0/3/7.delta is corrupt"), "{}", e.message);
        let cut = &sealed[..sealed.len() - 3];
        assert!(open(cut, "f").unwrap_err().message.contains("cut short"));
        let mut flipped = sealed.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(open(&flipped, "f").unwrap_err().message.contains("checksum"));
        // Only the cut file is one a dying writer leaves; its header still gives the whole length.
        assert!(is_cut_short(cut) && !is_cut_short(&flipped) && !is_cut_short(&sealed));
        assert_eq!(sealed_file_len(&sealed[..HEADER_LEN]), Some(sealed.len() as u64));
        // A writer that died inside the header left a prefix of it, or nothing at all.
        for n in 0..HEADER_LEN {
            assert!(is_cut_short(&sealed[..n]), "{n} bytes");
            assert!(is_cut_short_at(&sealed[..n], n as u64), "{n} bytes");
        }
        assert!(is_cut_short_at(&sealed[..HEADER_LEN], sealed.len() as u64 - 1));
        assert!(!is_cut_short_at(&sealed[..HEADER_LEN], sealed.len() as u64));
        // A file from before checksums is an Arrow stream: never taken for one cut short.
        assert!(!is_cut_short(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]) && !is_cut_short(b"SLX"));
    }
}
