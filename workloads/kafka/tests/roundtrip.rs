//! 10,000 generated sessions go to the real broker and exactly those 10,000 come back (by
//! sessionId) through a consumer group, with a commit, a consumer shutdown and a resume in between.
//!
//! Needs the local stack: `dev/stack up && eval "$(dev/stack env)"`.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_kafka::{KafkaArgs, TopicSpec};

fn kafka() -> KafkaArgs {
    let bootstrap = std::env::var("SHOPSTREAM_KAFKA")
        .expect("SHOPSTREAM_KAFKA is not set: run `dev/stack up` and `eval \"$(dev/stack env)\"`");
    KafkaArgs::for_bootstrap(bootstrap)
}

/// Reads until `limit` messages were taken or nothing arrived for `idle`; stores the offset of
/// every message it returns (so a commit covers exactly what was read).
async fn read(consumer: &StreamConsumer, limit: usize, idle: Duration) -> Vec<String> {
    let mut ids = Vec::new();
    while ids.len() < limit {
        match tokio::time::timeout(idle, consumer.recv()).await {
            Err(_) => break,
            Ok(Err(e)) => panic!("consume: {e}"),
            Ok(Ok(message)) => {
                let payload = message.payload().expect("payload");
                let session = shopstream_schema::parse_session(payload).expect("valid session");
                ids.push(session.session_id);
                consumer.store_offset_from_message(&message).expect("store offset");
            }
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sessions_round_trip_through_a_consumer_group_with_resume() {
    const N: usize = 10_000;
    let kafka = kafka();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("roundtrip-{suffix}");
    let group = format!("roundtrip-group-{suffix}");
    kafka.ensure_topics(&[TopicSpec::new(&topic, 3)]).await.expect("create topic");

    let generated: Vec<_> = Generator::new(GeneratorConfig { seed: 2026, ..Default::default() })
        .expect("generator")
        .take(N)
        .collect();
    let produced: HashSet<String> =
        generated.iter().map(|g| g.session.session_id.clone()).collect();
    assert_eq!(produced.len(), N);

    let producer = kafka.producer("roundtrip-test").expect("producer");
    let payloads: Vec<(String, String)> =
        generated.iter().map(|g| (g.session.user_id.clone(), g.session.to_json())).collect();
    let mut deliveries: FuturesUnordered<_> = payloads
        .iter()
        .map(|(key, payload)| {
            producer.send(FutureRecord::to(&topic).key(key).payload(payload), Timeout::Never)
        })
        .collect();
    let mut partitions = HashSet::new();
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery.map_err(|(e, _)| e).expect("delivered");
        partitions.insert(delivery.partition);
    }
    assert_eq!(partitions.len(), 3, "keyed records spread over every partition");

    // First consumer: read part of the topic, commit, leave the group.
    let first = kafka.consumer(&group, "roundtrip-1").expect("consumer");
    first.subscribe(&[&topic]).expect("subscribe");
    let part_one = read(&first, 4_000, Duration::from_secs(30)).await;
    assert_eq!(part_one.len(), 4_000, "first consumer read its share");
    first.commit_consumer_state(CommitMode::Sync).expect("commit");
    first.unsubscribe();
    drop(first);

    // Second consumer in the same group resumes after the committed offsets.
    let second = kafka.consumer(&group, "roundtrip-2").expect("consumer");
    second.subscribe(&[&topic]).expect("subscribe");
    let part_two = read(&second, N, Duration::from_secs(15)).await;
    second.commit_consumer_state(CommitMode::Sync).expect("commit");

    let mut consumed: Vec<String> = part_one.into_iter().chain(part_two).collect();
    let total = consumed.len();
    consumed.sort_unstable();
    consumed.dedup();
    assert_eq!(total, N, "no message read twice after the resume, none missing");
    let consumed: HashSet<String> = consumed.into_iter().collect();
    assert_eq!(consumed, produced, "exactly the produced sessions came back");
}
