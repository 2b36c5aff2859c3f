//! The clients against the secure profile of the local stack (`dev/stack up` starts it next to
//! the plain one; its settings are in the file `SHOPSTREAM_SECURE_ENV` names): TLS with the
//! stack's CA and the right credentials work, and a wrong password, an untrusted CA and a
//! plaintext connection to a TLS port each fail with an error that names the backend and the
//! cause. Kafka has no SASL here (the local broker cannot provision SASL users; see
//! `docs/security.md`): its TLS is tested, its SASL settings are unit-tested.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use mongodb::bson::doc;
use shopstream_clients::{EsArgs, KafkaSecurityArgs, MongoArgs, RedisArgs, SecurityProtocol};

fn settings() -> HashMap<String, String> {
    shopstream_test_support::secure_env()
}

fn path(s: &HashMap<String, String>, name: &str) -> PathBuf {
    PathBuf::from(s.get(name).unwrap_or_else(|| panic!("{name} missing from the secure profile")))
}

/// A file holding a wrong password.
fn wrong_password() -> PathBuf {
    let dir = std::env::temp_dir().join(shopstream_test_support::unique("secure-clients"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("password");
    std::fs::write(&f, "not-the-password\n").unwrap();
    f
}

/// The error's whole chain, as a log line shows it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn assert_mentions(what: &str, message: &str, any_of: &[&str]) {
    let lower = message.to_lowercase();
    assert!(
        any_of.iter().any(|w| lower.contains(&w.to_lowercase())),
        "{what}: {message:?} mentions none of {any_of:?}"
    );
}

// ---- Redis ------------------------------------------------------------------------------

fn redis_args(s: &HashMap<String, String>) -> RedisArgs {
    RedisArgs {
        redis_url: s["SHOPSTREAM_REDIS_URL"].clone(),
        redis_ca_file: Some(path(s, "SHOPSTREAM_REDIS_CA_FILE")),
        redis_username_file: Some(path(s, "SHOPSTREAM_REDIS_USERNAME_FILE")),
        redis_password_file: Some(path(s, "SHOPSTREAM_REDIS_PASSWORD_FILE")),
        redis_insecure_skip_verify: false,
    }
}

async fn redis_ping(args: &RedisArgs) -> Result<String, String> {
    let client = args.client().map_err(|e| chain(&e))?;
    let cfg = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(Some(Duration::from_secs(5)));
    let mut con = client
        .get_multiplexed_async_connection_with_config(&cfg)
        .await
        .map_err(|e| format!("Redis {}: {}", args.display_url(), chain(&e)))?;
    redis::cmd("PING").query_async(&mut con).await.map_err(|e| chain(&e))
}

#[tokio::test]
async fn redis_over_tls_with_acl_credentials_and_each_misconfiguration_fails_clearly() {
    let s = settings();
    let good = redis_args(&s);
    assert_eq!(redis_ping(&good).await, Ok("PONG".to_string()));

    let wrong = RedisArgs { redis_password_file: Some(wrong_password()), ..good.clone() };
    let e = redis_ping(&wrong).await.expect_err("wrong password");
    assert!(e.starts_with("Redis "), "{e}");
    assert_mentions("wrong password", &e, &["authentication failed", "WRONGPASS"]);
    assert!(!e.contains("not-the-password"), "the error repeats the password: {e}");

    let untrusted =
        RedisArgs { redis_ca_file: Some(path(&s, "SHOPSTREAM_UNTRUSTED_CA_FILE")), ..good.clone() };
    let e = redis_ping(&untrusted).await.expect_err("untrusted CA");
    assert!(e.starts_with("Redis "), "{e}");
    assert_mentions("untrusted CA", &e, &["UnknownIssuer", "certificate"]);

    let plaintext = RedisArgs {
        redis_url: good.redis_url.replacen("rediss://", "redis://", 1),
        redis_ca_file: None,
        ..good.clone()
    };
    let e = redis_ping(&plaintext).await.expect_err("plaintext to the TLS port");
    assert!(e.starts_with("Redis "), "{e}");
}

// ---- MongoDB ----------------------------------------------------------------------------

fn mongo_args(s: &HashMap<String, String>) -> MongoArgs {
    MongoArgs {
        mongo_url: Some(s["SHOPSTREAM_MONGO_URL"].clone()),
        mongo_db: "secure_clients_test".into(),
        mongo_ca_file: Some(path(s, "SHOPSTREAM_MONGO_CA_FILE")),
        mongo_username_file: Some(path(s, "SHOPSTREAM_MONGO_USERNAME_FILE")),
        mongo_password_file: Some(path(s, "SHOPSTREAM_MONGO_PASSWORD_FILE")),
        mongo_insecure_skip_verify: false,
    }
}

async fn mongo_write_read(args: &MongoArgs) -> Result<u64, String> {
    let url = args.mongo_url.clone().unwrap_or_default();
    let mut with_timeout = args.clone();
    let sep = if url.contains('?') { '&' } else { '?' };
    with_timeout.mongo_url = Some(format!("{url}{sep}serverSelectionTimeoutMS=4000"));
    let db = with_timeout.database().await.map_err(|e| chain(&e))?.expect("a URL");
    let coll = db.collection::<mongodb::bson::Document>("probe");
    let shown = shopstream_clients::redact_url(&url);
    let err = |e: mongodb::error::Error| format!("MongoDB {shown}: {}", chain(&e));
    coll.insert_one(doc! { "probe": 1 }).await.map_err(err)?;
    let n = coll.count_documents(doc! {}).await.map_err(err)?;
    db.drop().await.map_err(err)?;
    Ok(n)
}

#[tokio::test]
async fn mongodb_over_tls_with_scram_and_each_misconfiguration_fails_clearly() {
    let s = settings();
    let good = mongo_args(&s);
    assert_eq!(mongo_write_read(&good).await, Ok(1));

    let wrong = MongoArgs { mongo_password_file: Some(wrong_password()), ..good.clone() };
    let e = mongo_write_read(&wrong).await.expect_err("wrong password");
    assert!(e.starts_with("MongoDB "), "{e}");
    assert_mentions("wrong password", &e, &["authentication failed", "auth"]);
    assert!(!e.contains("not-the-password"), "the error repeats the password: {e}");

    let untrusted =
        MongoArgs { mongo_ca_file: Some(path(&s, "SHOPSTREAM_UNTRUSTED_CA_FILE")), ..good.clone() };
    let e = mongo_write_read(&untrusted).await.expect_err("untrusted CA");
    assert_mentions("untrusted CA", &e, &["UnknownIssuer", "certificate"]);

    let plaintext = MongoArgs {
        mongo_url: good
            .mongo_url
            .as_ref()
            .map(|u| u.replace("&tls=true", "").replace("?tls=true", "?")),
        mongo_ca_file: None,
        ..good.clone()
    };
    let e = mongo_write_read(&plaintext).await.expect_err("plaintext to the TLS port");
    assert!(e.starts_with("MongoDB "), "{e}");
}

// ---- Elasticsearch ------------------------------------------------------------------------

fn es_args(s: &HashMap<String, String>) -> EsArgs {
    EsArgs {
        es_url: Some(s["SHOPSTREAM_ES_URL"].clone()),
        es_ca_file: Some(path(s, "SHOPSTREAM_ES_CA_FILE")),
        es_username_file: Some(path(s, "SHOPSTREAM_ES_USERNAME_FILE")),
        es_password_file: Some(path(s, "SHOPSTREAM_ES_PASSWORD_FILE")),
        es_api_key_file: None,
        es_insecure_skip_verify: false,
    }
}

/// `GET /`: the status, or the transport error.
async fn es_root(args: &EsArgs) -> Result<u16, String> {
    let client = args.client(Some(Duration::from_secs(5))).map_err(|e| chain(&e))?;
    let r = client
        .info()
        .send()
        .await
        .map_err(|e| format!("Elasticsearch {}: {}", args.display_url(), chain(&e)))?;
    Ok(r.status_code().as_u16())
}

#[tokio::test]
async fn elasticsearch_over_https_with_basic_auth_and_each_misconfiguration_fails_clearly() {
    let s = settings();
    let good = es_args(&s);
    assert_eq!(es_root(&good).await, Ok(200));

    let wrong = EsArgs { es_password_file: Some(wrong_password()), ..good.clone() };
    assert_eq!(es_root(&wrong).await, Ok(401), "a wrong password is refused with 401");

    let untrusted =
        EsArgs { es_ca_file: Some(path(&s, "SHOPSTREAM_UNTRUSTED_CA_FILE")), ..good.clone() };
    let e = es_root(&untrusted).await.expect_err("untrusted CA");
    assert!(e.starts_with("Elasticsearch "), "{e}");
    assert_mentions("untrusted CA", &e, &["UnknownIssuer", "certificate"]);

    let plaintext = EsArgs {
        es_url: good.es_url.as_ref().map(|u| u.replacen("https://", "http://", 1)),
        es_ca_file: None,
        ..good.clone()
    };
    // The TLS port answers a plaintext request with 400 ("plain HTTP request was sent to HTTPS
    // port"), which no workload mistakes for success.
    let r = es_root(&plaintext).await;
    assert!(r != Ok(200), "a plaintext request to the TLS port must not succeed: {r:?}");
}

// ---- Kafka ------------------------------------------------------------------------------

fn kafka_security(s: &HashMap<String, String>, ca: &str) -> KafkaSecurityArgs {
    KafkaSecurityArgs {
        kafka_security_protocol: SecurityProtocol::Ssl,
        kafka_ca_file: Some(path(s, ca)),
        ..Default::default()
    }
}

/// Lists the broker's topics through a client with `security`: Ok(number of brokers).
fn kafka_metadata(bootstrap: &str, security: &KafkaSecurityArgs) -> Result<usize, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let mut cfg = rdkafka::ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap).set("client.id", "secure-clients-test");
    security.resolve().map_err(|e| chain(&e))?.apply(&mut cfg);
    let consumer: BaseConsumer = cfg.create().map_err(|e| chain(&e))?;
    consumer
        .fetch_metadata(None, Duration::from_secs(8))
        .map(|m| m.brokers().len())
        .map_err(|e| format!("Kafka {bootstrap}: {}", chain(&e)))
}

#[tokio::test]
async fn kafka_over_tls_and_each_misconfiguration_fails() {
    let s = settings();
    let bootstrap = s["SHOPSTREAM_KAFKA"].clone();
    assert_eq!(kafka_metadata(&bootstrap, &kafka_security(&s, "SHOPSTREAM_KAFKA_CA_FILE")), Ok(1));
    let e = kafka_metadata(&bootstrap, &kafka_security(&s, "SHOPSTREAM_UNTRUSTED_CA_FILE"))
        .expect_err("untrusted CA");
    assert!(e.starts_with("Kafka "), "{e}");
    let e = kafka_metadata(&bootstrap, &KafkaSecurityArgs::default())
        .expect_err("plaintext to the TLS port");
    assert!(e.starts_with("Kafka "), "{e}");
}
