//! The session record of the furniture shop, field for field as the original Python system wrote
//! it (camelCase JSON), with parsing and validation whose errors name the offending field.
//!
//! ```
//! let line = br#"{"sessionId": "s1"}"#;
//! let err = shopstream_schema::parse_session(line).unwrap_err();
//! assert_eq!(err.reason(), "missing_field");
//! assert!(err.to_string().contains("userId"));
//! ```
//!
//! Use [`parse_session`] on untrusted bytes (it bounds the size, checks UTF-8, parses with the
//! field path and then runs [`Session::validate`]); use [`Session::to_json`] to write a record.
//! Where records stream by and only need reading, [`parse_record`] gives the same verdict
//! without copying the strings of a well-formed record ([`Record::view`]).

pub mod catalog;
mod record;
mod session;

pub use record::{Record, SessionView, parse_record};

pub use catalog::{PRODUCT_COUNT, PRODUCTS, Product, VIEWED_TOGETHER};
pub use session::{
    Action, DeviceInformation, DeviceType, Gender, LocationData, PaymentMethod, Referrer, Session,
    TIMESTAMP_FORMAT, part_of_day,
};

use thiserror::Error;

/// Largest record accepted, in bytes. A real session is about 2 KB; anything near this size is
/// junk or an attack, and is rejected before it is parsed.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

/// Why a record was rejected. Every variant names the field (a JSON path such as
/// `deviceInformation.deviceType` or `productIds[3]`, or `$` for the whole record).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SchemaError {
    /// The record is larger than [`MAX_RECORD_BYTES`].
    #[error("$: record is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Size of the record in bytes.
        size: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// The bytes are not UTF-8.
    #[error("$: record is not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// The text is not complete, well-formed JSON.
    #[error("$: malformed JSON at line {line} column {column}: {message}")]
    MalformedJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What the JSON parser said.
        message: String,
    },
    /// A required field is absent.
    #[error("{field}: missing field")]
    MissingField {
        /// Path of the missing field.
        field: String,
    },
    /// A field has the wrong JSON type or an unknown enum value, or an unknown field is present.
    #[error("{field}: {message}")]
    WrongType {
        /// Path of the offending field.
        field: String,
        /// What was wrong.
        message: String,
    },
    /// The record parsed but breaks a rule of the format (lengths, ids, consistency).
    #[error("{field}: {message}")]
    Invalid {
        /// Path of the offending field.
        field: String,
        /// Which rule it breaks.
        message: String,
    },
}

impl SchemaError {
    /// A short, stable reason code for metrics labels and dead-letter headers.
    pub fn reason(&self) -> &'static str {
        match self {
            SchemaError::TooLarge { .. } => "too_large",
            SchemaError::InvalidUtf8 { .. } => "invalid_utf8",
            SchemaError::MalformedJson { .. } => "malformed_json",
            SchemaError::MissingField { .. } => "missing_field",
            SchemaError::WrongType { .. } => "wrong_type",
            SchemaError::Invalid { .. } => "invalid_value",
        }
    }

    /// The path of the field the error is about (`$` for the whole record).
    pub fn field(&self) -> &str {
        match self {
            SchemaError::TooLarge { .. }
            | SchemaError::InvalidUtf8 { .. }
            | SchemaError::MalformedJson { .. } => "$",
            SchemaError::MissingField { field }
            | SchemaError::WrongType { field, .. }
            | SchemaError::Invalid { field, .. } => field,
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        SchemaError::Invalid { field: field.into(), message: message.into() }
    }
}

/// Parses and validates one record from untrusted bytes.
///
/// Checks, in order: size ([`MAX_RECORD_BYTES`]), UTF-8, JSON syntax, field types (with the
/// path of the field), then the rules of [`Session::validate`].
pub fn parse_session(bytes: &[u8]) -> Result<Session, SchemaError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(SchemaError::TooLarge { size: bytes.len(), limit: MAX_RECORD_BYTES });
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| SchemaError::InvalidUtf8 { offset: e.valid_up_to() })?;
    // Fast path: plain serde_json (tracking the field path costs about a third of the parse).
    // Only a record that fails is parsed again with the path tracked, to name the field; both
    // parses accept exactly the same documents.
    let session: Session = match serde_json::from_str(text) {
        Ok(session) => session,
        Err(_) => return Err(parse_with_path(text)),
    };
    session.validate()?;
    Ok(session)
}

/// The error of a document that plain serde_json refused, with the path of the field.
fn parse_with_path(text: &str) -> SchemaError {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, Session>(&mut de) {
        Err(e) => classify(e),
        Ok(_) => match de.end() {
            Err(e) => malformed(&e),
            // Unreachable: both parsers take the same input; say so rather than panic.
            Ok(()) => SchemaError::MalformedJson {
                line: 0,
                column: 0,
                message: "rejected by serde_json, accepted with path tracking".into(),
            },
        },
    }
}

fn malformed(e: &serde_json::Error) -> SchemaError {
    SchemaError::MalformedJson { line: e.line(), column: e.column(), message: e.to_string() }
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> SchemaError {
    let path = err.path().to_string();
    let inner = err.inner();
    match inner.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => malformed(inner),
        serde_json::error::Category::Data => {
            let message = inner.to_string();
            // serde reports a missing field at its parent; name the field itself.
            if let Some(name) =
                message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next())
            {
                let field = if path == "." { name.to_string() } else { format!("{path}.{name}") };
                return SchemaError::MissingField { field };
            }
            // Drop serde_json's " at line L column C" suffix: the path says where.
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_string(),
                None => message,
            };
            SchemaError::WrongType { field: if path == "." { "$".into() } else { path }, message }
        }
    }
}
