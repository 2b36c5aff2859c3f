//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.
#![allow(dead_code)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The Python interpreter of the reference packages: `SHOPSTREAM_PYTHON`, else the repo's
/// `.venv`. Panics with instructions when neither exists (tests never skip silently).
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("SHOPSTREAM_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with datasketch: set SHOPSTREAM_PYTHON or run `dev/stack up` \
         (it creates .venv with dev/requirements-oracles.txt)"
    );
    venv
}

/// Runs a Python script of this crate's `tests/oracle` with a JSON request on stdin and
/// returns its JSON answer.
pub fn oracle(script: &str, request: &serde_json::Value) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/oracle").join(script);
    let mut child = Command::new(python())
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start Python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(request).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("oracle answer is not JSON")
}

/// Reads a required service endpoint from the environment, failing with instructions.
pub fn service_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run `dev/stack up` and then `eval \"$(dev/stack env)\"` before \
             the tests"
        )
    })
}

/// A random suffix for names of test databases and indices.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
