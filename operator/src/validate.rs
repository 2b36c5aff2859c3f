//! Checks the OpenAPI schema cannot express. Each problem names the offending field.

use shopstream_clients::mongo::check_url;
use shopstream_clients::{has_userinfo, redact_url};

use crate::crd::{AnalyticsPipelineSpec, BackendSpec, ExternalBackend, KafkaSpec, TlsSpec};

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// JSON path of the field, e.g. `spec.offline.training.privacy.epsilonPerRun`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Problems that make the spec unusable (nothing is applied while any is present).
pub fn check_spec(spec: &AnalyticsPipelineSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    let p = &spec.offline.training.privacy;
    if p.epsilon_per_run > p.total_epsilon {
        out.push(Problem {
            field: "spec.offline.training.privacy.epsilonPerRun".into(),
            message: format!(
                "epsilonPerRun {} exceeds totalEpsilon {}: not even one training run fits the budget",
                p.epsilon_per_run, p.total_epsilon
            ),
        });
    }
    if let Some(d) = p.delta_per_run
        && d > p.delta
    {
        out.push(Problem {
            field: "spec.offline.training.privacy.deltaPerRun".into(),
            message: format!(
                "deltaPerRun {d:e} exceeds delta {:e}: not even one training run fits the budget",
                p.delta
            ),
        });
    }
    let topics = spec.kafka.topics.all();
    for (i, (role, t)) in topics.iter().enumerate() {
        if let Some((other, _)) = topics[..i].iter().find(|(_, o)| o.name == t.name) {
            out.push(Problem {
                field: format!("spec.kafka.topics.{role}.name"),
                message: format!("topic {:?} is also used as the {other} topic", t.name),
            });
        }
    }
    check_kafka(&spec.kafka, &mut out);
    check_verdict_ttl(spec, &mut out);
    for (field, e) in externals(spec) {
        check_external(field, e, &mut out);
    }
    if spec.mongodb.operator_credentials_secret.is_some() {
        let over_tls = matches!(&spec.mongodb.backend, BackendSpec::External(e) if e.tls.is_some());
        if !over_tls {
            problem(
                &mut out,
                "spec.mongodb.operatorCredentialsSecret".into(),
                "needs an external MongoDB with tls: the operator sends credentials only over TLS",
            );
        }
    }
    let mut seen = Vec::new();
    for (i, m) in spec.offline.training.models.iter().enumerate() {
        if seen.contains(m) {
            out.push(Problem {
                field: format!("spec.offline.training.models[{i}]"),
                message: format!("model {} listed twice", m.as_str()),
            });
        }
        seen.push(*m);
    }
    out
}

/// Each external backend with its field name (`redis`, `mongodb`, `elasticsearch`, `kibana`),
/// in field order.
pub fn externals(spec: &AnalyticsPipelineSpec) -> Vec<(&'static str, &ExternalBackend)> {
    [
        ("redis", Some(&spec.redis)),
        ("mongodb", Some(&spec.mongodb.backend)),
        ("elasticsearch", Some(&spec.elasticsearch)),
        ("kibana", spec.kibana.as_ref()),
    ]
    .into_iter()
    .filter_map(|(field, b)| match b {
        Some(BackendSpec::External(e)) => Some((field, e)),
        _ => None,
    })
    .collect()
}

fn problem(out: &mut Vec<Problem>, field: String, message: impl Into<String>) {
    out.push(Problem { field, message: message.into() });
}

/// The gate remembers a verdict for `verdictTtlSeconds`; a replay of the raw topic reaches
/// back `retentionMs`. A record older than the TTL but still retained would be decided and
/// counted again on a replay, so the TTL must cover the retention (0 = forever covers all;
/// retention -1 = forever needs TTL 0).
fn check_verdict_ttl(spec: &AnalyticsPipelineSpec, out: &mut Vec<Problem>) {
    let ttl = spec.workloads.gate.rules.verdict_ttl_seconds;
    let retention = spec.kafka.topics.raw.retention_ms;
    let covered = ttl == 0 || (retention >= 0 && ttl.saturating_mul(1000) >= retention);
    if !covered {
        let keeps = if retention < 0 {
            "forever (-1)".to_string()
        } else {
            format!("{retention} ms ({:.1} days)", retention as f64 / 86_400_000.0)
        };
        problem(
            out,
            "spec.workloads.gate.rules.verdictTtlSeconds".into(),
            format!(
                "verdictTtlSeconds {ttl} is shorter than spec.kafka.topics.raw.retentionMs, which \
                 keeps records {keeps}: a replay of records older than the TTL would decide and \
                 count them again. Raise verdictTtlSeconds to at least the retention (0 keeps \
                 verdicts forever) or shorten the retention"
            ),
        );
    }
}

/// Kafka: SASL credentials only over TLS.
fn check_kafka(k: &KafkaSpec, out: &mut Vec<Problem>) {
    if k.credentials_secret.is_some() && k.tls.is_none() {
        problem(
            out,
            "spec.kafka.credentialsSecret".into(),
            "SASL credentials are only sent over TLS: add spec.kafka.tls (`tls: {}` verifies \
             the brokers with the system CAs, `tls: {caSecret: {name: ...}}` with your CA)",
        );
    }
}

/// The lower-case scheme of a URL (empty without `://`).
fn scheme(url: &str) -> String {
    url.split_once("://").map(|(s, _)| s.to_ascii_lowercase()).unwrap_or_default()
}

/// One external backend: no credentials in the URL, none in clear, TLS settings that mean
/// something for this backend.
fn check_external(field: &'static str, e: &ExternalBackend, out: &mut Vec<Problem>) {
    let f = |sub: &str| format!("spec.{field}.external.{sub}");
    if has_userinfo(&e.url) {
        problem(
            out,
            f("url"),
            format!(
                "the URL {} carries credentials: put them in credentialsSecret (keys `username`, \
                 `password`) instead; a URL is rendered into pod specs and shown in statuses",
                redact_url(&e.url)
            ),
        );
    }
    let creds = e.credentials_secret.is_some();
    let api_key = e.api_key_secret.is_some();
    if e.tls.as_ref().is_some_and(|t| t.client_cert_secret.is_some()) {
        problem(
            out,
            f("tls.clientCertSecret"),
            "client certificates (mutual TLS) are supported for Kafka only; remove the field",
        );
    }
    let scheme = scheme(&e.url);
    match field {
        "redis" => {
            if api_key {
                problem(out, f("apiKeySecret"), "API keys are for Elasticsearch and Kibana only");
            }
            match scheme.as_str() {
                "redis" => {
                    if creds {
                        problem(
                            out,
                            f("credentialsSecret"),
                            "the credentials would cross the network in clear with a redis:// \
                             URL: use rediss:// (TLS)",
                        );
                    }
                    if e.tls.is_some() {
                        problem(
                            out,
                            f("tls"),
                            "tls with a redis:// URL is a contradiction: use rediss://",
                        );
                    }
                }
                "rediss" => {}
                other => {
                    problem(out, f("url"), format!("scheme {other:?} is not redis:// or rediss://"))
                }
            }
        }
        "mongodb" => {
            if let Err(m) = check_url(&e.url) {
                problem(out, f("url"), format!("{}: {m}", redact_url(&e.url)));
            }
            if api_key {
                problem(out, f("apiKeySecret"), "API keys are for Elasticsearch and Kibana only");
            }
            match &e.tls {
                None if creds => problem(
                    out,
                    f("credentialsSecret"),
                    "the credentials would cross the network in clear: add tls with a caSecret \
                     (for MongoDB the tls field switches TLS on)",
                ),
                Some(t) if t.ca_secret.is_none() && !t.insecure_skip_verify => problem(
                    out,
                    f("tls.caSecret"),
                    "required for MongoDB: TLS is switched on by the CA (without one the \
                     connection would stay in clear)",
                ),
                Some(_)
                    if url_option(&e.url, "ssl")
                        .is_some_and(|v| v.eq_ignore_ascii_case("false")) =>
                {
                    problem(out, f("url"), "ssl=false contradicts tls")
                }
                _ => {}
            }
        }
        _ => {
            // Elasticsearch, Kibana
            match scheme.as_str() {
                "http" => {
                    for (set, sub) in [(creds, "credentialsSecret"), (api_key, "apiKeySecret")] {
                        if set {
                            problem(
                                out,
                                f(sub),
                                "the secret would cross the network in clear with an http:// \
                                 URL: use https://",
                            );
                        }
                    }
                    if e.tls.is_some() {
                        problem(
                            out,
                            f("tls"),
                            "tls with an http:// URL is a contradiction: use https://",
                        );
                    }
                }
                "https" => {}
                other => {
                    problem(out, f("url"), format!("scheme {other:?} is not http:// or https://"))
                }
            }
            if creds && api_key {
                problem(
                    out,
                    f("apiKeySecret"),
                    "set either apiKeySecret or credentialsSecret, not both",
                );
            }
        }
    }
}

/// The value of a query option of a URL (case-insensitive name).
fn url_option<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    query.split(['&', ';']).find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// Settings that are valid but dangerous: certificate verification turned off. Each names the
/// field; the reconciler publishes a Warning event and mentions them in SpecValid and Ready.
pub fn warnings(spec: &AnalyticsPipelineSpec) -> Vec<Problem> {
    let mut tls: Vec<(String, &TlsSpec)> = Vec::new();
    if let Some(t) = &spec.kafka.tls {
        tls.push(("spec.kafka.tls".into(), t));
    }
    for (field, e) in externals(spec) {
        if let Some(t) = &e.tls {
            tls.push((format!("spec.{field}.external.tls"), t));
        }
    }
    tls.into_iter()
        .filter(|(_, t)| t.insecure_skip_verify)
        .map(|(field, _)| Problem {
            field: format!("{field}.insecureSkipVerify"),
            message: "certificate verification is OFF: anyone on the network path can read and \
                      change this traffic; set caSecret instead"
                .into(),
        })
        .collect()
}

/// A Secret the spec refers to: the field that names it, its name, and the keys it must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretUse {
    /// JSON path of the reference.
    pub field: String,
    /// Secret name.
    pub name: String,
    /// Keys that must be present.
    pub keys: Vec<String>,
}

fn push_use(out: &mut Vec<SecretUse>, field: String, name: &str, keys: &[&str]) {
    out.push(SecretUse {
        field,
        name: name.to_string(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
    });
}

fn push_tls_uses(out: &mut Vec<SecretUse>, at: &str, t: &TlsSpec) {
    if let Some(ca) = &t.ca_secret {
        push_use(out, format!("{at}.caSecret"), &ca.name, &[ca.key.as_str()]);
    }
    if let Some(c) = &t.client_cert_secret {
        push_use(out, format!("{at}.clientCertSecret"), &c.name, &["tls.crt", "tls.key"]);
    }
}

/// The annotation a Secret must carry before a pipeline may use it: `*` or a comma-separated
/// list of pipeline names (in the Secret's namespace). Without it, anyone allowed to create an
/// `AnalyticsPipeline` could have the operator mount any Secret of the namespace into pods and
/// send it to a host of their choosing; with it, the Secret's owner decides.
pub const ALLOWED_PIPELINES_ANNOTATION: &str = "shopstream.io/allowed-pipelines";

/// Whether a Secret with `annotations` may be used by the pipeline `name`.
pub fn secret_allows(
    annotations: Option<&std::collections::BTreeMap<String, String>>,
    name: &str,
) -> bool {
    annotations
        .and_then(|a| a.get(ALLOWED_PIPELINES_ANNOTATION))
        .is_some_and(|v| v.split(',').map(str::trim).any(|n| n == "*" || n == name))
}

/// Every Secret the spec refers to, with the keys it must hold, in field order.
pub fn referenced_secrets(spec: &AnalyticsPipelineSpec) -> Vec<SecretUse> {
    let mut out = Vec::new();
    let creds = ["username", "password"];
    if let Some(c) = &spec.kafka.credentials_secret {
        push_use(&mut out, "spec.kafka.credentialsSecret".into(), &c.name, &creds);
    }
    if let Some(t) = &spec.kafka.tls {
        push_tls_uses(&mut out, "spec.kafka.tls", t);
    }
    for (field, e) in externals(spec) {
        if let Some(c) = &e.credentials_secret {
            push_use(&mut out, format!("spec.{field}.external.credentialsSecret"), &c.name, &creds);
        }
        if let Some(t) = &e.tls {
            push_tls_uses(&mut out, &format!("spec.{field}.external.tls"), t);
        }
        if let Some(k) = &e.api_key_secret {
            push_use(
                &mut out,
                format!("spec.{field}.external.apiKeySecret"),
                &k.name,
                &[k.key.as_str()],
            );
        }
    }
    if let Some(c) = &spec.mongodb.operator_credentials_secret {
        push_use(&mut out, "spec.mongodb.operatorCredentialsSecret".into(), &c.name, &creds);
    }
    let k = &spec.pseudonymisation.key_secret;
    push_use(&mut out, "spec.pseudonymisation.keySecret".into(), &k.name, &[k.key.as_str()]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::AnalyticsPipeline;

    const EXAMPLE: &str = include_str!("../../crds/examples/pipeline.yaml");

    /// The shipped example with `patch` (YAML) merged into its spec.
    fn spec(patch: &str) -> AnalyticsPipelineSpec {
        let parse = |s: &str| -> serde_json::Value {
            serde_norway::from_str(s).unwrap_or_else(|e| panic!("{e}"))
        };
        let mut v = parse(EXAMPLE);
        shopstream_test_support::merge_json(&mut v, &serde_json::json!({ "spec": parse(patch) }));
        let p: AnalyticsPipeline = serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"));
        p.spec
    }

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn tls_and_credentials_everywhere_is_valid_and_needs_its_secrets() {
        let s = spec(
            "{ kafka: { credentialsSecret: { name: kc }, saslMechanism: SCRAM-SHA-256, \
               tls: { caSecret: { name: kca }, clientCertSecret: { name: kcert } } }, \
               redis: { external: { url: 'rediss://r:6380', credentialsSecret: { name: rc }, \
                 tls: { caSecret: { name: rca, key: ca.pem } } } }, \
               mongodb: { external: { url: 'mongodb://m:27017/?replicaSet=rs0', \
                 credentialsSecret: { name: mc }, tls: { caSecret: { name: mca } } } }, \
               elasticsearch: { external: { url: 'https://e:9200', \
                 apiKeySecret: { name: ek, key: apiKey }, tls: { caSecret: { name: eca } } } } }",
        );
        assert_eq!(check_spec(&s), vec![]);
        assert_eq!(warnings(&s), vec![]);
        let uses: Vec<(String, String, Vec<String>)> =
            referenced_secrets(&s).into_iter().map(|u| (u.field, u.name, u.keys)).collect();
        let want = |f: &str, n: &str, k: &[&str]| {
            (f.to_string(), n.to_string(), k.iter().map(|k| k.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(
            uses,
            vec![
                want("spec.kafka.credentialsSecret", "kc", &["username", "password"]),
                want("spec.kafka.tls.caSecret", "kca", &["ca.crt"]),
                want("spec.kafka.tls.clientCertSecret", "kcert", &["tls.crt", "tls.key"]),
                want("spec.redis.external.credentialsSecret", "rc", &["username", "password"]),
                want("spec.redis.external.tls.caSecret", "rca", &["ca.pem"]),
                want("spec.mongodb.external.credentialsSecret", "mc", &["username", "password"]),
                want("spec.mongodb.external.tls.caSecret", "mca", &["ca.crt"]),
                want("spec.elasticsearch.external.tls.caSecret", "eca", &["ca.crt"]),
                want("spec.elasticsearch.external.apiKeySecret", "ek", &["apiKey"]),
                want("spec.pseudonymisation.keySecret", "shopstream-pseudonym", &["key"]),
            ]
        );
    }

    #[test]
    fn an_oidc_mongodb_url_is_refused_naming_the_url_field() {
        let s = spec(
            "{ mongodb: { external: { url: 'mongodb://m:27017/?authMechanism=MONGODB-OIDC&\
             authMechanismProperties=ENVIRONMENT:k8s' } } }",
        );
        let p = check_spec(&s);
        assert_eq!(fields(&p), ["spec.mongodb.external.url"]);
        assert!(p[0].message.contains("ServiceAccount token"), "{}", p[0]);
        let s = spec("{ mongodb: { external: { url: 'mongodb://m/?tlsCAFile=/etc/passwd' } } }");
        assert_eq!(fields(&check_spec(&s)), ["spec.mongodb.external.url"]);
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_echoing_them() {
        for (backend, url) in [
            ("redis", "rediss://:hunter2@r:6380"),
            ("mongodb", "mongodb://app:hunter2@m:27017/"),
            ("elasticsearch", "https://elastic:hunter2@e:9200"),
        ] {
            let s = spec(&format!("{{ {backend}: {{ external: {{ url: '{url}' }} }} }}"));
            let p = check_spec(&s);
            assert_eq!(fields(&p), [format!("spec.{backend}.external.url")], "{p:?}");
            assert!(p[0].message.contains("credentialsSecret"), "{}", p[0]);
            assert!(!p[0].message.contains("hunter2"), "{}", p[0]);
        }
    }

    #[test]
    fn credentials_that_would_cross_the_network_in_clear_are_refused() {
        let cases = [
            ("{ kafka: { credentialsSecret: { name: kc } } }", "spec.kafka.credentialsSecret"),
            (
                "{ redis: { external: { url: 'redis://r:6379', credentialsSecret: { name: c } } } }",
                "spec.redis.external.credentialsSecret",
            ),
            (
                "{ mongodb: { external: { url: 'mongodb://m:27017', credentialsSecret: { name: c } } } }",
                "spec.mongodb.external.credentialsSecret",
            ),
            (
                "{ elasticsearch: { external: { url: 'http://e:9200', credentialsSecret: { name: c } } } }",
                "spec.elasticsearch.external.credentialsSecret",
            ),
            (
                "{ elasticsearch: { external: { url: 'http://e:9200', apiKeySecret: { name: k, key: k } } } }",
                "spec.elasticsearch.external.apiKeySecret",
            ),
            (
                "{ kibana: { managed: null, external: { url: 'http://k:5601', credentialsSecret: { name: c } } } }",
                "spec.kibana.external.credentialsSecret",
            ),
            // tls on a plain-text scheme is a contradiction
            (
                "{ redis: { external: { url: 'redis://r:6379', tls: {} } } }",
                "spec.redis.external.tls",
            ),
            (
                "{ elasticsearch: { external: { url: 'http://e:9200', tls: {} } } }",
                "spec.elasticsearch.external.tls",
            ),
            // for MongoDB the CA switches TLS on: tls without one would stay in clear
            (
                "{ mongodb: { external: { url: 'mongodb://m', tls: {}, credentialsSecret: { name: c } } } }",
                "spec.mongodb.external.tls.caSecret",
            ),
        ];
        for (patch, field) in cases {
            let p = check_spec(&spec(patch));
            assert_eq!(fields(&p), [field], "{patch}: {p:?}");
        }
        // With TLS, the same credentials are fine.
        for patch in [
            "{ kafka: { credentialsSecret: { name: kc }, tls: {} } }",
            "{ redis: { external: { url: 'rediss://r:6380', credentialsSecret: { name: c } } } }",
            "{ elasticsearch: { external: { url: 'https://e:9200', credentialsSecret: { name: c } } } }",
        ] {
            assert_eq!(check_spec(&spec(patch)), vec![], "{patch}");
        }
    }

    #[test]
    fn api_keys_only_for_elasticsearch_and_kibana_and_never_with_credentials() {
        let p = check_spec(&spec(
            "{ elasticsearch: { external: { url: 'https://e:9200', credentialsSecret: { name: c }, \
             apiKeySecret: { name: k, key: apiKey } } } }",
        ));
        assert_eq!(fields(&p), ["spec.elasticsearch.external.apiKeySecret"]);
        assert!(p[0].message.contains("not both"), "{}", p[0]);
        for backend in ["redis", "mongodb"] {
            let url = if backend == "redis" { "rediss://r:6380" } else { "mongodb://m:27017" };
            let p = check_spec(&spec(&format!(
                "{{ {backend}: {{ external: {{ url: '{url}', apiKeySecret: {{ name: k, key: k }} }} }} }}"
            )));
            assert_eq!(fields(&p), [format!("spec.{backend}.external.apiKeySecret")], "{p:?}");
        }
        // mutual TLS is a Kafka feature
        let p = check_spec(&spec(
            "{ redis: { external: { url: 'rediss://r:6380', tls: { clientCertSecret: { name: c } } } } }",
        ));
        assert_eq!(fields(&p), ["spec.redis.external.tls.clientCertSecret"]);
    }

    #[test]
    fn insecure_skip_verify_is_valid_but_warned_about() {
        let s = spec(
            "{ kafka: { tls: { insecureSkipVerify: true } }, \
               elasticsearch: { external: { url: 'https://e:9200', tls: { insecureSkipVerify: true } } } }",
        );
        assert_eq!(check_spec(&s), vec![]);
        let w = warnings(&s);
        assert_eq!(
            fields(&w),
            [
                "spec.kafka.tls.insecureSkipVerify",
                "spec.elasticsearch.external.tls.insecureSkipVerify"
            ]
        );
        assert!(w[0].message.contains("OFF"), "{}", w[0]);
    }

    #[test]
    fn the_operators_read_only_user_is_checked_and_its_secret_required() {
        let s = spec(
            "{ mongodb: { external: { url: 'mongodb://m:27017', credentialsSecret: { name: mc }, \
               tls: { caSecret: { name: mca } } }, operatorCredentialsSecret: { name: ro } } }",
        );
        assert_eq!(check_spec(&s), vec![]);
        let ro = referenced_secrets(&s)
            .into_iter()
            .find(|u| u.field == "spec.mongodb.operatorCredentialsSecret")
            .map(|u| (u.name, u.keys));
        assert_eq!(ro, Some(("ro".into(), vec!["username".into(), "password".into()])));
        let clear = spec("{ mongodb: { operatorCredentialsSecret: { name: ro } } }");
        assert_eq!(fields(&check_spec(&clear)), ["spec.mongodb.operatorCredentialsSecret"]);
    }

    #[test]
    fn a_secret_is_usable_only_by_the_pipelines_its_annotation_names() {
        let with = |v: &str| {
            std::collections::BTreeMap::from([(
                ALLOWED_PIPELINES_ANNOTATION.to_string(),
                v.to_string(),
            )])
        };
        assert!(secret_allows(Some(&with("*")), "shop"));
        assert!(secret_allows(Some(&with("other, shop")), "shop"));
        assert!(!secret_allows(Some(&with("shopping")), "shop"));
        assert!(!secret_allows(Some(&with("")), "shop"));
        assert!(!secret_allows(Some(&std::collections::BTreeMap::new()), "shop"));
        assert!(!secret_allows(None, "shop"));
    }

    #[test]
    fn the_verdict_ttl_must_cover_the_raw_topics_retention() {
        // The example: 8 days of verdicts over 7 days of retention.
        assert_eq!(check_spec(&spec("{}")), vec![]);
        let short = spec("{ workloads: { gate: { rules: { verdictTtlSeconds: 3600 } } } }");
        let problems = check_spec(&short);
        assert_eq!(fields(&problems), ["spec.workloads.gate.rules.verdictTtlSeconds"]);
        assert!(problems[0].message.contains("retentionMs"), "{}", problems[0].message);
        let forever = spec("{ kafka: { topics: { raw: { retentionMs: -1 } } } }");
        assert_eq!(fields(&check_spec(&forever)), ["spec.workloads.gate.rules.verdictTtlSeconds"]);
        let both_forever = spec(
            "{ kafka: { topics: { raw: { retentionMs: -1 } } }, \
               workloads: { gate: { rules: { verdictTtlSeconds: 0 } } } }",
        );
        assert_eq!(check_spec(&both_forever), vec![]);
        let exact = spec(
            "{ kafka: { topics: { raw: { retentionMs: 3600000 } } }, \
               workloads: { gate: { rules: { verdictTtlSeconds: 3600 } } } }",
        );
        assert_eq!(check_spec(&exact), vec![]);
    }
}
