//! A consumer started before its input topic exists (a gate deployed before the first
//! `shopstream generate`) picks the topic up within seconds of its creation, instead of at
//! librdkafka's next periodic metadata refresh (5 minutes by default).
//!
//! Needs the local stack: `dev/stack up && eval "$(dev/stack env)"`.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureRecord;
use rdkafka::util::Timeout;
use shopstream_kafka::{KafkaArgs, TopicSpec};

/// Far below librdkafka's default refresh (300 s), far above what a refresh takes here.
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_started_before_its_topic_exists_reads_it_soon_after_creation() {
    let kafka = KafkaArgs::for_bootstrap(shopstream_test_support::env("SHOPSTREAM_KAFKA"));
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("late-topic-{suffix}");
    let consumer: StreamConsumer =
        kafka.consumer(&format!("late-group-{suffix}"), "late-topic-test").expect("consumer");
    consumer.subscribe(&[topic.as_str()]).expect("subscribe");
    // The consumer joins and learns that the topic does not exist.
    let early = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await;
    assert!(!matches!(early, Ok(Ok(_))), "a record from a topic that does not exist");

    kafka.ensure_topics(&[TopicSpec::new(&topic, 2)]).await.expect("create topic");
    let producer = kafka.producer("late-topic-test").expect("producer");
    for i in 0..20 {
        let payload = format!("record-{i}");
        producer
            .send(FutureRecord::<str, str>::to(&topic).payload(&payload), Timeout::Never)
            .await
            .expect("delivered");
    }
    let created = Instant::now();
    let mut got = 0;
    while got < 20 {
        let left = LIMIT.saturating_sub(created.elapsed());
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => {
                assert!(m.payload().is_some());
                got += 1;
            }
            Ok(Err(_)) => {} // UnknownTopicOrPartition while the topic was missing
            Err(_) => panic!("{got} of 20 records {LIMIT:?} after the topic was created"),
        }
    }
}
