//! Keyed pseudonyms for personal fields (e-mail, name, IP address).
//!
//! A pseudonym is the lower-case hex HMAC-SHA256 (RFC 2104 / FIPS 198-1) of the field name and
//! the value under a secret key. The same value under the same key always gives the same
//! pseudonym, so one person's sessions stay linkable; without the key the value cannot be
//! recovered or confirmed by guessing (unlike a plain hash, which a dictionary of e-mail
//! addresses would reverse).
//!
//! # Exact construction
//!
//! ```text
//! pseudonym(field, value) = hex( HMAC-SHA256( key, be_u64(len(field)) || field || value ) )
//! ```
//!
//! `len(field)` is the byte length of the UTF-8 field name as an 8-byte big-endian integer, so
//! the field name and the value cannot run into each other; the value is used byte for byte
//! (no trimming or case folding). The field name separates domains: the same string as an
//! `email` and as a `name` gets unrelated pseudonyms. In Python:
//!
//! ```python
//! hmac.new(key, len(field).to_bytes(8, "big") + field.encode() + value.encode(),
//!          hashlib.sha256).hexdigest()
//! ```
//!
//! ```
//! use shopstream_pseudonym::{Pseudonymizer, fields};
//! let p = Pseudonymizer::new(b"0123456789abcdef0123456789abcdef").unwrap();
//! let a = p.pseudonym(fields::EMAIL, "dana.whitfield@example.org");
//! assert_eq!(a.len(), 64);
//! assert_eq!(a, p.pseudonym(fields::EMAIL, "dana.whitfield@example.org"));
//! assert_ne!(a, p.pseudonym(fields::NAME, "dana.whitfield@example.org"));
//! ```
//!
//! # Key
//!
//! The key comes from configuration ([`KeyArgs`]: a file mounted from a Kubernetes Secret, or
//! the command line for a local run; never the environment). It must be at least [`MIN_KEY_BYTES`] bytes;
//! workloads refuse to start without one. Rotating the key changes every pseudonym (old and new
//! documents are then no longer linkable), so rotate only together with a re-load of the data.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use shopstream_contract as contract;
use std::path::PathBuf;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use thiserror::Error;

type HmacSha256 = Hmac<Sha256>;

/// Shortest key accepted, in bytes (128 bits).
pub const MIN_KEY_BYTES: usize = 16;

/// Field names used as domain separators, shared by every workload so their pseudonyms agree.
pub mod fields {
    /// The session's `email`.
    pub const EMAIL: &str = "email";
    /// The session's `name`.
    pub const NAME: &str = "name";
    /// The session's `ipAddress`.
    pub const IP_ADDRESS: &str = "ipAddress";
}

/// Why a key could not be set up.
#[derive(Debug, Error)]
pub enum PseudonymError {
    /// The key is shorter than [`MIN_KEY_BYTES`].
    #[error("pseudonym key is {len} bytes; at least {min} are required")]
    KeyTooShort {
        /// Length of the key given.
        len: usize,
        /// The minimum.
        min: usize,
    },
    /// Neither a key nor a key file was configured.
    #[error(
        "no pseudonym key configured: set --pseudonym-key-file / SHOPSTREAM_PSEUDONYM_KEY_FILE \
         (a mounted Kubernetes Secret), or --pseudonym-key for a local run"
    )]
    Missing,
    /// Both a key and a key file were configured.
    #[error("both a pseudonym key and a key file are configured; set only one")]
    Ambiguous,
    /// The key file could not be read.
    #[error("cannot read pseudonym key file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Computes keyed pseudonyms. Cheap to clone; `Debug` never shows the key.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: HmacSha256,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { key: <redacted> }")
    }
}

impl Pseudonymizer {
    /// A pseudonymizer with this secret key (at least [`MIN_KEY_BYTES`] bytes).
    pub fn new(key: &[u8]) -> Result<Self, PseudonymError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(PseudonymError::KeyTooShort { len: key.len(), min: MIN_KEY_BYTES });
        }
        Ok(Self::with_any_key(key))
    }

    fn with_any_key(key: &[u8]) -> Self {
        // HMAC accepts keys of any length (long keys are hashed first), so this cannot fail.
        let mac = match <HmacSha256 as Mac>::new_from_slice(key) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        Pseudonymizer { mac }
    }

    /// The raw HMAC-SHA256 of `message` under the key (the primitive; the tests check the
    /// pseudonym construction against it).
    #[cfg(test)]
    fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The pseudonym of `value` in the domain `field` (see [`fields`]): 64 lower-case hex
    /// characters. See the crate documentation for the exact construction.
    pub fn pseudonym(&self, field: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(&(field.len() as u64).to_be_bytes());
        mac.update(field.as_bytes());
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// Where the key comes from: exactly one of a file (a mounted Secret, what the operator
/// renders) or the command line (local runs). Never the environment: a pod's environment is
/// visible to anyone who can read its spec or `/proc/<pid>/environ`. Flatten into a command's
/// arguments with `#[command(flatten)]`. `Debug` never shows the key.
#[derive(Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// The pseudonym key itself (its UTF-8 bytes are the HMAC key), for local runs; a file
    /// is the way in a cluster.
    #[arg(long = "pseudonym-key")]
    pub key: Option<String>,
    /// A file holding the key (its bytes are the HMAC key; one trailing newline is dropped).
    #[arg(long = "pseudonym-key-file", env = contract::env::PSEUDONYM_KEY_FILE)]
    pub key_file: Option<PathBuf>,
}

impl std::fmt::Debug for KeyArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyArgs")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("key_file", &self.key_file)
            .finish()
    }
}

impl KeyArgs {
    /// Loads the key and builds the pseudonymizer; errors when none, both, or a short key is
    /// configured.
    pub fn load(&self) -> Result<Pseudonymizer, PseudonymError> {
        match (&self.key, &self.key_file) {
            (Some(_), Some(_)) => Err(PseudonymError::Ambiguous),
            (None, None) => Err(PseudonymError::Missing),
            (Some(key), None) => Pseudonymizer::new(key.as_bytes()),
            (None, Some(path)) => {
                let bytes = std::fs::read(path)
                    .map_err(|source| PseudonymError::File { path: path.clone(), source })?;
                Pseudonymizer::new(strip_newline(&bytes))
            }
        }
    }
}

fn strip_newline(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 4231 section 4: (key, data, HMAC-SHA256). Case 5 is truncated to 128 bits.
    fn rfc4231() -> Vec<(Vec<u8>, Vec<u8>, &'static str)> {
        let big_key = vec![0xaa; 131];
        vec![
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (vec![0x0c; 20], b"Test With Truncation".to_vec(), "a3b6167473100ee06e0c796c2955552b"),
            (
                big_key.clone(),
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                big_key,
                b"This is a test using a larger than block-size key and a larger than block-size \
                  data. The key needs to be hashed before being used by the HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ]
    }

    #[test]
    fn rfc4231_vectors() {
        for (i, (key, data, want)) in rfc4231().into_iter().enumerate() {
            // Case 2's key ("Jefe") is below our minimum; check the primitive with it anyway.
            let p = if key.len() >= MIN_KEY_BYTES {
                Pseudonymizer::new(&key).unwrap()
            } else {
                assert!(Pseudonymizer::new(&key).is_err());
                Pseudonymizer::with_any_key(&key)
            };
            let got = hex::encode(p.mac(&data));
            assert!(got.starts_with(want), "RFC 4231 case {}: {got} != {want}", i + 1);
            assert_eq!(got.len(), 64);
        }
    }

    #[test]
    fn pseudonym_is_hmac_of_length_prefixed_field_and_value() {
        let p = Pseudonymizer::new(&[0x0b; 20]).unwrap();
        let mut msg = 5u64.to_be_bytes().to_vec();
        msg.extend_from_slice(b"emaila@b.c");
        assert_eq!(p.pseudonym("email", "a@b.c"), hex::encode(p.mac(&msg)));
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(p.pseudonym("ab", "c"), p.pseudonym("a", "bc"));
    }

    #[test]
    fn matches_the_documented_python_construction() {
        // hmac.new(k, len(f).to_bytes(8, "big") + f + v, hashlib.sha256).hexdigest() with
        // k = b"0123456789abcdef0123456789abcdef", f = b"email", v = b"dana.whitfield@example.org"
        let p = Pseudonymizer::new(b"0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(
            p.pseudonym(fields::EMAIL, "dana.whitfield@example.org"),
            "8556f31423cb6f5133481424b4f9d4748272fa47eb042bbc599f7e92c890aeac"
        );
    }

    #[test]
    fn stable_per_key_and_separated_by_field_and_key() {
        let a = Pseudonymizer::new(b"key-one-key-one-key-one").unwrap();
        let b = Pseudonymizer::new(b"key-two-key-two-key-two").unwrap();
        let v = "203.0.113.45";
        let pa = a.pseudonym(fields::IP_ADDRESS, v);
        assert_eq!(pa, a.clone().pseudonym(fields::IP_ADDRESS, v));
        assert_ne!(pa, b.pseudonym(fields::IP_ADDRESS, v));
        assert_ne!(pa, a.pseudonym(fields::EMAIL, v));
        assert!(pa.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(!pa.contains(v));
    }

    #[test]
    fn rejects_short_keys_and_hides_key_in_debug() {
        let err = Pseudonymizer::new(b"short").unwrap_err();
        assert!(matches!(err, PseudonymError::KeyTooShort { len: 5, min: MIN_KEY_BYTES }));
        let p = Pseudonymizer::new(b"super-secret-key-material").unwrap();
        assert!(!format!("{p:?}").contains("super-secret"));
        let args = KeyArgs { key: Some("super-secret-key-material".into()), key_file: None };
        assert!(!format!("{args:?}").contains("super-secret"));
    }

    #[test]
    fn key_args_need_exactly_one_source() {
        assert!(matches!(KeyArgs::default().load(), Err(PseudonymError::Missing)));
        let both = KeyArgs { key: Some("x".repeat(32)), key_file: Some("/nonexistent".into()) };
        assert!(matches!(both.load(), Err(PseudonymError::Ambiguous)));
        let short = KeyArgs { key: Some("abc".into()), key_file: None };
        assert!(matches!(short.load(), Err(PseudonymError::KeyTooShort { .. })));
        let missing = KeyArgs { key: None, key_file: Some("/nonexistent/key".into()) };
        assert!(matches!(missing.load(), Err(PseudonymError::File { .. })));
    }

    #[test]
    fn key_file_drops_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("pseudonym-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key");
        std::fs::write(&path, b"0123456789abcdef0123\r\n").unwrap();
        let from_file = KeyArgs { key: None, key_file: Some(path.clone()) }.load().unwrap();
        let direct = Pseudonymizer::new(b"0123456789abcdef0123").unwrap();
        assert_eq!(from_file.pseudonym("email", "x@y"), direct.pseudonym("email", "x@y"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
