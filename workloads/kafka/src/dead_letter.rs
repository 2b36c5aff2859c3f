//! The dead-letter envelope every workload uses for a record it cannot process: the original
//! key and bytes, and headers that say why and where it came from.
//!
//! * key = the input record's key (if any); payload = the original bytes, cut to a maximum
//!   (then [`TRUNCATED`] = `true`);
//! * [`REASON`]: a stable reason code (e.g. `malformed_json`); [`FIELD`]: JSON path of the
//!   offending field (`$` = the whole record); [`MESSAGE`]: human text (at most 1 KiB);
//!   [`ORIGINAL_SIZE`]: size of the original payload in bytes;
//! * [`SOURCE_TOPIC`], [`SOURCE_PARTITION`], [`SOURCE_OFFSET`] (decimal text): where the
//!   record was read.
//!
//! The envelope is a pure function of the input record and the error, so re-processing a
//! record produces the same dead letter.

use crate::batch::InRecord;

/// Reason code (suspicious and dead-letter records).
pub const REASON: &str = "shopstream.reason";
/// JSON path of the offending field (dead-letter).
pub const FIELD: &str = "shopstream.field";
/// Human-readable error (dead-letter, at most 1 KiB).
pub const MESSAGE: &str = "shopstream.message";
/// Size of the original payload in bytes (dead-letter).
pub const ORIGINAL_SIZE: &str = "shopstream.original.size";
/// `true` when the dead-letter payload was cut (dead-letter).
pub const TRUNCATED: &str = "shopstream.truncated";
/// Topic the input record came from.
pub const SOURCE_TOPIC: &str = "shopstream.source.topic";
/// Partition the input record came from.
pub const SOURCE_PARTITION: &str = "shopstream.source.partition";
/// Offset of the input record.
pub const SOURCE_OFFSET: &str = "shopstream.source.offset";

/// Dead-letter reason for a record without a payload (a tombstone).
pub const REASON_EMPTY: &str = "empty_payload";

/// Longest [`MESSAGE`] header in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// Why a record is dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure<'a> {
    /// Stable reason code.
    pub reason: &'a str,
    /// JSON path of the offending field (`$` for the whole record).
    pub field: &'a str,
    /// Human-readable error (cut to [`MAX_MESSAGE`] bytes).
    pub message: &'a str,
}

/// A dead-letter record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// The input record's key.
    pub key: Option<&'a [u8]>,
    /// The original bytes, cut to the maximum.
    pub payload: &'a [u8],
    /// The headers, in order.
    pub headers: Vec<(&'static str, String)>,
}

/// The source headers of a record read from `source_topic`.
pub fn source_headers(source_topic: &str, rec: &InRecord) -> [(&'static str, String); 3] {
    [
        (SOURCE_TOPIC, source_topic.to_string()),
        (SOURCE_PARTITION, rec.partition.to_string()),
        (SOURCE_OFFSET, rec.offset.to_string()),
    ]
}

/// The dead letter of `rec` (read from `source_topic`) that failed with `failure`; a
/// payload longer than `max_payload` bytes is cut and marked.
pub fn envelope<'a>(
    source_topic: &str,
    rec: &'a InRecord,
    failure: Failure<'_>,
    max_payload: usize,
) -> Envelope<'a> {
    let original = rec.payload.as_deref().unwrap_or_default();
    let mut headers = vec![
        (REASON, failure.reason.to_string()),
        (FIELD, failure.field.to_string()),
        (MESSAGE, truncate_utf8(failure.message, MAX_MESSAGE).to_string()),
        (ORIGINAL_SIZE, original.len().to_string()),
    ];
    let payload = if original.len() > max_payload {
        headers.push((TRUNCATED, "true".to_string()));
        &original[..max_payload]
    } else {
        original
    };
    headers.extend(source_headers(source_topic, rec));
    Envelope { key: rec.key.as_deref(), payload, headers }
}

/// The dead letter of a record without payload (a tombstone).
pub fn empty_failure() -> Failure<'static> {
    Failure { reason: REASON_EMPTY, field: "$", message: "record has no payload" }
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(e: &'a Envelope<'_>, name: &str) -> Option<&'a str> {
        e.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn envelope_keeps_key_bytes_and_says_why() {
        let rec = InRecord {
            partition: 3,
            offset: 17,
            key: Some(b"k".to_vec()),
            payload: Some(b"{oops".to_vec()),
        };
        let f = Failure { reason: "malformed_json", field: "$", message: "bad" };
        let e = envelope("t", &rec, f, 100);
        assert_eq!((e.key, e.payload), (Some(&b"k"[..]), &b"{oops"[..]));
        assert_eq!(header(&e, REASON), Some("malformed_json"));
        assert_eq!(header(&e, FIELD), Some("$"));
        assert_eq!(header(&e, ORIGINAL_SIZE), Some("5"));
        assert_eq!(header(&e, SOURCE_TOPIC), Some("t"));
        assert_eq!(header(&e, SOURCE_PARTITION), Some("3"));
        assert_eq!(header(&e, SOURCE_OFFSET), Some("17"));
        assert_eq!(header(&e, TRUNCATED), None);
        let cut = envelope("t", &rec, f, 2);
        assert_eq!((cut.payload, header(&cut, TRUNCATED)), (&b"{o"[..], Some("true")));
        let tomb = InRecord { partition: 0, offset: 0, key: None, payload: None };
        let t = envelope("t", &tomb, empty_failure(), 10);
        assert_eq!((t.payload, header(&t, REASON)), (&b""[..], Some(REASON_EMPTY)));
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let cut = truncate_utf8(&long, MAX_MESSAGE);
        assert!(cut.len() <= MAX_MESSAGE && cut.len() >= MAX_MESSAGE - 1);
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
