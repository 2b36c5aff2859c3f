//! Pure encoding of the model bytes kept outside the registry document: optional gzip
//! compression, a SHA-256 of the model bytes, and the verification done on read.
//!
//! No I/O here; [`crate::Registry`] moves the encoded bytes in and out of GridFS.

use std::io::{Read, Write};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};
use sha2::{Digest, Sha256};

/// How the stored blob encodes the model bytes (recorded in the document as `blob.encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The blob is the model bytes as they are (`"identity"`).
    Identity,
    /// The blob is a gzip member (RFC 1952) of the model bytes (`"gzip"`).
    Gzip,
}

impl Encoding {
    /// The name stored in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
        }
    }

    /// Parses a stored name; `None` for an encoding this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "identity" => Some(Self::Identity),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }
}

/// Model bytes ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The encoding of [`Encoded::bytes`].
    pub encoding: Encoding,
    /// What goes into the blob store.
    pub bytes: Vec<u8>,
    /// Length of the model bytes (before encoding).
    pub length: u64,
    /// Lower-case hex SHA-256 of the model bytes (before encoding).
    pub sha256: String,
}

/// Why stored bytes do not decode to the registered model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The blob has a different length than recorded.
    #[error("blob is {actual} bytes, the document records {expected}")]
    StoredLength {
        /// Recorded length.
        expected: u64,
        /// Length read back.
        actual: u64,
    },
    /// The gzip stream is damaged (bad header, deflate data or gzip CRC).
    #[error("gzip data does not decode: {0}")]
    Gzip(String),
    /// The decoded model has a different length than recorded.
    #[error("decoded model is {actual} bytes, the document records {expected}")]
    Length {
        /// Recorded length.
        expected: u64,
        /// Length after decoding.
        actual: u64,
    },
    /// The decoded model's SHA-256 differs from the recorded one.
    #[error("sha256 mismatch: document records {expected}, the bytes read hash to {actual}")]
    Checksum {
        /// Recorded digest.
        expected: String,
        /// Digest of what was read.
        actual: String,
    },
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Encodes model bytes: gzip (default level) when that makes them smaller, else identity.
///
/// Serialized models are mostly JSON, which gzip shrinks several-fold; bytes that do not
/// shrink (already compressed, random) are stored as they are.
pub fn encode(model: &[u8]) -> std::io::Result<Encoded> {
    let mut gz = GzEncoder::new(Vec::with_capacity(model.len() / 4), Compression::default());
    gz.write_all(model)?;
    let compressed = gz.finish()?;
    let (encoding, bytes) = if compressed.len() < model.len() {
        (Encoding::Gzip, compressed)
    } else {
        (Encoding::Identity, model.to_vec())
    };
    Ok(Encoded { encoding, bytes, length: model.len() as u64, sha256: sha256_hex(model) })
}

/// Decodes a blob read back from the store and verifies it against what the document records:
/// the stored length, the decoded length and the SHA-256 of the decoded bytes.
pub fn decode(
    encoding: Encoding,
    stored: Vec<u8>,
    stored_length: u64,
    length: u64,
    sha256: &str,
) -> Result<Vec<u8>, DecodeError> {
    if stored.len() as u64 != stored_length {
        return Err(DecodeError::StoredLength {
            expected: stored_length,
            actual: stored.len() as u64,
        });
    }
    let model = match encoding {
        Encoding::Identity => stored,
        Encoding::Gzip => {
            // The recorded length bounds the allocation and the read: a damaged stream that
            // would inflate to more than that is caught by the length check below.
            let cap = usize::try_from(length).unwrap_or(usize::MAX);
            let mut out = Vec::with_capacity(cap.min(1 << 30));
            GzDecoder::new(stored.as_slice())
                .take(length.saturating_add(1))
                .read_to_end(&mut out)
                .map_err(|e| DecodeError::Gzip(e.to_string()))?;
            out
        }
    };
    if model.len() as u64 != length {
        return Err(DecodeError::Length { expected: length, actual: model.len() as u64 });
    }
    let actual = sha256_hex(&model);
    if actual != sha256 {
        return Err(DecodeError::Checksum { expected: sha256.to_string(), actual });
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_like(n: usize) -> Vec<u8> {
        let mut s = String::from("{\"trees\":[");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        while s.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            s.push_str(&format!("{{\"feature\":{},\"threshold\":0.{}}},", x % 40, x % 1000));
        }
        s.push_str("{}]}");
        s.into_bytes()
    }

    fn noise(n: usize) -> Vec<u8> {
        let mut x: u64 = 42;
        (0..n)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (x >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn sha256_matches_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn json_is_gzipped_and_round_trips() {
        let model = json_like(200_000);
        let e = encode(&model).unwrap();
        assert_eq!(e.encoding, Encoding::Gzip);
        assert!(e.bytes.len() * 3 < model.len(), "{} -> {}", model.len(), e.bytes.len());
        assert_eq!(&e.bytes[..2], &[0x1f, 0x8b], "a gzip member");
        assert_eq!(e.length, model.len() as u64);
        assert_eq!(e.sha256, sha256_hex(&model));
        let n = e.bytes.len() as u64;
        assert_eq!(decode(e.encoding, e.bytes, n, e.length, &e.sha256).unwrap(), model);
    }

    #[test]
    fn incompressible_bytes_are_stored_as_they_are() {
        let model = noise(100_000);
        let e = encode(&model).unwrap();
        assert_eq!(e.encoding, Encoding::Identity);
        assert_eq!(e.bytes, model);
        let n = e.bytes.len() as u64;
        assert_eq!(decode(e.encoding, e.bytes, n, e.length, &e.sha256).unwrap(), model);
    }

    #[test]
    fn empty_model_round_trips() {
        let e = encode(b"").unwrap();
        assert_eq!(e.encoding, Encoding::Identity);
        assert_eq!(decode(e.encoding, e.bytes, 0, 0, &e.sha256).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn a_flipped_byte_in_identity_bytes_is_a_checksum_error() {
        let model = noise(10_000);
        let e = encode(&model).unwrap();
        let mut bad = e.bytes.clone();
        bad[5_000] ^= 0x01;
        let err = decode(e.encoding, bad, 10_000, e.length, &e.sha256).unwrap_err();
        assert!(matches!(&err, DecodeError::Checksum { expected, .. } if *expected == e.sha256));
        assert!(err.to_string().starts_with("sha256 mismatch"), "{err}");
    }

    #[test]
    fn damaged_gzip_is_an_error_never_wrong_bytes() {
        let model = json_like(100_000);
        let e = encode(&model).unwrap();
        let n = e.bytes.len();
        // Every single-byte change past the header must be detected (deflate error, gzip
        // CRC/length trailer, or our length/sha check), never returned as a model.
        for pos in (10..n).step_by(n / 50) {
            let mut bad = e.bytes.clone();
            bad[pos] ^= 0x55;
            let got = decode(e.encoding, bad, n as u64, e.length, &e.sha256);
            assert!(got.is_err(), "flip at {pos} went unnoticed");
        }
        let truncated = e.bytes[..n - 100].to_vec();
        assert!(matches!(
            decode(e.encoding, truncated, n as u64, e.length, &e.sha256),
            Err(DecodeError::StoredLength { .. })
        ));
        let mut short = e.bytes.clone();
        short.truncate(n - 100);
        let m = short.len() as u64;
        assert!(decode(e.encoding, short, m, e.length, &e.sha256).is_err());
    }

    #[test]
    fn wrong_recorded_length_or_digest_is_an_error() {
        let model = json_like(50_000);
        let e = encode(&model).unwrap();
        let n = e.bytes.len() as u64;
        assert!(matches!(
            decode(e.encoding, e.bytes.clone(), n, e.length - 1, &e.sha256),
            Err(DecodeError::Length { .. })
        ));
        assert!(matches!(
            decode(e.encoding, e.bytes, n, e.length, &sha256_hex(b"other")),
            Err(DecodeError::Checksum { .. })
        ));
    }

    #[test]
    fn encoding_names_round_trip() {
        for enc in [Encoding::Identity, Encoding::Gzip] {
            assert_eq!(Encoding::parse(enc.as_str()), Some(enc));
        }
        assert_eq!(Encoding::parse("zstd"), None);
    }
}
