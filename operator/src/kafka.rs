//! Kafka topics through the admin API: create, grow partitions, set retention, delete.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use shopstream_clients::{ClientCert, KafkaSecurity, Pem, SaslMechanism, SecurityProtocol};

use crate::crd::{self, KafkaSpec, TopicSpec, TopicStatus};
use crate::secrets::SecretValues;

/// Errors talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The admin client could not be built (bad bootstrap or unsupported security settings).
    #[error("cannot create a Kafka admin client: {0}")]
    Client(#[source] KafkaError),
    /// The pipeline's TLS or SASL settings cannot be used (a Secret is missing, or the
    /// settings would send credentials in clear). Never contains a Secret's value.
    #[error("Kafka security settings: {0}")]
    Security(String),
    /// Metadata could not be read.
    #[error("cannot read Kafka metadata from {bootstrap}: {source}")]
    Metadata {
        /// Bootstrap servers.
        bootstrap: String,
        /// Cause.
        source: KafkaError,
    },
    /// An admin operation failed for one topic.
    #[error("{operation} of topic {topic:?} failed: {code}")]
    Operation {
        /// What was attempted.
        operation: &'static str,
        /// Topic name.
        topic: String,
        /// Broker error code.
        code: RDKafkaErrorCode,
    },
    /// An admin request failed as a whole.
    #[error("{operation} request failed: {source}")]
    Request {
        /// What was attempted.
        operation: &'static str,
        /// Cause.
        source: KafkaError,
    },
    /// Some steps failed (the others were carried out).
    #[error("{}", .0.join("; "))]
    Incomplete(Vec<String>),
    /// A blocking task panicked or was cancelled.
    #[error("metadata task failed: {0}")]
    Join(String),
}

/// The operator's own Kafka security for a pipeline, from the pipeline's spec and the values
/// of the Secrets it names: the same protocol as its workloads (credentials -> `SASL_SSL`,
/// `tls` alone -> `SSL`, neither -> `PLAINTEXT`), with the PEM material inline (the operator
/// has it in memory, never on disk). Credentials without `tls` are refused.
pub fn admin_security(
    spec: &KafkaSpec,
    secrets: &SecretValues,
) -> Result<KafkaSecurity, TopicError> {
    let bad = |m: String| TopicError::Security(m);
    let credentials = match &spec.credentials_secret {
        Some(c) => Some((
            secrets.credential(&c.name, "username").map_err(bad)?.expose().to_string(),
            secrets.credential(&c.name, "password").map_err(bad)?,
        )),
        None => None,
    };
    if credentials.is_some() && spec.tls.is_none() {
        return Err(bad(
            "spec.kafka.credentialsSecret without spec.kafka.tls would send the credentials in \
             clear: refused"
                .into(),
        ));
    }
    let mut security = KafkaSecurity {
        protocol: match (credentials.is_some(), spec.tls.is_some()) {
            (true, _) => SecurityProtocol::SaslSsl,
            (false, true) => SecurityProtocol::Ssl,
            (false, false) => SecurityProtocol::Plaintext,
        },
        mechanism: match spec.sasl_mechanism {
            crd::SaslMechanism::ScramSha512 => SaslMechanism::ScramSha512,
            crd::SaslMechanism::ScramSha256 => SaslMechanism::ScramSha256,
            crd::SaslMechanism::Plain => SaslMechanism::Plain,
        },
        credentials,
        ..Default::default()
    };
    if let Some(t) = &spec.tls {
        if let Some(ca) = &t.ca_secret {
            security.ca = Some(Pem::Inline(secrets.text(&ca.name, &ca.key).map_err(bad)?));
        }
        if let Some(c) = &t.client_cert_secret {
            security.client_cert = Some(ClientCert::Inline {
                cert: secrets.text(&c.name, "tls.crt").map_err(bad)?,
                key: secrets.text(&c.name, "tls.key").map_err(bad)?,
            });
        }
        security.insecure_skip_verify = t.insecure_skip_verify;
    }
    security.validate().map_err(|e| bad(e.to_string()))?;
    Ok(security)
}

/// What identifies an admin client built by [`admin_security`] without containing any Secret
/// value: the bootstrap list, the settings, and the names and `resourceVersion`s of the Secrets
/// the material came from (a rotated Secret gets a new client).
pub fn admin_key(spec: &KafkaSpec, secrets: &SecretValues) -> String {
    let mut key = format!("{}|{}", spec.bootstrap_servers, spec.sasl_mechanism.as_str());
    if let Some(c) = &spec.credentials_secret {
        key.push_str(&format!("|creds={}", secrets.version_key(&c.name)));
    }
    if let Some(t) = &spec.tls {
        key.push_str(&format!("|tls:insecure={}", t.insecure_skip_verify));
        if let Some(ca) = &t.ca_secret {
            key.push_str(&format!("|ca={}/{}", secrets.version_key(&ca.name), ca.key));
        }
        if let Some(c) = &t.client_cert_secret {
            key.push_str(&format!("|cert={}", secrets.version_key(&c.name)));
        }
    }
    key
}

/// The librdkafka configuration of the admin client: the bootstrap list, the operator's
/// client id and timeouts, and `security` applied. Refuses credentials without TLS even if a
/// caller skipped [`admin_security`].
pub fn admin_config(bootstrap: &str, security: &KafkaSecurity) -> Result<ClientConfig, TopicError> {
    security.validate().map_err(|e| TopicError::Security(e.to_string()))?;
    if security.credentials.is_some() && !security.protocol.tls() {
        return Err(TopicError::Security("SASL credentials are only sent over TLS".into()));
    }
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("client.id", "shopstream-operator")
        .set("socket.timeout.ms", "10000");
    security.apply(&mut cfg);
    Ok(cfg)
}

/// What [`TopicAdmin::ensure`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EnsureReport {
    /// The topics as found after the changes.
    pub topics: Vec<TopicStatus>,
    /// Human-readable changes made (empty when nothing changed).
    pub changes: Vec<String>,
    /// Steps that failed (the others were still carried out).
    pub problems: Vec<String>,
}

/// Partition counts of every topic on the broker, as one metadata read found them.
type Snapshot = Arc<HashMap<String, i32>>;

/// How long one metadata read serves every reconcile that asks. A metadata read lists every
/// topic of the cluster, so reading it once per reconcile made the operator's work grow with
/// the square of the number of pipelines.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);

/// A Kafka admin client for one bootstrap list, shared by every pipeline on that cluster.
pub struct TopicAdmin {
    admin: Arc<AdminClient<DefaultClientContext>>,
    bootstrap: String,
    timeout: Duration,
    /// The last metadata read; the admin's own creations, growths and deletions are applied to
    /// it, others' changes are seen once it is older than [`SNAPSHOT_MAX_AGE`]. One reader at
    /// a time refreshes it; the others wait for that read.
    snapshot: tokio::sync::Mutex<Option<(Instant, Snapshot)>>,
}

impl TopicAdmin {
    /// Connects lazily to `bootstrap` (comma-separated `host:port`) with `security`
    /// ([`admin_security`]; `KafkaSecurity::default()` is plaintext without SASL).
    pub fn new(bootstrap: &str, security: &KafkaSecurity) -> Result<Self, TopicError> {
        let cfg = admin_config(bootstrap, security)?;
        let admin = Arc::new(cfg.create().map_err(TopicError::Client)?);
        Ok(TopicAdmin {
            admin,
            bootstrap: bootstrap.to_string(),
            timeout: Duration::from_secs(10),
            snapshot: tokio::sync::Mutex::new(None),
        })
    }

    fn opts(&self) -> AdminOptions {
        AdminOptions::new().operation_timeout(Some(self.timeout))
    }

    /// Partition counts of the named topics (`None` for a topic that does not exist), from a
    /// metadata read at most [`SNAPSHOT_MAX_AGE`] old.
    pub async fn partitions(&self, names: &[String]) -> Result<Vec<Option<i32>>, TopicError> {
        let snapshot = self.snapshot().await?;
        Ok(names.iter().map(|n| snapshot.get(n).copied()).collect())
    }

    async fn snapshot(&self) -> Result<Snapshot, TopicError> {
        let mut guard = self.snapshot.lock().await;
        if let Some((at, s)) = guard.as_ref()
            && at.elapsed() < SNAPSHOT_MAX_AGE
        {
            return Ok(Arc::clone(s));
        }
        // librdkafka's metadata call blocks; run it off the async workers.
        let admin = Arc::clone(&self.admin);
        let timeout = self.timeout;
        let bootstrap = self.bootstrap.clone();
        let fresh: Snapshot = tokio::task::spawn_blocking(move || {
            let md = admin
                .inner()
                .fetch_metadata(None, timeout)
                .map_err(|source| TopicError::Metadata { bootstrap, source })?;
            Ok::<_, TopicError>(Arc::new(
                md.topics()
                    .iter()
                    .filter(|t| t.error().is_none())
                    .map(|t| {
                        (
                            t.name().to_string(),
                            i32::try_from(t.partitions().len()).unwrap_or(i32::MAX),
                        )
                    })
                    .collect(),
            ))
        })
        .await
        .map_err(|e| TopicError::Join(e.to_string()))??;
        *guard = Some((Instant::now(), Arc::clone(&fresh)));
        Ok(fresh)
    }

    /// Applies this admin's own changes to the snapshot (`None` removes a topic).
    async fn record(&self, changed: &[(String, Option<i32>)]) {
        if changed.is_empty() {
            return;
        }
        let mut guard = self.snapshot.lock().await;
        if let Some((_, s)) = guard.as_mut() {
            let map = Arc::make_mut(s);
            for (name, parts) in changed {
                match parts {
                    Some(p) => map.insert(name.clone(), *p),
                    None => map.remove(name),
                };
            }
        }
    }

    /// Creates missing topics, grows partitions, and sets `retention.ms` where it differs.
    /// Each step is attempted even when an earlier one failed; failures are listed in
    /// [`EnsureReport::problems`]. Only an unreachable broker is an `Err`.
    pub async fn ensure(&self, topics: &[(&str, &TopicSpec)]) -> Result<EnsureReport, TopicError> {
        let names: Vec<String> = topics.iter().map(|(_, t)| t.name.clone()).collect();
        let current = self.partitions(&names).await?;
        let mut changes = Vec::new();
        let mut problems = Vec::new();
        // What this call changed (name, partitions), and whether the snapshot proved stale.
        let mut recorded: Vec<(String, Option<i32>)> = Vec::new();
        let mut stale = false;
        let retention: Vec<String> =
            topics.iter().map(|(_, t)| t.retention_ms.to_string()).collect();

        // 1. Create what is missing.
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .zip(&current)
            .zip(&retention)
            .filter(|((_, cur), _)| cur.is_none())
            .map(|(((_, t), _), ret)| {
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication_factor))
                    .set("retention.ms", ret)
            })
            .collect();
        if !new_topics.is_empty() {
            match self.admin.create_topics(&new_topics, &self.opts()).await {
                Ok(results) => {
                    for r in results {
                        match r {
                            Ok(name) => {
                                let parts = topics
                                    .iter()
                                    .find(|(_, t)| t.name == name)
                                    .map(|(_, t)| t.partitions);
                                recorded.push((name.clone(), parts));
                                changes.push(format!("created topic {name}"));
                            }
                            // created by someone else since the snapshot: read it next time
                            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => stale = true,
                            Err((topic, code)) => problems.push(
                                TopicError::Operation { operation: "creation", topic, code }
                                    .to_string(),
                            ),
                        }
                    }
                }
                Err(source) => problems
                    .push(TopicError::Request { operation: "CreateTopics", source }.to_string()),
            }
        }

        // 2. Grow partitions; shrinking is impossible in Kafka.
        let mut grow = Vec::new();
        for ((_, t), cur) in topics.iter().zip(&current) {
            let Some(cur) = *cur else { continue };
            if cur > t.partitions {
                problems.push(format!(
                    "topic {:?} has {cur} partitions; Kafka cannot shrink it to {}",
                    t.name, t.partitions
                ));
            } else if cur < t.partitions {
                let count = usize::try_from(t.partitions).unwrap_or(0);
                grow.push((NewPartitions::new(&t.name, count), cur, t.partitions));
            }
        }
        if !grow.is_empty() {
            let parts: Vec<&NewPartitions<'_>> = grow.iter().map(|(p, _, _)| p).collect();
            match self.admin.create_partitions(parts, &self.opts()).await {
                Ok(results) => {
                    for (r, (_, from, to)) in results.into_iter().zip(&grow) {
                        match r {
                            Ok(name) => {
                                recorded.push((name.clone(), Some(*to)));
                                changes.push(format!(
                                    "grew topic {name} from {from} to {to} partitions"
                                ));
                            }
                            Err((topic, code)) => problems.push(
                                TopicError::Operation {
                                    operation: "partition increase",
                                    topic,
                                    code,
                                }
                                .to_string(),
                            ),
                        }
                    }
                }
                Err(source) => problems.push(
                    TopicError::Request { operation: "CreatePartitions", source }.to_string(),
                ),
            }
        }

        // 3. Retention of topics that existed before (new ones got it at creation).
        let existing: Vec<(&TopicSpec, &String)> = topics
            .iter()
            .zip(&current)
            .zip(&retention)
            .filter(|((_, cur), _)| cur.is_some())
            .map(|(((_, t), _), r)| (*t, r))
            .collect();
        if !existing.is_empty() {
            let specs: Vec<ResourceSpecifier<'_>> =
                existing.iter().map(|(t, _)| ResourceSpecifier::Topic(&t.name)).collect();
            let described = match self.admin.describe_configs(&specs, &self.opts()).await {
                Ok(d) => d.into_iter().map(Some).collect(),
                Err(source) => {
                    problems.push(
                        TopicError::Request { operation: "DescribeConfigs", source }.to_string(),
                    );
                    Vec::new()
                }
            };
            let mut alter = Vec::new();
            for ((t, want), d) in existing.iter().zip(described) {
                let have = d
                    .and_then(Result::ok)
                    .and_then(|c| c.get("retention.ms").and_then(|e| e.value.clone()));
                if have.as_deref() != Some(want.as_str()) {
                    alter.push((
                        AlterConfig::new(ResourceSpecifier::Topic(&t.name))
                            .set("retention.ms", want),
                        t.name.clone(),
                        have,
                        (*want).clone(),
                    ));
                }
            }
            if !alter.is_empty() {
                let cfgs: Vec<&AlterConfig<'_>> = alter.iter().map(|(a, ..)| a).collect();
                match self.admin.alter_configs(cfgs, &self.opts()).await {
                    Ok(results) => {
                        for (r, (_, name, from, to)) in results.into_iter().zip(&alter) {
                            match r {
                                Ok(_) => changes.push(format!(
                                    "set retention.ms of {name} from {} to {to}",
                                    from.as_deref().unwrap_or("unset")
                                )),
                                Err((_, code)) => problems.push(
                                    TopicError::Operation {
                                        operation: "retention update",
                                        topic: name.clone(),
                                        code,
                                    }
                                    .to_string(),
                                ),
                            }
                        }
                    }
                    Err(source) => problems.push(
                        TopicError::Request { operation: "AlterConfigs", source }.to_string(),
                    ),
                }
            }
        }

        self.record(&recorded).await;
        let after = if stale {
            *self.snapshot.lock().await = None;
            self.partitions(&names).await?
        } else {
            names
                .iter()
                .zip(current)
                .map(|(n, cur)| {
                    recorded.iter().find(|(r, _)| r == n).map_or(cur, |(_, parts)| *parts)
                })
                .collect()
        };
        let mut out = Vec::new();
        for ((role, t), parts) in topics.iter().zip(after) {
            match parts {
                Some(partitions) => out.push(TopicStatus {
                    role: (*role).to_string(),
                    name: t.name.clone(),
                    partitions,
                }),
                None => problems.push(format!("topic {:?} does not exist", t.name)),
            }
        }
        Ok(EnsureReport { topics: out, changes, problems })
    }

    /// Deletes the named topics; topics that do not exist are not an error.
    pub async fn delete(&self, names: &[String]) -> Result<Vec<String>, TopicError> {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let results = self
            .admin
            .delete_topics(&refs, &self.opts())
            .await
            .map_err(|source| TopicError::Request { operation: "DeleteTopics", source })?;
        let mut deleted = Vec::new();
        for r in results {
            match r {
                Ok(name) => {
                    self.record(&[(name.clone(), None)]).await;
                    deleted.push(name)
                }
                Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((topic, code)) => {
                    return Err(TopicError::Operation { operation: "deletion", topic, code });
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(yaml: &str) -> KafkaSpec {
        let v: serde_json::Value = serde_norway::from_str(yaml).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn secrets() -> SecretValues {
        let mut s = SecretValues::default();
        s.insert(
            "kafka-creds",
            "7",
            BTreeMap::from([
                ("username".to_string(), b"app\n".to_vec()),
                ("password".to_string(), b"s3cret-pw".to_vec()),
            ]),
        );
        s.insert(
            "kafka-ca",
            "8",
            BTreeMap::from([("ca.crt".to_string(), b"-----BEGIN CERTIFICATE-----".to_vec())]),
        );
        s
    }

    const TOPICS: &str = "topics: { raw: {name: r}, valid: {name: v}, suspicious: {name: s}, \
                          deadLetter: {name: d} }";

    #[test]
    fn admin_with_credentials_uses_sasl_ssl_and_the_ca_inline() {
        let k = spec(&format!(
            "{{ bootstrapServers: 'k:9093', credentialsSecret: {{ name: kafka-creds }}, \
             tls: {{ caSecret: {{ name: kafka-ca }} }}, {TOPICS} }}"
        ));
        let security = admin_security(&k, &secrets()).unwrap_or_else(|e| panic!("{e}"));
        let cfg = admin_config(&k.bootstrap_servers, &security).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(cfg.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(cfg.get("sasl.username"), Some("app"));
        assert_eq!(cfg.get("ssl.ca.pem"), Some("-----BEGIN CERTIFICATE-----"));
        assert_eq!(cfg.get("ssl.endpoint.identification.algorithm"), Some("https"));
        // The cache key names Secrets and versions, never values.
        let key = admin_key(&k, &secrets());
        assert!(key.contains("kafka-creds@7") && key.contains("kafka-ca@8"), "{key}");
        assert!(!key.contains("s3cret") && !key.contains("BEGIN"), "{key}");
        // Errors never print the material either.
        assert!(!format!("{security:?}").contains("s3cret-pw"));
    }

    #[test]
    fn admin_tls_without_credentials_is_ssl_and_neither_is_plaintext() {
        let k = spec(&format!("{{ bootstrapServers: 'k:9093', tls: {{}}, {TOPICS} }}"));
        let s = admin_security(&k, &SecretValues::default()).unwrap_or_else(|e| panic!("{e}"));
        let cfg = admin_config("k:9093", &s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.get("security.protocol"), Some("ssl"));
        assert_eq!(cfg.get("sasl.username"), None);
        let k = spec(&format!("{{ bootstrapServers: 'k:9092', {TOPICS} }}"));
        let s = admin_security(&k, &SecretValues::default()).unwrap_or_else(|e| panic!("{e}"));
        let cfg = admin_config("k:9092", &s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cfg.get("security.protocol"), Some("plaintext"));
    }

    #[test]
    fn admin_credentials_without_tls_or_their_secret_are_refused() {
        let k = spec(&format!(
            "{{ bootstrapServers: 'k:9092', credentialsSecret: {{ name: kafka-creds }}, {TOPICS} }}"
        ));
        let err = admin_security(&k, &secrets()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("in clear"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        // Even a hand-made configuration cannot send SASL credentials without TLS.
        let plain_sasl = KafkaSecurity {
            protocol: SecurityProtocol::SaslPlaintext,
            credentials: Some(("u".into(), shopstream_clients::Secret::new("p"))),
            ..Default::default()
        };
        assert!(admin_config("k:9092", &plain_sasl).is_err());
        // A missing Secret is an error, not a fallback to an unauthenticated connection.
        let k = spec(&format!(
            "{{ bootstrapServers: 'k:9093', credentialsSecret: {{ name: kafka-creds }}, \
             tls: {{}}, {TOPICS} }}"
        ));
        let err = admin_security(&k, &SecretValues::default()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("kafka-creds")));
    }
}
