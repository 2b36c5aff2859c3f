//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.
#![allow(dead_code)]

/// Runs a Python script of this crate's `tests/oracle` with a JSON request on stdin and
/// returns its JSON answer.
pub fn oracle(script: &str, request: &serde_json::Value) -> serde_json::Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle");
    shopstream_test_support::oracle(dir.join(script), request)
}
