//! Reading sessions from JSON lines.

use std::collections::HashSet;
use std::io::BufRead;
use std::path::Path;

use shopstream_schema::{SchemaError, Session, parse_session};

use crate::FeaturesError;

/// A line that was skipped, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedLine {
    /// 1-based line number.
    pub line: usize,
    /// Why the record was rejected (names the field).
    pub error: SchemaError,
}

/// What a load produced.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// The valid sessions, in file order, without duplicates.
    pub sessions: Vec<Session>,
    /// Lines that failed to parse or validate.
    pub rejected: Vec<RejectedLine>,
    /// Valid records skipped because their `sessionId` was already read (the original notebook
    /// leaked such duplicates across its train/test split).
    pub duplicates: usize,
    /// Blank lines skipped.
    pub blank: usize,
}

/// Reads sessions from JSON lines. Each line is parsed and validated with
/// [`shopstream_schema::parse_session`]; invalid lines are reported in
/// [`LoadReport::rejected`] and skipped, repeated `sessionId`s are kept once.
/// Fails only when the reader itself fails.
pub fn read_jsonl<R: BufRead>(mut reader: R, source: &str) -> Result<LoadReport, FeaturesError> {
    let mut report = LoadReport::default();
    let mut seen = HashSet::new();
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).map_err(|source_err| FeaturesError::Io {
            path: source.to_string(),
            source: source_err,
        })?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            report.blank += 1;
            continue;
        }
        match parse_session(line) {
            Ok(session) => {
                if seen.insert(session.session_id.clone()) {
                    report.sessions.push(session);
                } else {
                    report.duplicates += 1;
                }
            }
            Err(error) => report.rejected.push(RejectedLine { line: line_no, error }),
        }
    }
    Ok(report)
}

/// Reads sessions from a JSON-lines file; see [`read_jsonl`].
pub fn load_jsonl(path: impl AsRef<Path>) -> Result<LoadReport, FeaturesError> {
    let path = path.as_ref();
    let file = std::fs::File::open(path)
        .map_err(|source| FeaturesError::Io { path: path.display().to_string(), source })?;
    read_jsonl(std::io::BufReader::new(file), &path.display().to_string())
}
