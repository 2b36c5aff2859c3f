//! Helpers shared by the integration tests and benchmarks of every crate. A dev-dependency
//! only: no library's public API depends on it.
//!
//! Everything here panics with instructions instead of returning errors: a test that cannot
//! reach its service or its reference must fail loudly, never skip.
//!
//! * [`env`]: an endpoint exported by `eval "$(dev/stack env)"`; [`secure_env`]: the secure
//!   profile's settings; [`unique`]: a fresh name;
//! * [`wait_for`]: poll a condition until it holds or a deadline passes;
//! * [`python`], [`oracle`]: the reference implementations (scikit-learn, shap, datasketch,
//!   dp-accounting, vaderSentiment, ...) in the project's venv, called with JSON;
//! * [`helm`]: the Helm that `dev/kube` installed (or `$SHOPSTREAM_HELM`);
//! * [`parse_args`]: a command's typed arguments from a command line (environment included).

#![allow(clippy::unwrap_used)] // Helpers for tests: failing loudly is the point.

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The value of the environment variable `name` (a service endpoint exported by
/// `dev/stack env`); panics with instructions when it is not set.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `dev/stack up` and then `eval \"$(dev/stack env)\"`")
    })
}

/// The secure profile's settings (TLS + authentication), from the file `dev/stack env` names
/// in `SHOPSTREAM_SECURE_ENV`: the same variable names as the plain profile
/// (`SHOPSTREAM_REDIS_URL=rediss://...`, `SHOPSTREAM_REDIS_CA_FILE`, ...), plus
/// `SHOPSTREAM_UNTRUSTED_CA_FILE`, a CA that signed none of the servers' certificates.
pub fn secure_env() -> std::collections::HashMap<String, String> {
    let path = env("SHOPSTREAM_SECURE_ENV");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}: `dev/stack up` starts the secure profile"));
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('\'').to_string()))
        .collect()
}

/// Merges `patch` into `base` as a JSON merge patch (RFC 7386): objects merge key by key, a
/// `null` removes the key, anything else replaces. How tests derive a resource from an example.
pub fn merge_json(base: &mut serde_json::Value, patch: &serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge_json(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

/// `prefix` with a random suffix: names of test topics, groups, indexes and databases.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Polls `check` until it holds; panics after `limit`, naming `what`. For a plain condition
/// pass `|| std::future::ready(cond())`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Parses `argv` (the arguments after the program name) into `A`, a command's
/// `#[derive(clap::Args)]` configuration, as the command would: defaults, environment and
/// value parsers included.
pub fn parse_args<A: clap::Args + clap::FromArgMatches>(argv: &[&str]) -> Result<A, clap::Error> {
    let command = A::augment_args(clap::Command::new("test"));
    let matches =
        command.try_get_matches_from(std::iter::once("test").chain(argv.iter().copied()))?;
    A::from_arg_matches(&matches)
}

/// The Python interpreter with the reference packages: `$SHOPSTREAM_PYTHON`, else the
/// repository's `.venv` (created by `dev/stack up` from `dev/requirements-oracles.txt`).
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SHOPSTREAM_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no reference Python at {}: run `dev/stack up` (it creates .venv with \
         dev/requirements-oracles.txt) or set SHOPSTREAM_PYTHON",
        venv.display()
    );
    venv
}

/// Runs the Python script `script` with `request` as JSON on stdin and returns its JSON
/// answer from stdout; panics with the script's stderr when it fails.
pub fn oracle(script: impl AsRef<Path>, request: &serde_json::Value) -> serde_json::Value {
    let script = script.as_ref();
    let py = python();
    let mut child = Command::new(&py)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {} {}: {e}", py.display(), script.display()));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.to_string().as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{} did not answer JSON: {e}", script.display()))
}

/// A `helm` command: `$SHOPSTREAM_HELM`, else the Helm that `dev/kube install` cached
/// (through `dev/kube helm`, which also points it at the local cluster).
pub fn helm_command() -> Command {
    match std::env::var_os("SHOPSTREAM_HELM") {
        Some(h) => Command::new(h),
        None => {
            let mut c = Command::new(repo_root().join("dev/kube"));
            c.arg("helm");
            c
        }
    }
}

/// Runs `helm` with `args` and returns its stdout; panics with both outputs when it fails.
pub fn helm(args: &[&str]) -> String {
    let out = helm_command()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm ({e}); run `dev/kube install`"));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
