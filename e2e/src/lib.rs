//! Helpers for the end-to-end tests in `tests/`: finding the `shopstream` binary and the
//! service endpoints that `dev/stack env` exports.

use std::path::PathBuf;

use anyhow::{Context, bail};

/// The endpoint in environment variable `name`, or an error that says how to start the stack.
pub fn endpoint(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run `dev/stack up` and `eval \"$(dev/stack env)\"` first")
    })
}

/// The `shopstream` binary: `$SHOPSTREAM_BIN`, or the one cargo built next to this test
/// (`cargo build -p shopstream` before `cargo test -p shopstream-e2e`).
pub fn shopstream_bin() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("SHOPSTREAM_BIN") {
        return Ok(PathBuf::from(path));
    }
    // Test executables live in <target>/<profile>/deps/; binaries in <target>/<profile>/.
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no profile directory")?;
    let bin = profile_dir.join("shopstream");
    if !bin.exists() {
        bail!("{} does not exist: run `cargo build -p shopstream` first", bin.display());
    }
    Ok(bin)
}
