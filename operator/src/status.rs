//! Decide: the resource's status as a pure function of what one reconcile observed.
//!
//! The reconciler gathers ([`Gathered`]: Secrets, the registry, the applied children, the
//! topics), calls [`budget`] and [`decide`], and acts on the result (renders and applies,
//! writes the status, publishes events). No I/O happens here, so every condition rule is
//! unit-tested (`operator/tests/status.rs`).

use crate::conditions::{self, Observed};
use crate::crd::{AnalyticsPipelineStatus, BudgetStatus, PrivacySpec, TopicStatus, WorkloadStatus};
use crate::registry::{self, RegistryView};
use crate::render::CronJobApi;
use crate::validate::Problem;

/// What reading the model registry gave.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistryRead {
    /// Not attempted (the managed MongoDB has no ready replica yet).
    NotRead,
    /// The registry and the ledger.
    Read(RegistryView),
    /// MongoDB could not be read: why.
    Failed(String),
}

/// What ensuring the topics gave.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicsOutcome {
    /// The broker answered: the topics as found, and the steps that failed.
    Ensured {
        /// The topics after the changes.
        topics: Vec<TopicStatus>,
        /// Failed steps (empty when all went well).
        problems: Vec<String>,
    },
    /// The broker could not be reached: why.
    Unreachable(String),
}

/// The budget the status shows and whether it can pay for a training run.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetDecision {
    /// Shown in `status.privacyBudget`.
    pub budget: BudgetStatus,
    /// Why the budget is exhausted (training is suspended), if it is.
    pub exhausted: Option<String>,
}

/// The budget from the registry read, else the last one shown, else the spec's fresh budget.
pub fn budget(
    read: &RegistryRead,
    previous: Option<&BudgetStatus>,
    privacy: &PrivacySpec,
) -> BudgetDecision {
    let budget = match read {
        RegistryRead::Read(view) => view.budget.clone(),
        RegistryRead::NotRead | RegistryRead::Failed(_) => {
            previous.cloned().unwrap_or_else(|| registry::budget(None, privacy))
        }
    };
    let exhausted = registry::exhausted(&budget, privacy);
    BudgetDecision { budget, exhausted }
}

/// Everything one reconcile of a valid spec observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Gathered {
    /// Referenced Secrets that are missing or lack a key.
    pub secret_problems: Vec<Problem>,
    /// Valid but dangerous settings ([`crate::validate::warnings`]: certificate verification
    /// off), named in SpecValid's and Ready's messages.
    pub spec_warnings: Vec<Problem>,
    /// The registry read.
    pub registry: RegistryRead,
    /// The budget decision taken before rendering.
    pub budget: BudgetDecision,
    /// The Deployments and StatefulSets as the API server returned them after applying.
    pub workloads: Vec<WorkloadStatus>,
    /// The CronJob API the children were written in (`None`: the server serves none).
    pub cronjob_api: Option<CronJobApi>,
    /// The topics.
    pub topics: TopicsOutcome,
}

fn joined(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// The status of a resource whose spec failed the checks the schema cannot express: only
/// `SpecValid` (naming the fields) and `Ready` change; nothing else was observed.
pub fn decide_invalid(
    previous: &AnalyticsPipelineStatus,
    problems: &[Problem],
    generation: Option<i64>,
    now: &str,
) -> AnalyticsPipelineStatus {
    decide_blocked(previous, "InvalidSpec", problems, generation, now)
}

/// The status when nothing may be applied for `reason` (`SpecValid` false with the problems),
/// the rest of the status kept.
pub fn decide_blocked(
    previous: &AnalyticsPipelineStatus,
    reason: &str,
    problems: &[Problem],
    generation: Option<i64>,
    now: &str,
) -> AnalyticsPipelineStatus {
    let mut observed = vec![Observed::no(conditions::SPEC_VALID, reason, joined(problems))];
    observed.push(conditions::ready(&observed));
    AnalyticsPipelineStatus {
        observed_generation: generation,
        conditions: conditions::merge(&previous.conditions, &observed, generation, now),
        ..previous.clone()
    }
}

/// The status of a reconciled resource.
pub fn decide(
    previous: &AnalyticsPipelineStatus,
    g: &Gathered,
    privacy: &PrivacySpec,
    generation: Option<i64>,
    now: &str,
) -> AnalyticsPipelineStatus {
    let mut status = AnalyticsPipelineStatus {
        observed_generation: generation,
        workloads: g.workloads.clone(),
        privacy_budget: Some(g.budget.budget.clone()),
        ..previous.clone()
    };
    let mut observed = Vec::new();

    let warning =
        (!g.spec_warnings.is_empty()).then(|| format!("WARNING: {}", joined(&g.spec_warnings)));
    observed.push(match (g.secret_problems.is_empty(), &warning) {
        (true, None) => {
            Observed::yes(conditions::SPEC_VALID, "Valid", "spec and referenced Secrets are valid")
        }
        (true, Some(w)) => Observed::yes(
            conditions::SPEC_VALID,
            "ValidInsecure",
            format!("spec and referenced Secrets are valid; {w}"),
        ),
        (false, _) => {
            Observed::no(conditions::SPEC_VALID, "SecretUnusable", joined(&g.secret_problems))
        }
    });

    if let RegistryRead::Read(view) = &g.registry {
        status.models = view.models.clone();
    }
    observed.push(match &g.budget.exhausted {
        Some(msg) => {
            Observed::yes(conditions::PRIVACY_BUDGET_EXHAUSTED, "BudgetExhausted", msg.clone())
        }
        None => Observed::no(
            conditions::PRIVACY_BUDGET_EXHAUSTED,
            "BudgetAvailable",
            format!(
                "remaining epsilon {:.4} covers epsilonPerRun {:.4}",
                g.budget.budget.remaining_epsilon, privacy.epsilon_per_run
            ),
        ),
    });

    let deployments: Vec<&WorkloadStatus> =
        g.workloads.iter().filter(|w| w.kind == "Deployment").collect();
    let not_ready: Vec<String> = deployments
        .iter()
        .filter(|w| w.ready_replicas < w.replicas)
        .map(|w| format!("{} {}/{} ready", w.name, w.ready_replicas, w.replicas))
        .collect();
    observed.push(if not_ready.is_empty() {
        Observed::yes(
            conditions::WORKLOADS_READY,
            "AllReplicasReady",
            format!("{} Deployments ready", deployments.len()),
        )
    } else {
        Observed::no(conditions::WORKLOADS_READY, "ReplicasNotReady", not_ready.join(", "))
    });

    let mut backend_issues: Vec<String> = g
        .workloads
        .iter()
        .filter(|w| w.kind == "StatefulSet" && w.ready_replicas < 1)
        .map(|w| format!("managed backend {} has no ready replica", w.name))
        .collect();
    let registry_problem = match &g.registry {
        RegistryRead::Failed(e) => Some(e),
        _ => None,
    };
    if let Some(e) = registry_problem {
        backend_issues.push(format!("model registry unreachable (spec.mongodb): {e}"));
    }
    observed.push(if backend_issues.is_empty() {
        Observed::yes(
            conditions::BACKENDS_READY,
            "BackendsReady",
            "managed backends ready and model registry reachable",
        )
    } else {
        let reason = if registry_problem.is_some() {
            "RegistryUnreachable"
        } else {
            "ManagedBackendNotReady"
        };
        Observed::no(conditions::BACKENDS_READY, reason, backend_issues.join("; "))
    });

    observed.push(match g.cronjob_api {
        Some(api) => Observed::yes(
            conditions::OFFLINE_JOBS_READY,
            "CronJobsApplied",
            format!(
                "{} ({})",
                if g.budget.exhausted.is_some() {
                    "similarity CronJob scheduled; training CronJob suspended (privacy budget exhausted)"
                } else {
                    "similarity and training CronJobs scheduled"
                },
                api.api_version()
            ),
        ),
        None => Observed::no(
            conditions::OFFLINE_JOBS_READY,
            "CronJobUnsupported",
            "the API server serves neither batch/v1 nor batch/v1beta1 CronJob: the similarity \
             and training jobs are not created; everything else is reconciled",
        ),
    });

    observed.push(match &g.topics {
        TopicsOutcome::Ensured { topics, problems } => {
            status.topics = topics.clone();
            if problems.is_empty() {
                Observed::yes(
                    conditions::TOPICS_READY,
                    "TopicsReady",
                    format!(
                        "{} topics exist with the requested partitions and retention",
                        topics.len()
                    ),
                )
            } else {
                Observed::no(
                    conditions::TOPICS_READY,
                    "TopicError",
                    format!("spec.kafka.topics: {}", problems.join("; ")),
                )
            }
        }
        TopicsOutcome::Unreachable(e) => Observed::no(
            conditions::TOPICS_READY,
            "KafkaUnreachable",
            format!("spec.kafka.bootstrapServers: {e}"),
        ),
    });

    let mut ready = conditions::ready(&observed);
    if let Some(w) = warning {
        ready.message = format!("{}; {w}", ready.message);
    }
    observed.push(ready);
    status.conditions = conditions::merge(&previous.conditions, &observed, generation, now);
    status
}
