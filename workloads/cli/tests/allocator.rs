//! The `shopstream` binary's allocator settings: jemalloc is built with the options of the
//! workspace's `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`), so that freed pages are
//! kept for reuse instead of being returned to the kernel and faulted in again, and
//! `MALLOC_CONF` at run time still overrides them. jemalloc reports its options on exit when
//! `MALLOC_CONF` contains `stats_print:true`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// jemalloc's statistics printed on exit of `shopstream --version` under `malloc_conf`.
fn jemalloc_stats(malloc_conf: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_shopstream"))
        .arg("--version")
        .env("MALLOC_CONF", malloc_conf)
        .output()
        .expect("running shopstream --version");
    assert!(out.status.success(), "shopstream --version failed: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn freed_pages_are_kept_by_default() {
    let stats = jemalloc_stats("stats_print:true");
    assert!(
        stats.contains("config.malloc_conf: \"dirty_decay_ms:-1,muzzy_decay_ms:-1\""),
        "jemalloc was not built with the workspace's options (.cargo/config.toml):\n{stats}"
    );
    assert!(stats.contains("opt.dirty_decay_ms: -1"), "{stats}");
    assert!(stats.contains("opt.muzzy_decay_ms: -1"), "{stats}");
}

#[test]
fn malloc_conf_overrides_at_run_time() {
    let stats = jemalloc_stats("stats_print:true,dirty_decay_ms:10000,muzzy_decay_ms:0");
    assert!(stats.contains("opt.dirty_decay_ms: 10000"), "{stats}");
    assert!(stats.contains("opt.muzzy_decay_ms: 0"), "{stats}");
}
