//! Integration tests on the real local stack (tansu Kafka broker, osmem Elasticsearch API).
//! Run `eval "$(dev/stack env)"` after `dev/stack up` first.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tokio_util::sync::CancellationToken;

/// Bad records between good ones: (payload, expected dead-letter reason).
fn bad_records(good: &str) -> Vec<(Vec<u8>, &'static str)> {
    // 240 two-byte characters: within the schema's 512 characters, over ES's 512-byte ids.
    let long_id =
        good.replacen("\"sessionId\":\"", &format!("\"sessionId\":\"{}", "é".repeat(240)), 1);
    assert_ne!(long_id, good, "the session id was lengthened");
    vec![
        (br#"{"sessionId": "truncated"#.to_vec(), "malformed_json"),
        (good.replacen("\"clicks\":", "\"clicks\":\"many\",\"x\":", 1).into_bytes(), "wrong_type"),
        (b"\x00\xffbinary\xfe junk".to_vec(), "invalid_utf8"),
        (vec![b' '; 300 * 1024], "too_large"),
        (long_id.into_bytes(), "id_too_long"),
        (good.replacen("\"pageViews\":", "\"pageViews\":99,\"y\":", 1).into_bytes(), "wrong_type"),
    ]
}

async fn assert_es_holds(
    url: &str,
    names: &Names,
    expected: &BTreeMap<String, BTreeMap<String, serde_json::Value>>,
) {
    let ix = names.indexes();
    for index in [&ix.sessions, &ix.products] {
        let want = expected.get(index.as_str()).cloned().unwrap_or_default();
        let got = all_docs(url, index).await;
        assert_eq!(got.len(), want.len(), "{index}: document count");
        for (id, doc) in &want {
            assert_eq!(got.get(id), Some(doc), "{index}: document {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_replay_and_dead_letters() {
    let url = es_url();
    let names = Names::new("proc-e2e");
    create_topic(&names.input, 3).await;
    let good: Vec<String> = sessions(11, 600);
    let bad = bad_records(&good[0]);
    // Bad records spread between the good ones.
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut good_payloads: Vec<Vec<u8>> = Vec::new();
    // (payload, reason, key) of each bad record as produced (`produce` keys record i `k{i % 17}`).
    let mut bad_sent: Vec<(Vec<u8>, &str, Vec<u8>)> = Vec::new();
    for (i, g) in good.iter().enumerate() {
        payloads.push(g.clone().into_bytes());
        good_payloads.push(g.clone().into_bytes());
        if i % 100 == 50 {
            let (payload, reason) = bad[(i / 100) % bad.len()].clone();
            bad_sent.push((payload.clone(), reason, format!("k{}", payloads.len() % 17).into()));
            payloads.push(payload);
        }
    }
    let bad_count = payloads.len() - good.len();
    assert_eq!(bad_count, 6);
    let last = produce(&names.input, &payloads).await;
    let expected = expected_docs(&names.indexes(), &good_payloads);
    let ix = names.indexes();
    let want_products = expected[&ix.products].len() as u64;
    assert!(want_products > good.len() as u64);

    // First pass.
    let mut args = names.args(&url);
    // Below the 300 KB record: its dead letter is cut and flagged.
    let max_dead = 100 * 1024;
    args.max_dead_letter_bytes = max_dead;
    let stop = CancellationToken::new();
    let task = tokio::spawn(shopstream_processor::run_until(args.clone(), stop.clone()));
    wait_for("all sessions committed", Duration::from_secs(240), || async {
        caught_up(&names.group, &names.input, &last)
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("processor ran");
    assert_es_holds(&url, &names, &expected).await;

    // Dead letters: every bad record, with its reason and source coordinates, nothing else.
    let dead = read_topic(&names.dead, bad_count, Duration::from_secs(60));
    let mut reasons: Vec<&str> =
        dead.iter().map(|d| d.headers["shopstream.reason"].as_str()).collect();
    reasons.sort_unstable();
    let mut want: Vec<&str> = bad.iter().map(|(_, r)| *r).collect();
    want.sort_unstable();
    assert_eq!(reasons, want);
    // The shared envelope: key, original (or cut) bytes, and every header with its value, in
    // the envelope's order.
    for d in &dead {
        let h = |name: &str| d.headers.get(name).map(String::as_str);
        let (original, _, key) = bad_sent
            .iter()
            .find(|(p, r, _)| {
                Some(*r) == h("shopstream.reason")
                    && (*p == d.payload || (p.len() > max_dead && p[..max_dead] == d.payload[..]))
            })
            .expect("dead letter carries the original bytes of a bad record");
        let cut = original.len() > max_dead;
        assert_eq!(d.payload.len(), original.len().min(max_dead));
        assert_eq!(d.key.as_deref(), Some(key.as_slice()), "dead letter keeps the record's key");
        assert_eq!(h("shopstream.original.size"), Some(original.len().to_string().as_str()));
        assert_eq!(h("shopstream.truncated"), cut.then_some("true"));
        assert_eq!(h("shopstream.source.topic"), Some(names.input.as_str()));
        let partition: i32 =
            h("shopstream.source.partition").expect("partition").parse().expect("int");
        assert!((0..3).contains(&partition));
        let offset: i64 = h("shopstream.source.offset").expect("offset").parse().expect("int");
        assert!(offset >= 0 && offset <= last[&partition]);
        assert!(h("shopstream.field").is_some_and(|f| !f.is_empty()));
        let message = h("shopstream.message").expect("message");
        assert!(!message.is_empty() && message.len() <= 1024);
        let mut order = vec![
            "shopstream.reason",
            "shopstream.field",
            "shopstream.message",
            "shopstream.original.size",
        ];
        if cut {
            order.push("shopstream.truncated");
        }
        order.extend([
            "shopstream.source.topic",
            "shopstream.source.partition",
            "shopstream.source.offset",
        ]);
        assert_eq!(d.header_names, order);
    }
    assert!(dead.iter().any(|d| d.headers.contains_key("shopstream.truncated")), "one was cut");
    let mapping = es_call(
        &url,
        elasticsearch::http::Method::Get,
        &format!("/{}/_mapping", ix.sessions),
        None,
    )
    .await
    .expect("mapping")
    .1;
    assert_eq!(mapping[&ix.sessions]["mappings"]["dynamic"], "strict");

    // Replay from offset 0 (a new group): no count and no document changes.
    let before_sessions = all_docs(&url, &ix.sessions).await;
    let before_products = all_docs(&url, &ix.products).await;
    let mut replay = names.args(&url);
    replay.group = format!("{}-replay", names.group);
    let stop = CancellationToken::new();
    let task = tokio::spawn(shopstream_processor::run_until(replay.clone(), stop.clone()));
    wait_for("replay committed", Duration::from_secs(240), || async {
        caught_up(&replay.group, &names.input, &last)
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("replay ran");
    assert_eq!(all_docs(&url, &ix.sessions).await, before_sessions);
    assert_eq!(all_docs(&url, &ix.products).await, before_products);
    assert_es_holds(&url, &names, &expected).await;
    cleanup(&url, &names).await;
}

fn spawn_binary(flags: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_shopstream-process"))
        .args(flags)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn shopstream-process")
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let url = es_url();
    let names = Names::new("proc-kill");
    create_topic(&names.input, 3).await;
    let payloads: Vec<Vec<u8>> = sessions(12, 2500).into_iter().map(String::into_bytes).collect();
    let last = produce(&names.input, &payloads).await;
    let expected = expected_docs(&names.indexes(), &payloads);
    let ix = names.indexes();
    let total_sessions = payloads.len() as u64;

    // Small batches so that the kill lands between commits.
    let mut child = spawn_binary(&names.flags(&url, 100));
    wait_for("some sessions stored", Duration::from_secs(120), || async {
        count(&url, &ix.sessions).await >= 300
    })
    .await;
    signal(&child, "KILL");
    let _ = child.wait();
    let at_kill = count(&url, &ix.sessions).await;
    assert!(at_kill < total_sessions, "killed mid-stream ({at_kill} of {total_sessions})");

    let mut child = spawn_binary(&names.flags(&url, 100));
    wait_for("restart caught up", Duration::from_secs(300), || async {
        caught_up(&names.group, &names.input, &last)
    })
    .await;
    // Graceful stop: SIGTERM flushes, commits and exits cleanly.
    signal(&child, "TERM");
    let status =
        tokio::task::spawn_blocking(move || child.wait()).await.expect("join").expect("wait");
    assert!(status.success(), "exit after SIGTERM: {status}");
    assert_es_holds(&url, &names, &expected).await;
    cleanup(&url, &names).await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn osmem_binary() -> String {
    if let Ok(b) = std::env::var("SHOPSTREAM_OSMEM_BIN") {
        return b;
    }
    let python = std::env::var("SHOPSTREAM_PYTHON")
        .unwrap_or_else(|_| format!("{}/../../.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let out = Command::new(python)
        .args(["-c", "import osmem_server; print(osmem_server.resolve_binary())"])
        .output()
        .expect("run python to find osmem (run `dev/stack up`)");
    String::from_utf8(out.stdout).expect("utf8").trim().to_string()
}

fn start_osmem(port: u16) -> Child {
    Command::new(osmem_binary())
        .args(["-addr", &format!("127.0.0.1:{port}"), "-no-stdin-watch", "-no-ja"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start osmem")
}

async fn wait_es_up(url: &str) {
    wait_for("osmem up", Duration::from_secs(30), || async {
        matches!(es_call(url, elasticsearch::http::Method::Get, "/", None).await, Ok((200, _)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elasticsearch_outage_is_waited_out() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut es = start_osmem(port);
    wait_es_up(&url).await;
    let names = Names::new("proc-outage");
    create_topic(&names.input, 2).await;
    let ix = names.indexes();
    let all: Vec<Vec<u8>> = sessions(13, 400).into_iter().map(String::into_bytes).collect();
    let (first, second) = all.split_at(200);

    let mut args = names.args(&url);
    // Generous: one bulk of a loaded stand-in can take seconds; the outage itself is a refused
    // connection, seen at once.
    args.es_timeout_ms = 15_000;
    let stop = CancellationToken::new();
    let task = tokio::spawn(shopstream_processor::run_until(args.clone(), stop.clone()));
    let last = produce(&names.input, first).await;
    wait_for("first half committed", Duration::from_secs(120), || async {
        caught_up(&names.group, &names.input, &last)
    })
    .await;
    assert_eq!(count(&url, &ix.sessions).await, 200);

    // Elasticsearch goes away (osmem keeps data in memory: its replacement starts empty).
    es.kill().expect("kill osmem");
    let _ = es.wait();
    let last = produce(&names.input, second).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(!caught_up(&names.group, &names.input, &last), "nothing is committed while ES is down");

    // A shutdown during the outage returns promptly and leaves the batch uncommitted.
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("stops during the outage")
        .expect("join")
        .expect("processor ran");
    assert!(!caught_up(&names.group, &names.input, &last), "stopped without committing");

    // A new run in the same group re-reads the uncommitted records once ES is back.
    let stop = CancellationToken::new();
    let task = tokio::spawn(shopstream_processor::run_until(args, stop.clone()));
    let mut es = start_osmem(port);
    wait_es_up(&url).await;
    wait_for("second half committed", Duration::from_secs(120), || async {
        caught_up(&names.group, &names.input, &last)
    })
    .await;
    stop.cancel();
    task.await.expect("join").expect("processor ran");
    // The new instance holds exactly the second half, under the processor's own mapping.
    assert_es_holds(&url, &names, &expected_docs(&ix, second)).await;
    let (_, mapping) = es_call(
        &url,
        elasticsearch::http::Method::Get,
        &format!("/{}/_mapping", ix.products),
        None,
    )
    .await
    .expect("mapping");
    assert_eq!(mapping[&ix.products]["mappings"]["dynamic"], "strict");
    assert_eq!(mapping[&ix.products]["mappings"]["properties"]["review"]["type"], "text");
    let _ = es.kill();
    let _ = es.wait();
}
