//! The gate on the real local stack (Kafka protocol broker + Redis with RedisBloom).
//! Needs `dev/stack up` and `eval "$(dev/stack env)"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use prometheus::Registry;
use shopstream_gate::outputs::headers;
use shopstream_gate::rules::{RuleConfig, Verdict, reference};
use shopstream_gate::state::GateState;
use shopstream_gate::{Gate, GateArgs, Totals};
use shopstream_schema::{Session, parse_session};
use tokio_util::sync::CancellationToken;

/// Runs a gate in-process until it has processed `records` records, then shuts it down
/// gracefully. Returns its totals.
async fn run_gate(args: GateArgs, records: u64) -> Arc<Totals> {
    let gate = Gate::new(args, &Registry::new()).expect("gate");
    let totals = gate.totals();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(gate.run(cancel.clone()));
    let t = totals.clone();
    wait_for("the gate to process every record", Duration::from_secs(180), || {
        std::future::ready(Totals::get(&t.records_in) >= records)
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    totals
}

fn by_session_id(outs: &[Out]) -> HashMap<String, Vec<&Out>> {
    let mut m: HashMap<String, Vec<&Out>> = HashMap::new();
    for o in outs {
        let s = parse_session(&o.payload).expect("outputs are valid sessions");
        m.entry(s.session_id).or_default().push(o);
    }
    m
}

async fn state_of(url: &str, prefix: &str) -> (u64, HashMap<String, u64>) {
    let mut st = GateState::new(
        &shopstream_clients::RedisArgs::for_url(url),
        shopstream_gate::state::StateConfig {
            prefix: prefix.into(),
            bloom_error_rate: 0.01,
            bloom_capacity: 10,
            verdict_ttl: Duration::ZERO,
        },
    )
    .unwrap();
    (st.unique_users().await.unwrap(), st.sessions_per_user().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_exactly_as_the_reference_counts_exactly_and_replays_as_a_no_op() {
    let redis_url = env("SHOPSTREAM_REDIS_URL");
    let topics = Topics::new("gate-main");
    topics.create(3).await;
    let prefix = format!("test:gate:{}", suffix());

    // 3000 generated sessions of 500 users, with every kind of malformed record in between.
    let sessions = sessions(11, 3000, 500);
    let bad = malformed(&sessions[0]);
    let mut raws: Vec<Raw> = Vec::new();
    let mut bad_iter = bad.iter();
    for (i, s) in sessions.iter().enumerate() {
        raws.push(Raw::session(s));
        if i % 300 == 150
            && let Some((_, b)) = bad_iter.next()
        {
            raws.push(b.clone());
        }
    }
    raws.extend(bad_iter.map(|(_, b)| b.clone()));
    let producer = producer();
    publish(&producer, &topics.raw, &raws).await;

    let expected = reference(&sessions, &RuleConfig::default());
    let want_valid: HashSet<&String> =
        expected.verdicts.iter().filter(|(_, v)| **v == Verdict::Valid).map(|(k, _)| k).collect();
    let want_suspicious: HashMap<&String, Verdict> = expected
        .verdicts
        .iter()
        .filter(|(_, v)| **v != Verdict::Valid)
        .map(|(k, v)| (k, *v))
        .collect();
    assert!(want_suspicious.len() > 20, "the data must exercise the rule");
    assert!(want_valid.len() > 1000);

    let group = format!("gate-{}", suffix());
    let mut args = gate_args(&topics, &redis_url, &prefix, &group);
    // Small batches: ~30 of them go through the pipeline (Redis deciding one while the next
    // is parsed and earlier ones are acknowledged), and users' sessions span batches, so the
    // verdicts show that Redis applied the batches in order.
    args.max_batch = 97;
    let totals = run_gate(args.clone(), raws.len() as u64).await;
    assert_eq!(Totals::get(&totals.valid), want_valid.len() as u64);
    assert_eq!(Totals::get(&totals.suspicious), want_suspicious.len() as u64);
    assert_eq!(Totals::get(&totals.dead_letter), bad.len() as u64);
    assert_eq!(Totals::get(&totals.replayed), 0);

    let settle = Duration::from_secs(3);
    let valid = read_all(&topics.valid, want_valid.len(), Duration::from_secs(60), settle).await;
    let suspicious =
        read_all(&topics.suspicious, want_suspicious.len(), Duration::from_secs(60), settle).await;
    let dead = read_all(&topics.dead_letter, bad.len(), Duration::from_secs(60), settle).await;

    // Valid: exactly the expected sessions, once each, keyed by userId, original bytes.
    assert_eq!(valid.len(), want_valid.len());
    let valid_ids = by_session_id(&valid);
    assert_eq!(valid_ids.keys().collect::<HashSet<_>>(), want_valid);
    let originals: HashMap<&str, &Session> =
        sessions.iter().map(|s| (s.session_id.as_str(), s)).collect();
    for (sid, outs) in &valid_ids {
        let s = originals[sid.as_str()];
        assert_eq!(outs[0].key.as_deref(), Some(s.user_id.as_bytes()));
        assert_eq!(outs[0].payload, s.to_json().into_bytes());
        assert_eq!(outs[0].header(headers::REASON), None);
    }
    // Suspicious: exactly the expected ones, each with the expected reason.
    assert_eq!(suspicious.len(), want_suspicious.len());
    for (sid, outs) in by_session_id(&suspicious) {
        let want = want_suspicious.get(&sid).expect("unexpected suspicious session");
        assert_eq!(outs[0].header(headers::REASON), Some(want.reason()));
        assert_eq!(outs[0].header(headers::SOURCE_TOPIC), Some(topics.raw.as_str()));
    }
    // Dead letters: every malformed record, with the parser's reason, field and its bytes.
    assert_eq!(dead.len(), bad.len());
    for (name, raw) in &bad {
        let d = dead
            .iter()
            .find(|d| d.key == raw.key)
            .unwrap_or_else(|| panic!("{name} did not reach the dead-letter topic"));
        let original = raw.payload.clone().unwrap_or_default();
        let (reason, field) = match &raw.payload {
            Some(p) => {
                let e = parse_session(p).unwrap_err();
                (e.reason().to_string(), e.field().to_string())
            }
            None => ("empty_payload".to_string(), "$".to_string()),
        };
        assert_eq!(d.header(headers::REASON), Some(reason.as_str()), "{name}");
        assert_eq!(d.header(headers::FIELD), Some(field.as_str()), "{name}");
        assert!(!d.header(headers::MESSAGE).unwrap_or_default().is_empty(), "{name}");
        assert_eq!(d.header(headers::ORIGINAL_SIZE), Some(original.len().to_string().as_str()));
        assert_eq!(d.payload, original, "{name}: dead letter must carry the original bytes");
        assert!(d.header(headers::SOURCE_OFFSET).is_some());
    }
    let reasons: HashSet<&str> = dead.iter().filter_map(|d| d.header(headers::REASON)).collect();
    for r in [
        "wrong_type",
        "malformed_json",
        "invalid_utf8",
        "too_large",
        "invalid_value",
        "missing_field",
        "empty_payload",
    ] {
        assert!(reasons.contains(r), "no dead letter with reason {r}: {reasons:?}");
    }

    // Redis: per-user counts exact, HLL within 2 % of the exact number of users.
    let (hll, counts) = state_of(&redis_url, &prefix).await;
    let exact = expected.unique_users.len() as f64;
    assert!(((hll as f64) - exact).abs() / exact <= 0.02, "HLL {hll} vs exact {exact}");
    assert_eq!(counts, expected.sessions_per_user);

    // Full replay from offset 0 with a new group: nothing counted again, same verdicts, and
    // every output is produced again byte for byte.
    let args2 = GateArgs { group: format!("gate-replay-{}", suffix()), ..args };
    let totals2 = run_gate(args2, raws.len() as u64).await;
    assert_eq!(Totals::get(&totals2.replayed), sessions.len() as u64);
    assert_eq!(Totals::get(&totals2.valid), want_valid.len() as u64);
    assert_eq!(Totals::get(&totals2.suspicious), want_suspicious.len() as u64);
    assert_eq!(state_of(&redis_url, &prefix).await, (hll, counts));
    let valid2 =
        read_all(&topics.valid, 2 * want_valid.len(), Duration::from_secs(60), settle).await;
    assert_eq!(valid2.len(), 2 * want_valid.len());
    for (sid, outs) in by_session_id(&valid2) {
        assert_eq!(outs.len(), 2, "{sid}");
        assert_eq!((&outs[0].key, &outs[0].payload), (&outs[1].key, &outs[1].payload));
    }
    let suspicious2 =
        read_all(&topics.suspicious, 2 * want_suspicious.len(), Duration::from_secs(60), settle)
            .await;
    assert_eq!(suspicious2.len(), 2 * want_suspicious.len());
    for (_, outs) in by_session_id(&suspicious2) {
        assert_eq!(outs.len(), 2);
        assert_eq!(outs[0], outs[1], "replayed suspicious records must be identical, headers too");
    }
    redis_cleanup(&redis_url, &prefix).await;
}
