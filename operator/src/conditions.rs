//! Conditions in the Kubernetes convention, with `lastTransitionTime` kept stable.

use crate::crd::Condition;

/// The resource is fully reconciled and every part is ready.
pub const READY: &str = "Ready";
/// The spec passed the checks the schema cannot express and every referenced Secret exists.
pub const SPEC_VALID: &str = "SpecValid";
/// The pipeline's Kafka topics exist with the requested settings.
pub const TOPICS_READY: &str = "TopicsReady";
/// Managed backends run and the model registry is reachable.
pub const BACKENDS_READY: &str = "BackendsReady";
/// Every streaming Deployment has its ready replicas.
pub const WORKLOADS_READY: &str = "WorkloadsReady";
/// The similarity and training CronJobs exist (false on servers without batch/v1 CronJob).
pub const OFFLINE_JOBS_READY: &str = "OfflineJobsReady";
/// The privacy budget cannot pay for another training run.
pub const PRIVACY_BUDGET_EXHAUSTED: &str = "PrivacyBudgetExhausted";

/// A freshly computed condition (without transition time).
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Condition type.
    pub type_: &'static str,
    /// True or false.
    pub status: bool,
    /// CamelCase reason.
    pub reason: String,
    /// Message for humans.
    pub message: String,
}

impl Observed {
    /// A condition with status True.
    pub fn yes(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Observed { type_, status: true, reason: reason.into(), message: message.into() }
    }
    /// A condition with status False.
    pub fn no(type_: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Observed { type_, status: false, reason: reason.into(), message: message.into() }
    }
}

fn status_str(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// Merges freshly observed conditions into the previous ones: `lastTransitionTime` changes only
/// when the status changes; conditions of other types are kept; the result is sorted by type.
pub fn merge(
    previous: &[Condition],
    observed: &[Observed],
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    let mut out: Vec<Condition> =
        previous.iter().filter(|c| !observed.iter().any(|o| o.type_ == c.type_)).cloned().collect();
    for o in observed {
        let status = status_str(o.status);
        let last_transition_time = match previous.iter().find(|c| c.type_ == o.type_) {
            Some(prev) if prev.status == status => prev.last_transition_time.clone(),
            _ => now.to_string(),
        };
        out.push(Condition {
            type_: o.type_.to_string(),
            status: status.to_string(),
            reason: o.reason.clone(),
            message: o.message.clone(),
            last_transition_time,
            observed_generation: generation,
        });
    }
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Conditions worth an event between `before` and `after`: every status change of a condition
/// seen before, and a first appearance only when it needs someone's attention
/// ([`needs_attention`]). A new pipeline's other conditions (still starting, or already fine)
/// are summarised in one `Applied` event instead of one event each.
pub fn transitions<'a>(before: &[Condition], after: &'a [Condition]) -> Vec<&'a Condition> {
    after
        .iter()
        .filter(|a| match before.iter().find(|b| b.type_ == a.type_) {
            Some(b) => b.status != a.status,
            None => needs_attention(a),
        })
        .collect()
}

/// A condition that asks for action: an invalid spec or an exhausted privacy budget.
pub fn needs_attention(c: &Condition) -> bool {
    (c.type_ == SPEC_VALID && c.status == "False")
        || (c.type_ == PRIVACY_BUDGET_EXHAUSTED && c.status == "True")
}

/// The Ready condition summarising the others: ready when every part is ready and the budget
/// is not exhausted only matters for training (it does not make the pipeline unready).
pub fn ready(parts: &[Observed]) -> Observed {
    let blocking: Vec<&Observed> =
        parts.iter().filter(|o| o.type_ != PRIVACY_BUDGET_EXHAUSTED && !o.status).collect();
    match blocking.first() {
        None => Observed::yes(READY, "Reconciled", "all parts of the pipeline are ready"),
        Some(first) => Observed::no(
            READY,
            &format!("{}False", first.type_),
            blocking
                .iter()
                .map(|o| format!("{}: {}", o.type_, o.message))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    }
}
