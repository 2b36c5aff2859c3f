//! Workloads given a wrong password for their backend on the secure profile (TLS +
//! authentication, started by `dev/stack up`): each keeps running, retries with backoff, stays
//! not ready, and logs an error that names the backend and the cause, without the password.
//!
//! Needs `dev/stack up`, `eval "$(dev/stack env)"` (for `SHOPSTREAM_SECURE_ENV`) and
//! `cargo build -p shopstream`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use shopstream_e2e::{shopstream_bin, wait_for};
use tokio::process::Command;

const WRONG: &str = "definitely-not-the-password";

struct Case {
    workload: &'static str,
    /// The variable whose file gets the wrong password.
    password_var: &'static str,
    /// Words the retry log line must contain (backend, cause), lower case.
    log_mentions: &'static [&'static str],
}

async fn readyz(port: u16) -> Option<u16> {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.ok()?;
    Some(resp.status().as_u16())
}

async fn run_case(case: &Case, secure: &HashMap<String, String>, dir: &Path) {
    let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let wrong = dir.join(format!("{}-password", case.workload));
    std::fs::write(&wrong, WRONG).expect("wrong password file");
    std::fs::write(dir.join("pseudonym.key"), "k".repeat(40)).expect("key file");
    let log_path = dir.join(format!("{}.log", case.workload));
    let log = std::fs::File::create(&log_path).expect("log file");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = Command::new(shopstream_bin().expect("shopstream binary"));
    cmd.arg(case.workload);
    for (k, v) in secure {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env(case.password_var, &wrong)
        .env("SHOPSTREAM_KAFKA_SECURITY_PROTOCOL", "ssl")
        .env("SHOPSTREAM_TOPIC_RAW", format!("secure-faults-{id}.raw"))
        .env("SHOPSTREAM_TOPIC_VALID", format!("secure-faults-{id}.valid"))
        .env("SHOPSTREAM_TOPIC_SUSPICIOUS", format!("secure-faults-{id}.suspicious"))
        .env("SHOPSTREAM_TOPIC_DEAD_LETTER", format!("secure-faults-{id}.dead"))
        .env("SHOPSTREAM_TOPIC_PROCESSOR_DEAD_LETTER", format!("secure-faults-{id}.pdead"))
        .env("SHOPSTREAM_CONSUMER_GROUP", format!("secure-faults-{id}"))
        .env("SHOPSTREAM_GATE_REDIS_PREFIX", format!("secure-faults-{id}"))
        .env("SHOPSTREAM_ES_INDEX_PREFIX", format!("secure-faults-{id}-"))
        .env("SHOPSTREAM_MONGO_DB", format!("secure_faults_{id}"))
        .env("SHOPSTREAM_PSEUDONYM_KEY_FILE", dir.join("pseudonym.key"))
        .env("SHOPSTREAM_METRICS_ADDR", format!("127.0.0.1:{port}"))
        .env("SHOPSTREAM_RETRY_INITIAL_MS", "100")
        .env("SHOPSTREAM_RETRY_MAX_MS", "1000")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the workload");

    // At least three retries logged, each naming the backend and the cause.
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default().to_lowercase();
    let retrying = |text: &str| {
        text.lines()
            .filter(|l| l.contains("retrying"))
            .filter(|l| case.log_mentions.iter().all(|w| l.contains(w)))
            .count()
    };
    wait_for(
        &format!("{} to log three retries naming {:?}", case.workload, case.log_mentions),
        Duration::from_secs(60),
        || std::future::ready(retrying(&read_log()) >= 3),
    )
    .await;
    assert!(
        child.try_wait().expect("status").is_none(),
        "{} exited instead of retrying:\n{}",
        case.workload,
        read_log()
    );
    assert_ne!(readyz(port).await, Some(200), "{} is ready without its backend", case.workload);
    let text = read_log();
    assert!(!text.contains(WRONG), "the password appears in the {} log", case.workload);
    for (k, v) in secure {
        if k.ends_with("_PASSWORD_FILE") {
            let real = std::fs::read_to_string(v).expect("secret file");
            assert!(!text.contains(real.trim()), "{k} appears in the {} log", case.workload);
        }
    }
    child.kill().await.expect("kill");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_retried_with_backoff_and_named_without_crashing_or_leaking() {
    let secure = shopstream_test_support::secure_env();
    let dir = std::env::temp_dir().join(shopstream_test_support::unique("secure-faults"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cases = [
        Case {
            workload: "gate",
            password_var: "SHOPSTREAM_REDIS_PASSWORD_FILE",
            log_mentions: &["redis", "authentication failed"],
        },
        Case {
            workload: "sink",
            password_var: "SHOPSTREAM_MONGO_PASSWORD_FILE",
            log_mentions: &["mongodb", "authentication failed"],
        },
        Case {
            workload: "process",
            password_var: "SHOPSTREAM_ES_PASSWORD_FILE",
            log_mentions: &["elasticsearch", "401"],
        },
    ];
    for case in &cases {
        run_case(case, &secure, &dir).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
