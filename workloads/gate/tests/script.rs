//! The gate's Redis script (`gate.lua`) on the real Redis + RedisBloom of the local stack,
//! called directly through `GateState::apply`: its decisions, counts and stored verdicts
//! against `rules::reference`, in batches that span several days, repeat sessionIds inside
//! and across batches, and are replayed; verdicts recorded earlier are read back, and a
//! verdict hash holding something else is refused before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::{env, sessions, suffix};
use shopstream_gate::rules::{RuleConfig, Verdict, reference, risk};
use shopstream_gate::state::{BatchItem, Decision, GateState, Keys, StateConfig};
use shopstream_schema::{Session, SessionView};

fn state(prefix: &str) -> GateState {
    let config = StateConfig {
        prefix: prefix.to_string(),
        // Tight enough that no false positive can disturb the exact comparison.
        bloom_error_rate: 1e-7,
        bloom_capacity: 100_000,
        verdict_ttl: Duration::from_secs(3600),
    };
    GateState::new(&shopstream_clients::RedisArgs::for_url(env("SHOPSTREAM_REDIS_URL")), config)
        .unwrap()
}

fn item(s: &Session) -> BatchItem<'_> {
    BatchItem {
        session_id: s.session_id.as_str().into(),
        user_id: s.user_id.as_str().into(),
        risk: risk(&SessionView::of(s), &RuleConfig::default()),
        day: Arc::from(s.session_timestamp.date().to_string()),
    }
}

/// Applies `sessions` in consecutive batches of the given sizes (the last one repeats).
async fn apply_in_batches(
    st: &mut GateState,
    sessions: &[Session],
    sizes: &[usize],
) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(sessions.len());
    let mut rest = sessions;
    let mut sizes = sizes.iter().copied().chain(std::iter::repeat(*sizes.last().unwrap()));
    while !rest.is_empty() {
        let n = sizes.next().unwrap().min(rest.len());
        let (batch, tail) = rest.split_at(n);
        let items: Vec<BatchItem<'_>> = batch.iter().map(item).collect();
        let refs: Vec<&BatchItem<'_>> = items.iter().collect();
        let got = st.apply(&refs).await.unwrap();
        assert_eq!(got.len(), n);
        decisions.extend(got);
        rest = tail;
    }
    decisions
}

async fn cleanup(prefix: &str) {
    let client = redis::Client::open(env("SHOPSTREAM_REDIS_URL")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{{{prefix}}}:*")).query_async(&mut con).await.unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut con).await.unwrap();
    }
}

#[tokio::test]
async fn batches_decide_count_and_record_like_the_reference_across_days_and_duplicates() {
    let prefix = format!("test:script:{}", suffix());
    // 40 users with many unknown devices/referrers, so that users turn from suspicious to
    // known inside batches; every session moved to one of four days (batches mix them).
    let mut all = sessions(23, 1200, 40);
    for (i, s) in all.iter_mut().enumerate() {
        let day = chrono::Days::new((i * 7 % 4) as u64);
        s.session_timestamp = s.session_timestamp.checked_add_days(day).unwrap();
    }
    // Sessions seen again: right after themselves (same batch), and far later (another batch).
    let mut seq = Vec::new();
    for (i, s) in all.iter().enumerate() {
        seq.push(s.clone());
        if i % 17 == 0 {
            seq.push(s.clone());
        }
        if i % 29 == 5 && i >= 400 {
            seq.push(all[i - 390].clone());
        }
    }
    let expected = reference(&seq, &RuleConfig::default());
    let suspicious = expected.verdicts.values().filter(|v| **v != Verdict::Valid).count();
    assert!(suspicious > 20, "the data must exercise the rule ({suspicious} suspicious)");
    let days: HashSet<_> = seq.iter().map(|s| s.session_timestamp.date()).collect();
    assert_eq!(days.len(), 4);

    let mut st = state(&prefix);
    st.init().await.unwrap();
    let decisions = apply_in_batches(&mut st, &seq, &[1, 7, 250, 600, 97]).await;
    let mut seen = HashSet::new();
    for (i, (s, d)) in seq.iter().zip(&decisions).enumerate() {
        let first = seen.insert(s.session_id.as_str());
        let want = Decision { verdict: expected.verdicts[&s.session_id], replayed: !first };
        assert_eq!(*d, want, "position {i}, session {}", s.session_id);
    }
    assert_eq!(st.sessions_per_user().await.unwrap(), expected.sessions_per_user);
    let hll = st.unique_users().await.unwrap() as i64;
    let exact = expected.unique_users.len() as i64;
    assert!((hll - exact).abs() <= 1, "HyperLogLog {hll} vs exact {exact}");
    // Each verdict is stored under its own day, in the text `Verdict::encode` gives.
    for s in &all {
        let day = s.session_timestamp.date().to_string();
        let got = st.recorded_verdict(&day, &s.session_id).await.unwrap();
        assert_eq!(got, Some(expected.verdicts[&s.session_id]), "{}", s.session_id);
    }

    // A replay in other batch sizes: every verdict as recorded, nothing counted again.
    let again = apply_in_batches(&mut st, &seq, &[333]).await;
    for (s, d) in seq.iter().zip(&again) {
        assert_eq!(*d, Decision { verdict: expected.verdicts[&s.session_id], replayed: true });
    }
    assert_eq!(st.sessions_per_user().await.unwrap(), expected.sessions_per_user);
    cleanup(&prefix).await;
}

#[tokio::test]
async fn recorded_verdicts_read_back_and_a_foreign_value_is_refused_before_any_write() {
    let prefix = format!("test:script:{}", suffix());
    let mut st = state(&prefix);
    st.init().await.unwrap();
    let mut batch = sessions(5, 6, 6);
    for s in &mut batch {
        s.session_timestamp = batch_day();
    }
    let day = batch_day().date().to_string();
    let key = Keys::new(&prefix).verdicts(&day);
    let client = redis::Client::open(env("SHOPSTREAM_REDIS_URL")).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    // Verdicts recorded earlier, one of each kind, as any gate version stored them.
    let kinds = [
        "v",
        "s:new_user_unknown_device",
        "s:new_user_unknown_referrer",
        "s:new_user_unknown_device_and_referrer",
    ];
    for (s, v) in batch.iter().zip(kinds) {
        let _: i64 = redis::cmd("HSET")
            .arg(&key)
            .arg(&s.session_id)
            .arg(v)
            .query_async(&mut con)
            .await
            .unwrap();
    }
    let items: Vec<BatchItem<'_>> = batch.iter().map(item).collect();
    let refs: Vec<&BatchItem<'_>> = items.iter().collect();
    let got = st.apply(&refs[..5]).await.unwrap();
    for (d, v) in got.iter().zip(kinds) {
        assert_eq!(*d, Decision { verdict: Verdict::decode(v).unwrap(), replayed: true });
    }
    assert!(!got[4].replayed, "the fifth session is new");
    let counts: HashMap<String, u64> = st.sessions_per_user().await.unwrap();
    assert_eq!(counts.values().sum::<u64>(), 1, "only the new session counts: {counts:?}");

    // Something else in a verdict hash: the call fails and writes nothing.
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg(&batch[0].session_id)
        .arg("maybe")
        .query_async(&mut con)
        .await
        .unwrap();
    let err = st.apply(&[refs[5], refs[0]]).await.unwrap_err();
    assert!(err.to_string().contains("GATE_BADVERDICT"), "{err}");
    assert_eq!(st.sessions_per_user().await.unwrap(), counts);
    let new: Option<String> =
        redis::cmd("HGET").arg(&key).arg(&batch[5].session_id).query_async(&mut con).await.unwrap();
    assert_eq!(new, None, "no verdict may be written by a refused call");
    cleanup(&prefix).await;
}

fn batch_day() -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 11, 30).unwrap().and_hms_opt(12, 0, 0).unwrap()
}
