//! What the sink's integration tests share (the gate's `common` module has the rest).

use shopstream_pseudonym::KeyArgs;
use shopstream_sink::SinkArgs;

/// Sink arguments for a test: the stack's broker and MongoDB, its own topics, group and
/// database, a fixed pseudonym key, fast retries and a free metrics port.
pub fn sink_args(input: &str, dead: &str, group: &str, db: &str, key: &str) -> SinkArgs {
    let mut a: SinkArgs = shopstream_test_support::parse_args(&[]).unwrap();
    a.kafka = crate::common::kafka();
    a.group = group.to_string();
    a.input_topic = input.to_string();
    a.dead_letter_topic = dead.to_string();
    a.mongo.mongo_url = Some(shopstream_test_support::env("SHOPSTREAM_MONGO_URL"));
    a.mongo.mongo_db = db.to_string();
    a.key = KeyArgs { key: Some(key.to_string()), key_file: None };
    a.max_batch = 500;
    a.metrics_addr = "127.0.0.1:0".parse().unwrap();
    a.retry_initial_ms = 50;
    a.retry_max_ms = 1000;
    a
}
