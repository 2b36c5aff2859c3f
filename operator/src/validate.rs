//! Checks the OpenAPI schema cannot express. Each problem names the offending field.

use crate::crd::{AnalyticsPipelineSpec, BackendSpec, SecretRef};

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
    // Credentials for Redis, MongoDB, Elasticsearch and Kibana would be rendered into the
    // workloads, but no workload authenticates with them yet: refuse rather than pretend.
    for (field, c) in backend_credentials(spec) {
        if c.is_some() {
            out.push(Problem {
                field: format!("spec.{field}.external.credentialsSecret"),
                message: "authentication to this backend is not supported by the workloads yet; \
                          remove the field (Kafka SASL credentials are supported)"
                    .into(),
            });
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

/// Each external backend (field name) with its `credentialsSecret`, in field order.
fn backend_credentials(spec: &AnalyticsPipelineSpec) -> Vec<(&'static str, Option<&SecretRef>)> {
    [
        ("redis", Some(&spec.redis)),
        ("mongodb", Some(&spec.mongodb.backend)),
        ("elasticsearch", Some(&spec.elasticsearch)),
        ("kibana", spec.kibana.as_ref()),
    ]
    .into_iter()
    .filter_map(|(field, b)| match b {
        Some(BackendSpec::External(e)) => Some((field, e.credentials_secret.as_ref())),
        _ => None,
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

/// Every Secret the spec refers to, in field order.
pub fn referenced_secrets(spec: &AnalyticsPipelineSpec) -> Vec<SecretUse> {
    let creds = |field: String, name: &str| SecretUse {
        field,
        name: name.to_string(),
        keys: vec!["username".into(), "password".into()],
    };
    let mut out = Vec::new();
    if let Some(c) = &spec.kafka.credentials_secret {
        out.push(creds("spec.kafka.credentialsSecret".into(), &c.name));
    }
    for (field, c) in backend_credentials(spec) {
        if let Some(c) = c {
            out.push(creds(format!("spec.{field}.external.credentialsSecret"), &c.name));
        }
    }
    let k = &spec.pseudonymisation.key_secret;
    out.push(SecretUse {
        field: "spec.pseudonymisation.keySecret".into(),
        name: k.name.clone(),
        keys: vec![k.key.clone()],
    });
    out
}
