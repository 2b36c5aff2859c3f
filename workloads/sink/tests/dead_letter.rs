//! The sink on the real local stack (Kafka protocol broker, MongoDB wire server) fed a valid
//! topic that a misbehaving producer polluted with malformed records: every good session lands
//! in MongoDB, every malformed record lands in the dead-letter topic with its original key and
//! bytes and the gate's headers, and the offsets are committed (a restart in the same group
//! reads nothing again). Needs `dev/stack up` and `eval "$(dev/stack env)"`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../gate/tests/common/mod.rs"]
mod common;
mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mongodb::bson::{Document, doc};
use prometheus::Registry;
use shopstream_kafka::dead_letter;
use shopstream_schema::parse_session;
use shopstream_sink::{Sink, SinkArgs, SinkTotals};
use tokio_util::sync::CancellationToken;

fn sink_args(input: &str, dead: &str, group: &str, db: &str) -> SinkArgs {
    let mut a = support::sink_args(input, dead, group, db, "integration-test-pseudonym-key-0002");
    a.kafka.options.push(("fetch.message.max.bytes".into(), "2000000".into()));
    a.kafka.options.push(("message.max.bytes".into(), "2000000".into()));
    a.max_batch = 100;
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_records_on_the_valid_topic_are_dead_lettered_and_good_ones_land() {
    let topics = Topics::new("sink-dl");
    topics.create(2).await;
    let db_name = format!("test_sink_dl_{}", suffix());
    let group = format!("sink-dl-{}", suffix());

    // 300 good sessions with the ten kinds of malformed record spread between them.
    let sessions = sessions(31, 300, 60);
    let bad = malformed(&sessions[0]);
    let mut records: Vec<Raw> = Vec::new();
    for (i, s) in sessions.iter().enumerate() {
        records.push(Raw::session(s));
        if i % 30 == 7 {
            records.push(bad[i / 30].1.clone());
        }
    }
    assert_eq!(records.len(), sessions.len() + bad.len());
    publish(&producer(), &topics.valid, &records).await;

    let sink = Sink::new(
        sink_args(&topics.valid, &topics.dead_letter, &group, &db_name),
        &Registry::new(),
    )
    .await
    .unwrap();
    let totals: Arc<SinkTotals> = sink.totals();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(sink.run(cancel.clone()));
    let t = totals.clone();
    let total = records.len() as u64;
    wait_for("the sink", Duration::from_secs(120), || {
        std::future::ready(SinkTotals::get(&t.records_in) >= total)
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(SinkTotals::get(&totals.records_in), total);
    assert_eq!(SinkTotals::get(&totals.failed), bad.len() as u64);
    assert_eq!(SinkTotals::get(&totals.written), sessions.len() as u64);

    // MongoDB: exactly the good sessions.
    let client = mongodb::Client::with_uri_str(env("SHOPSTREAM_MONGO_URL")).await.unwrap();
    let db = client.database(&db_name);
    let coll = db.collection::<Document>("user_sessions");
    let ids: HashSet<String> = {
        use futures::TryStreamExt;
        let docs: Vec<Document> = coll.find(doc! {}).await.unwrap().try_collect().await.unwrap();
        docs.iter().map(|d| d.get_str("_id").unwrap().to_string()).collect()
    };
    let want: HashSet<String> = sessions.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(ids, want);

    // Dead-letter topic: each malformed record once, original key and bytes, the parser's
    // reason and field, and where it came from.
    let dead =
        read_all(&topics.dead_letter, bad.len(), Duration::from_secs(60), Duration::from_secs(2))
            .await;
    assert_eq!(dead.len(), bad.len(), "one dead letter per malformed record");
    let by_key: HashMap<Vec<u8>, &Out> =
        dead.iter().map(|o| (o.key.clone().expect("dead letters keep the key"), o)).collect();
    for (name, raw) in &bad {
        let key = raw.key.clone().unwrap();
        let o = by_key.get(&key).unwrap_or_else(|| panic!("{name} was not dead-lettered"));
        let original = raw.payload.clone().unwrap_or_default();
        assert_eq!(o.payload, original, "{name}: original bytes");
        let (reason, field) = match &raw.payload {
            Some(p) => {
                let e = parse_session(p).unwrap_err();
                (e.reason().to_string(), e.field().to_string())
            }
            None => (dead_letter::REASON_EMPTY.to_string(), "$".to_string()),
        };
        assert_eq!(o.header(dead_letter::REASON), Some(reason.as_str()), "{name}");
        assert_eq!(o.header(dead_letter::FIELD), Some(field.as_str()), "{name}");
        assert_eq!(o.header(dead_letter::SOURCE_TOPIC), Some(topics.valid.as_str()), "{name}");
        let size = original.len().to_string();
        assert_eq!(o.header(dead_letter::ORIGINAL_SIZE), Some(size.as_str()), "{name}");
        assert!(o.header(dead_letter::SOURCE_OFFSET).is_some_and(|v| v.parse::<i64>().is_ok()));
        assert!(o.header(dead_letter::MESSAGE).is_some_and(|m| !m.is_empty()), "{name}");
    }

    // The batches were committed: a restarted sink in the same group reads nothing again.
    let again = Sink::new(
        sink_args(&topics.valid, &topics.dead_letter, &group, &db_name),
        &Registry::new(),
    )
    .await
    .unwrap();
    let again_totals = again.totals();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(again.run(cancel.clone()));
    tokio::time::sleep(Duration::from_secs(8)).await;
    cancel.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(SinkTotals::get(&again_totals.records_in), 0, "committed records were re-read");

    db.drop().await.unwrap();
}
