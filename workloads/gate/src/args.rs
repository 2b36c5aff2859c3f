//! `shopstream gate`'s configuration ([`GateArgs`]) and its validation at start-up.

use std::net::SocketAddr;
use std::time::Duration;

use shopstream_clients::RedisArgs;
use shopstream_contract as contract;
use shopstream_kafka::{Backoff, KafkaArgs};
use thiserror::Error;

use crate::rules::RuleConfig;

/// Configuration of `shopstream gate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// Kafka connection.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Consumer group of the gate replicas.
    #[arg(long, env = contract::env::CONSUMER_GROUP, default_value = "shopstream-gate")]
    pub group: String,
    /// Topic of raw sessions.
    #[arg(long, env = contract::env::TOPIC_RAW, default_value = "sessions.raw")]
    pub input_topic: String,
    /// Topic of valid sessions.
    #[arg(long, env = contract::env::TOPIC_VALID, default_value = "sessions.valid")]
    pub valid_topic: String,
    /// Topic of suspicious sessions.
    #[arg(long, env = contract::env::TOPIC_SUSPICIOUS, default_value = "sessions.suspicious")]
    pub suspicious_topic: String,
    /// Dead-letter topic for records that fail the schema.
    #[arg(long, env = contract::env::TOPIC_DEAD_LETTER, default_value = "sessions.dead-letter")]
    pub dead_letter_topic: String,
    /// Redis (needs the RedisBloom module): URL, TLS and credentials.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// Prefix of the gate's Redis keys (all keys share the hash tag `{prefix}`).
    #[arg(long, env = contract::env::GATE_REDIS_PREFIX, default_value = "shopstream:gate")]
    pub redis_prefix: String,
    /// False-positive rate of the Bloom filter of known users (0 < rate < 1).
    #[arg(long, env = contract::env::GATE_BLOOM_ERROR_RATE, default_value_t = 0.001)]
    pub bloom_error_rate: f64,
    /// Capacity of the Bloom filter (users) before it adds a layer.
    #[arg(long, env = contract::env::GATE_BLOOM_CAPACITY, default_value_t = 1_000_000)]
    pub bloom_capacity: u64,
    /// Seconds a day's verdicts are kept after their last write (0 = forever). Keep it above
    /// the raw topic's retention: replays older than this are counted again.
    #[arg(long, env = contract::env::GATE_VERDICT_TTL_SECS, default_value_t = 8 * 24 * 3600)]
    pub verdict_ttl_secs: u64,
    /// Flag sessions of new users with an `unknown` device type.
    #[arg(long, env = contract::env::GATE_FLAG_UNKNOWN_DEVICE, default_value_t = true, action = clap::ArgAction::Set)]
    pub flag_unknown_device: bool,
    /// Flag sessions of new users with an `unknown` referrer.
    #[arg(long, env = contract::env::GATE_FLAG_UNKNOWN_REFERRER, default_value_t = true, action = clap::ArgAction::Set)]
    pub flag_unknown_referrer: bool,
    /// Most records per batch (one Redis script call and one commit per batch).
    #[arg(long, env = "SHOPSTREAM_GATE_MAX_BATCH", default_value_t = 5000)]
    pub max_batch: usize,
    /// Longest wait (ms) for a batch to fill once its first record arrived.
    #[arg(long, env = "SHOPSTREAM_GATE_BATCH_LINGER_MS", default_value_t = 20)]
    pub batch_linger_ms: u64,
    /// Batches in flight at once: the next batch is parsed, decided and sent while earlier
    /// ones wait for their acknowledgements (commits stay in order).
    #[arg(long, env = "SHOPSTREAM_GATE_PIPELINE_DEPTH", default_value_t = 4)]
    pub pipeline_depth: usize,
    /// Largest dead-letter payload in bytes; longer originals are cut (and marked).
    #[arg(long, env = "SHOPSTREAM_GATE_MAX_DEAD_LETTER_BYTES", default_value_t = 900_000)]
    pub max_dead_letter_bytes: usize,
    /// Address of the metrics/health endpoint.
    #[arg(long, env = contract::env::METRICS_ADDR, default_value = "0.0.0.0:9100")]
    pub metrics_addr: SocketAddr,
    /// Partitions of the output topics when the gate has to create them.
    #[arg(long, env = "SHOPSTREAM_GATE_OUTPUT_PARTITIONS", default_value_t = 6)]
    pub output_partitions: i32,
    /// First retry delay (ms) when Redis or Kafka fails; doubles up to the maximum.
    #[arg(long, env = "SHOPSTREAM_RETRY_INITIAL_MS", default_value_t = 100)]
    pub retry_initial_ms: u64,
    /// Longest retry delay (ms).
    #[arg(long, env = "SHOPSTREAM_RETRY_MAX_MS", default_value_t = 10_000)]
    pub retry_max_ms: u64,
}

/// A configuration error found at start-up.
#[derive(Debug, Error, PartialEq)]
#[error("invalid gate configuration: {0}")]
pub struct ConfigError(pub String);

impl GateArgs {
    /// Checks the configuration; the message names the offending option.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if !(self.bloom_error_rate > 0.0 && self.bloom_error_rate < 1.0) {
            return err(format!("--bloom-error-rate {} is not in (0, 1)", self.bloom_error_rate));
        }
        if self.bloom_capacity == 0 {
            return err("--bloom-capacity must be positive".into());
        }
        if !(1..=100_000).contains(&self.max_batch) {
            return err(format!("--max-batch {} is not in 1..=100000", self.max_batch));
        }
        if !(1..=64).contains(&self.pipeline_depth) {
            return err(format!("--pipeline-depth {} is not in 1..=64", self.pipeline_depth));
        }
        if self.max_dead_letter_bytes < 1024 {
            return err("--max-dead-letter-bytes must be at least 1024".into());
        }
        if self.retry_initial_ms == 0 || self.retry_max_ms < self.retry_initial_ms {
            return err("need 0 < --retry-initial-ms <= --retry-max-ms".into());
        }
        if self.kafka.bootstrap.trim().is_empty() || self.group.trim().is_empty() {
            return err("--kafka-bootstrap and --group must not be empty".into());
        }
        if self.output_partitions < 1 {
            return err("--output-partitions must be at least 1".into());
        }
        if self.redis_prefix.is_empty() || self.redis_prefix.contains(['{', '}']) {
            return err("--redis-prefix must be non-empty and without braces".into());
        }
        let topics = [
            ("--input-topic", &self.input_topic),
            ("--valid-topic", &self.valid_topic),
            ("--suspicious-topic", &self.suspicious_topic),
            ("--dead-letter-topic", &self.dead_letter_topic),
        ];
        for (i, (name, t)) in topics.iter().enumerate() {
            if t.trim().is_empty() {
                return err(format!("{name} must not be empty"));
            }
            if let Some((other, _)) = topics[..i].iter().find(|(_, u)| u == t) {
                return err(format!("{name} and {other} are both {t:?}; they must differ"));
            }
        }
        Ok(())
    }

    pub(crate) fn rule(&self) -> RuleConfig {
        RuleConfig {
            flag_unknown_device: self.flag_unknown_device,
            flag_unknown_referrer: self.flag_unknown_referrer,
        }
    }

    pub(crate) fn backoff(&self) -> Backoff {
        Backoff::new(
            Duration::from_millis(self.retry_initial_ms),
            Duration::from_millis(self.retry_max_ms),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn args(argv: &[&str]) -> Result<GateArgs, clap::Error> {
        shopstream_test_support::parse_args(argv)
    }

    #[test]
    fn defaults_are_valid() {
        let a = args(&[]).unwrap();
        a.validate().unwrap();
        assert_eq!(a.rule(), RuleConfig::default());
        assert_eq!(a.max_batch, 5000);
    }

    #[test]
    fn rule_switches_parse() {
        let a = args(&["--flag-unknown-referrer", "false"]).unwrap();
        assert_eq!(
            a.rule(),
            RuleConfig { flag_unknown_device: true, flag_unknown_referrer: false }
        );
    }

    #[test]
    fn bad_values_are_named() {
        let e = args(&["--bloom-error-rate", "1.5"]).unwrap().validate().unwrap_err();
        assert!(e.0.contains("--bloom-error-rate"), "{e}");
        let e = args(&["--valid-topic", "sessions.raw"]).unwrap().validate().unwrap_err();
        assert!(e.0.contains("--valid-topic") && e.0.contains("--input-topic"), "{e}");
        let e = args(&["--max-batch", "0"]).unwrap().validate().unwrap_err();
        assert!(e.0.contains("--max-batch"), "{e}");
        let e = args(&["--redis-prefix", "a{b}"]).unwrap().validate().unwrap_err();
        assert!(e.0.contains("--redis-prefix"), "{e}");
        assert!(args(&["--metrics-addr", "nope"]).is_err());
    }
}
