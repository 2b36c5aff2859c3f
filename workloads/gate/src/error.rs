//! Errors that stop the gate (everything transient is retried instead).

use rdkafka::error::KafkaError;
use thiserror::Error;

use crate::args::ConfigError;
use crate::state;

#[derive(Debug, Error)]
pub enum GateError {
    /// Bad configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A Kafka client could not be created.
    #[error(transparent)]
    KafkaClient(#[from] shopstream_kafka::Error),
    /// The consumer could not subscribe.
    #[error("kafka subscribe: {0}")]
    Kafka(#[from] KafkaError),
    /// The Redis client could not be created (bad URL).
    #[error("redis setup: {0}")]
    State(#[from] state::StateError),
    /// Metrics could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}
