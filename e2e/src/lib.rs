//! Helpers for the end-to-end tests in `tests/`: finding the `shopstream` binary and the
//! service endpoints that `dev/stack env` exports, waiting, and reading what landed in Kafka and
//! Elasticsearch.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use elasticsearch::{CountParts, Elasticsearch};
use shopstream_clients::{EsArgs, MongoArgs, RedisArgs};
use shopstream_kafka::KafkaArgs;
use shopstream_kafka::rdkafka::consumer::{Consumer, StreamConsumer};
use shopstream_kafka::rdkafka::message::OwnedMessage;

/// The endpoint in environment variable `name`, or an error that says how to start the stack.
pub fn endpoint(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run `dev/stack up` and `eval \"$(dev/stack env)\"` first")
    })
}

/// The `shopstream` binary: `$SHOPSTREAM_BIN`, or the one cargo built next to this test
/// (`cargo build -p shopstream` before `cargo test -p shopstream-e2e`).
pub fn shopstream_bin() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("SHOPSTREAM_BIN") {
        return Ok(PathBuf::from(path));
    }
    // Test executables live in <target>/<profile>/deps/; binaries in <target>/<profile>/.
    let exe = std::env::current_exe().context("locating the test executable")?;
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .context("test executable has no profile directory")?;
    let bin = profile_dir.join("shopstream");
    if !bin.exists() {
        bail!("{} does not exist: run `cargo build -p shopstream` first", bin.display());
    }
    Ok(bin)
}

pub use shopstream_test_support::wait_for;

/// Every record of a topic, read with a fresh consumer group until it is idle.
pub async fn read_topic(kafka: &KafkaArgs, topic: &str) -> Vec<OwnedMessage> {
    let group = format!("reader-{}", uuid::Uuid::new_v4().simple());
    let consumer: StreamConsumer = kafka.consumer(&group, "e2e-reader").expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut out = Vec::new();
    let mut wait = Duration::from_secs(20);
    while let Ok(Ok(m)) = tokio::time::timeout(wait, consumer.recv()).await {
        out.push(m.detach());
        wait = Duration::from_secs(4);
    }
    out
}

/// The backends as a workload started in this environment would reach them: the same
/// settings, flags and variables (`dev/stack env`, or `dev/stack env --secure` for TLS and
/// authentication), so a test checks what landed through the same kind of connection.
#[derive(Debug, Clone, clap::Args)]
pub struct Backends {
    /// Kafka.
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// Redis.
    #[command(flatten)]
    pub redis: RedisArgs,
    /// MongoDB.
    #[command(flatten)]
    pub mongo: MongoArgs,
    /// Elasticsearch.
    #[command(flatten)]
    pub es: EsArgs,
}

impl Backends {
    /// The settings from the environment.
    pub fn from_env() -> anyhow::Result<Backends> {
        Ok(shopstream_test_support::parse_args(&[])?)
    }

    /// The secure profile's settings (TLS everywhere, Redis/MongoDB/Elasticsearch
    /// authentication), from the file `SHOPSTREAM_SECURE_ENV` names (`dev/stack up` starts
    /// that profile next to the plain one).
    pub fn secure() -> anyhow::Result<Backends> {
        let s = shopstream_test_support::secure_env();
        let get = |k: &str| -> anyhow::Result<String> {
            s.get(k).cloned().with_context(|| format!("{k} missing from the secure profile"))
        };
        let file = |k: &str| get(k).map(|v| Some(PathBuf::from(v)));
        let mut kafka = KafkaArgs::for_bootstrap(get("SHOPSTREAM_KAFKA")?);
        kafka.security.kafka_security_protocol = shopstream_clients::SecurityProtocol::Ssl;
        kafka.security.kafka_ca_file = file("SHOPSTREAM_KAFKA_CA_FILE")?;
        Ok(Backends {
            kafka,
            redis: RedisArgs {
                redis_ca_file: file("SHOPSTREAM_REDIS_CA_FILE")?,
                redis_username_file: file("SHOPSTREAM_REDIS_USERNAME_FILE")?,
                redis_password_file: file("SHOPSTREAM_REDIS_PASSWORD_FILE")?,
                ..RedisArgs::for_url(get("SHOPSTREAM_REDIS_URL")?)
            },
            mongo: MongoArgs {
                mongo_ca_file: file("SHOPSTREAM_MONGO_CA_FILE")?,
                mongo_username_file: file("SHOPSTREAM_MONGO_USERNAME_FILE")?,
                mongo_password_file: file("SHOPSTREAM_MONGO_PASSWORD_FILE")?,
                ..MongoArgs::for_url(get("SHOPSTREAM_MONGO_URL")?, "shopstream")
            },
            es: EsArgs {
                es_ca_file: file("SHOPSTREAM_ES_CA_FILE")?,
                es_username_file: file("SHOPSTREAM_ES_USERNAME_FILE")?,
                es_password_file: file("SHOPSTREAM_ES_PASSWORD_FILE")?,
                ..EsArgs::for_url(get("SHOPSTREAM_ES_URL")?)
            },
        })
    }

    /// An Elasticsearch client.
    pub fn es_client(&self) -> anyhow::Result<Elasticsearch> {
        Ok(self.es.client(Some(Duration::from_secs(30)))?)
    }

    /// A MongoDB client (the URL is required).
    pub async fn mongo_client(&self) -> anyhow::Result<mongodb::Client> {
        self.mongo.client().await?.context("SHOPSTREAM_MONGO_URL is not set")
    }

    /// A Redis connection.
    pub async fn redis_connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(self.redis.client()?.get_multiplexed_async_connection().await?)
    }
}

/// Documents in an Elasticsearch index (0 while it does not exist or cannot be read).
pub async fn es_count(es: &Elasticsearch, index: &str) -> u64 {
    let Ok(resp) = es.count(CountParts::Index(&[index])).send().await else { return 0 };
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    v["count"].as_u64().unwrap_or(0)
}

/// Documents in a MongoDB collection (0 while it does not exist or cannot be read).
pub async fn mongo_count(mongo: &mongodb::Client, db: &str, collection: &str) -> u64 {
    mongo
        .database(db)
        .collection::<mongodb::bson::Document>(collection)
        .count_documents(mongodb::bson::doc! {})
        .await
        .unwrap_or(0)
}
