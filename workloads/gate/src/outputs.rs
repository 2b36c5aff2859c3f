//! What the gate writes for each input record, as pure functions: the verdict topics and the
//! dead-letter envelope.
//!
//! Every output is a function of the input record (and, for sessions, its recorded verdict)
//! only: key, payload and headers are identical when a record is processed again, so
//! downstream upserts keyed by `sessionId` are no-ops on replay.
//!
//! * **valid** / **suspicious**: key = `userId`, payload = the original bytes unchanged.
//!   Suspicious records carry the header `shopstream.reason` (e.g. `new_user_unknown_device`)
//!   plus the source headers below.
//! * **dead-letter**: key = the input record's key (if any), payload = the original bytes
//!   (cut to `max_dead_letter_bytes`, then `shopstream.truncated` = `true`), and headers
//!   `shopstream.reason` (the schema error's stable code, e.g. `malformed_json`),
//!   `shopstream.field` (JSON path, `$` for the whole record), `shopstream.message` (human
//!   text, at most 1 KiB), `shopstream.original.size` (bytes).
//! * every output: `shopstream.source.topic`, `shopstream.source.partition`,
//!   `shopstream.source.offset` (decimal text).

use shopstream_kafka::dead_letter;
use shopstream_schema::SchemaError;

use crate::rules::Verdict;

/// Header names used on output records (shared by every workload:
/// [`shopstream_kafka::dead_letter`]).
pub mod headers {
    pub use shopstream_kafka::dead_letter::{
        FIELD, MESSAGE, ORIGINAL_SIZE, REASON, SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC,
        TRUNCATED,
    };
}

pub use shopstream_kafka::batch::InRecord;
pub use shopstream_kafka::dead_letter::REASON_EMPTY;

/// Which output topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    /// The valid-sessions topic.
    Valid,
    /// The suspicious topic.
    Suspicious,
    /// The dead-letter topic.
    DeadLetter,
}

impl Route {
    /// Label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Route::Valid => "valid",
            Route::Suspicious => "suspicious",
            Route::DeadLetter => "dead_letter",
        }
    }
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord<'a> {
    /// Where it goes.
    pub route: Route,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its payload.
    pub payload: &'a [u8],
    /// Its headers, in order.
    pub headers: Vec<(&'static str, String)>,
}

/// The output of a session that passed the schema, with its verdict.
pub fn session_output<'a>(
    source_topic: &str,
    rec: &'a InRecord,
    user_id: &'a str,
    verdict: Verdict,
) -> OutRecord<'a> {
    let payload = rec.payload.as_deref().unwrap_or_default();
    let mut hdrs = Vec::with_capacity(4);
    let route = match verdict {
        Verdict::Valid => Route::Valid,
        Verdict::Suspicious(risk) => {
            hdrs.push((headers::REASON, risk.code().to_string()));
            Route::Suspicious
        }
    };
    hdrs.extend(dead_letter::source_headers(source_topic, rec));
    OutRecord { route, key: Some(user_id.as_bytes()), payload, headers: hdrs }
}

/// The dead-letter output of a record that failed the schema (`error` = `None` for a record
/// without payload).
pub fn dead_letter<'a>(
    source_topic: &str,
    rec: &'a InRecord,
    error: Option<&SchemaError>,
    max_payload: usize,
) -> OutRecord<'a> {
    let e = match error {
        Some(e) => {
            let message = e.to_string();
            let failure =
                dead_letter::Failure { reason: e.reason(), field: e.field(), message: &message };
            dead_letter::envelope(source_topic, rec, failure, max_payload)
        }
        None => dead_letter::envelope(source_topic, rec, dead_letter::empty_failure(), max_payload),
    };
    OutRecord { route: Route::DeadLetter, key: e.key, payload: e.payload, headers: e.headers }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::Risk;

    fn rec(payload: &[u8]) -> InRecord {
        InRecord {
            partition: 2,
            offset: 41,
            key: Some(b"k".to_vec()),
            payload: Some(payload.into()),
        }
    }

    fn header<'a>(out: &'a OutRecord<'_>, name: &str) -> Option<&'a str> {
        out.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn sessions_keep_their_bytes_and_are_keyed_by_user() {
        let r = rec(b"{\"x\":1}");
        let v = session_output("raw", &r, "u1", Verdict::Valid);
        assert_eq!(
            (v.route, v.key, v.payload),
            (Route::Valid, Some(&b"u1"[..]), &b"{\"x\":1}"[..])
        );
        assert_eq!(header(&v, headers::REASON), None);
        assert_eq!(header(&v, headers::SOURCE_OFFSET), Some("41"));
        let s = session_output("raw", &r, "u1", Verdict::Suspicious(Risk::UnknownReferrer));
        assert_eq!(s.route, Route::Suspicious);
        assert_eq!(header(&s, headers::REASON), Some("new_user_unknown_referrer"));
        assert_eq!(header(&s, headers::SOURCE_TOPIC), Some("raw"));
        assert_eq!(header(&s, headers::SOURCE_PARTITION), Some("2"));
    }

    #[test]
    fn dead_letters_carry_reason_field_and_original_bytes() {
        let bytes = b"{\"sessionId\": 12";
        let r = rec(bytes);
        let err = shopstream_schema::parse_session(bytes).unwrap_err();
        let d = dead_letter("raw", &r, Some(&err), 1000);
        assert_eq!(d.route, Route::DeadLetter);
        assert_eq!(d.payload, bytes);
        assert_eq!(d.key, Some(&b"k"[..]));
        assert_eq!(header(&d, headers::REASON), Some(err.reason()));
        assert_eq!(header(&d, headers::FIELD), Some(err.field()));
        assert_eq!(header(&d, headers::ORIGINAL_SIZE), Some("16"));
        assert_eq!(header(&d, headers::TRUNCATED), None);
        // Deterministic: the same input gives the same output.
        assert_eq!(d, dead_letter("raw", &r, Some(&err), 1000));
    }

    #[test]
    fn oversized_dead_letters_are_cut_and_marked() {
        let big = vec![b'x'; 5000];
        let r = rec(&big);
        let err = shopstream_schema::parse_session(&big).unwrap_err();
        let d = dead_letter("raw", &r, Some(&err), 100);
        assert_eq!(d.payload.len(), 100);
        assert_eq!(header(&d, headers::TRUNCATED), Some("true"));
        assert_eq!(header(&d, headers::ORIGINAL_SIZE), Some("5000"));
    }

    #[test]
    fn tombstones_and_long_messages() {
        let r = InRecord { partition: 0, offset: 0, key: None, payload: None };
        let d = dead_letter("raw", &r, None, 10);
        assert_eq!(header(&d, headers::REASON), Some(REASON_EMPTY));
        assert!(d.payload.is_empty());
        let e = shopstream_schema::SchemaError::Invalid {
            field: "x".into(),
            message: "é".repeat(2000),
        };
        let r = rec(b"{}");
        let d = dead_letter("raw", &r, Some(&e), 10);
        let message = header(&d, headers::MESSAGE).unwrap();
        assert!(message.len() <= 1024 && message.len() >= 1023, "{}", message.len());
    }
}
