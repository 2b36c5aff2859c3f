//! The gate against its own Redis (with RedisBloom, AOF persistence) on a free port, stopped
//! for a few seconds mid-stream and restarted: the gate waits with backoff, commits nothing
//! meanwhile, and catches up with exact counts. Needs `dev/stack up` (broker) and
//! `eval "$(dev/stack env)"` (for `SHOPSTREAM_REDISBLOOM_MODULE`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use prometheus::Registry;
use shopstream_gate::rules::{RuleConfig, reference};
use shopstream_gate::{Gate, Totals};
use shopstream_schema::parse_session;
use tokio_util::sync::CancellationToken;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct OwnRedis {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    module: String,
}

impl OwnRedis {
    async fn start(port: u16, dir: &Path, module: &str) -> OwnRedis {
        let mut r =
            OwnRedis { child: None, port, dir: dir.to_path_buf(), module: module.to_string() };
        r.spawn().await;
        r
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--loadmodule", &self.module])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        self.child = Some(child);
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(mut con) = client.get_multiplexed_async_connection().await {
                let pong: Result<String, _> = redis::cmd("PING").query_async(&mut con).await;
                if pong.is_ok() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("own redis-server on port {} did not come up", self.port);
    }

    /// SIGTERM (Redis flushes its AOF) and wait for the exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let pid = c.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn metric(registry: &Registry, name: &str, label: (&str, &str)) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .filter(|m| m.get_label().iter().any(|l| l.name() == label.0 && l.value() == label.1))
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_for_seconds_the_gate_waits_then_catches_up_exactly() {
    let module = env("SHOPSTREAM_REDISBLOOM_MODULE");
    let dir = std::env::temp_dir().join(format!("gate-redis-{}", suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut redis = OwnRedis::start(free_port(), &dir, &module).await;

    let topics = Topics::new("gate-outage");
    topics.create(3).await;
    let prefix = format!("test:outage:{}", suffix());
    let sessions = sessions(31, 2000, 300);
    let expected = reference(&sessions, &RuleConfig::default());
    let raws: Vec<Raw> = sessions.iter().map(Raw::session).collect();
    let producer = producer();
    publish(&producer, &topics.raw, &raws[..1000]).await;

    let registry = Registry::new();
    let mut args = gate_args(&topics, &redis.url(), &prefix, &format!("gate-{}", suffix()));
    args.max_batch = 200;
    let gate = Gate::new(args, &registry).unwrap();
    let (totals, health) = (gate.totals(), gate.health());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(gate.run(cancel.clone()));
    let t = totals.clone();
    wait_for("the first half", Duration::from_secs(120), || {
        std::future::ready(Totals::get(&t.records_in) >= 1000)
    })
    .await;

    // Redis goes away; the second half arrives meanwhile.
    redis.stop();
    publish(&producer, &topics.raw, &raws[1000..]).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let during = Totals::get(&totals.records_in);
    assert!(during < 2000, "nothing can be processed without Redis ({during})");
    assert!(metric(&registry, "shopstream_gate_retries_total", ("operation", "redis")) >= 2.0);
    assert!(!health.is_ready(), "readiness must drop while Redis is down");
    assert!(!task.is_finished(), "the gate must wait, not exit");

    // Redis is back (same data via AOF): the gate catches up.
    redis.spawn().await;
    wait_for("the catch-up", Duration::from_secs(120), || {
        std::future::ready(Totals::get(&t.records_in) >= 2000)
    })
    .await;
    assert!(health.is_ready());
    cancel.cancel();
    task.await.unwrap().unwrap();

    let mut con = redis_con(&redis.url()).await;
    let counts: std::collections::HashMap<String, u64> = redis::cmd("HGETALL")
        .arg(format!("{{{prefix}}}:sessions-per-user"))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(counts, expected.sessions_per_user);
    let want_valid: HashSet<String> = expected.valid();
    let valid =
        read_all(&topics.valid, want_valid.len(), Duration::from_secs(60), Duration::from_secs(3))
            .await;
    let got: HashSet<String> =
        valid.iter().map(|o| parse_session(&o.payload).unwrap().session_id).collect();
    assert_eq!(got, want_valid);
    assert_eq!(valid.len(), want_valid.len(), "no batch may be produced twice here");
}
