//! The status as a pure function of what a reconcile observed (`status::decide`).

use shopstream_operator::crd::{
    AnalyticsPipelineStatus, BudgetStatus, ModelStatus, PrivacySpec, TopicStatus, WorkloadStatus,
};
use shopstream_operator::registry::{self, RegistryView};
use shopstream_operator::render::CronJobApi;
use shopstream_operator::status::{self, BudgetDecision, Gathered, RegistryRead, TopicsOutcome};
use shopstream_operator::validate::Problem;

const NOW: &str = "2026-12-05T10:00:00Z";
const LATER: &str = "2026-12-05T10:05:00Z";

fn privacy() -> PrivacySpec {
    PrivacySpec { total_epsilon: 10.0, delta: 1e-3, epsilon_per_run: 3.0, delta_per_run: None }
}

fn deployment(name: &str, replicas: i32, ready: i32) -> WorkloadStatus {
    WorkloadStatus { name: name.into(), kind: "Deployment".into(), replicas, ready_replicas: ready }
}

fn topic(name: &str) -> TopicStatus {
    TopicStatus { role: "raw".into(), name: name.into(), partitions: 3 }
}

fn model(name: &str, version: i64) -> ModelStatus {
    ModelStatus {
        name: name.into(),
        version,
        roc_auc: Some(0.7),
        epsilon: Some(1.0),
        trained_at: "2026-12-01T00:00:00Z".into(),
    }
}

fn healthy() -> Gathered {
    Gathered {
        secret_problems: vec![],
        spec_warnings: vec![],
        registry: RegistryRead::Read(RegistryView {
            models: vec![],
            budget: registry::budget(None, &privacy()),
        }),
        budget: status::budget(
            &RegistryRead::Read(RegistryView {
                models: vec![],
                budget: registry::budget(None, &privacy()),
            }),
            None,
            &privacy(),
        ),
        workloads: vec![deployment("shop-gate", 2, 2), deployment("shop-sink", 1, 1)],
        cronjob_api: Some(CronJobApi::V1),
        topics: TopicsOutcome::Ensured { topics: vec![topic("raw")], problems: vec![] },
    }
}

fn cond<'a>(s: &'a AnalyticsPipelineStatus, t: &str) -> (&'a str, &'a str, &'a str) {
    let c = s.conditions.iter().find(|c| c.type_ == t).unwrap_or_else(|| panic!("no {t}"));
    (c.status.as_str(), c.reason.as_str(), c.message.as_str())
}

#[test]
fn everything_observed_ready_gives_ready() {
    let s = status::decide(&Default::default(), &healthy(), &privacy(), Some(3), NOW);
    assert_eq!(cond(&s, "Ready").0, "True");
    for t in ["SpecValid", "WorkloadsReady", "BackendsReady", "OfflineJobsReady", "TopicsReady"] {
        assert_eq!(cond(&s, t).0, "True", "{t}");
    }
    assert_eq!(cond(&s, "PrivacyBudgetExhausted").0, "False");
    assert!(cond(&s, "OfflineJobsReady").2.contains("batch/v1"));
    assert_eq!(s.observed_generation, Some(3));
    assert!(s.conditions.iter().all(|c| c.observed_generation == Some(3)));
    assert_eq!(s.topics.len(), 1);
    assert_eq!(s.privacy_budget.as_ref().map(|b| b.remaining_epsilon), Some(10.0));
}

/// Turning certificate verification off is valid, but SpecValid and Ready say so, naming the
/// field, while the pipeline stays Ready.
#[test]
fn insecure_skip_verify_is_named_in_spec_valid_and_ready() {
    let mut g = healthy();
    g.spec_warnings = vec![Problem {
        field: "spec.kafka.tls.insecureSkipVerify".into(),
        message: "certificate verification is OFF".into(),
    }];
    let s = status::decide(&Default::default(), &g, &privacy(), Some(1), NOW);
    let (valid, reason, message) = cond(&s, "SpecValid");
    assert_eq!((valid, reason), ("True", "ValidInsecure"));
    assert!(message.contains("spec.kafka.tls.insecureSkipVerify"), "{message}");
    let (ready, _, message) = cond(&s, "Ready");
    assert_eq!(ready, "True");
    assert!(message.contains("WARNING: spec.kafka.tls.insecureSkipVerify"), "{message}");
}

#[test]
fn each_part_that_is_not_ready_names_itself_in_ready() {
    /// What is broken, how, which condition says so, and what its message must contain.
    type Case = (&'static str, Box<dyn Fn(&mut Gathered)>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            "missing secret",
            Box::new(|g| {
                g.secret_problems = vec![Problem {
                    field: "spec.pseudonymisation.keySecret".into(),
                    message: "Secret \"k\" not found".into(),
                }]
            }),
            "SpecValid",
            "spec.pseudonymisation.keySecret",
        ),
        (
            "replicas",
            Box::new(|g| g.workloads[0].ready_replicas = 1),
            "WorkloadsReady",
            "shop-gate 1/2 ready",
        ),
        (
            "registry",
            Box::new(|g| g.registry = RegistryRead::Failed("connection refused".into())),
            "BackendsReady",
            "model registry unreachable (spec.mongodb): connection refused",
        ),
        (
            "managed backend",
            Box::new(|g| {
                g.workloads.push(WorkloadStatus {
                    name: "shop-redis".into(),
                    kind: "StatefulSet".into(),
                    replicas: 1,
                    ready_replicas: 0,
                })
            }),
            "BackendsReady",
            "managed backend shop-redis has no ready replica",
        ),
        (
            "no CronJob API",
            Box::new(|g| g.cronjob_api = None),
            "OfflineJobsReady",
            "neither batch/v1 nor batch/v1beta1",
        ),
        (
            "broker",
            Box::new(|g| g.topics = TopicsOutcome::Unreachable("timed out".into())),
            "TopicsReady",
            "spec.kafka.bootstrapServers: timed out",
        ),
        (
            "topic step",
            Box::new(|g| {
                g.topics = TopicsOutcome::Ensured {
                    topics: vec![],
                    problems: vec!["raw: partitions cannot shrink".into()],
                }
            }),
            "TopicsReady",
            "spec.kafka.topics: raw: partitions cannot shrink",
        ),
    ];
    for (what, change, part, message) in cases {
        let mut g = healthy();
        change(&mut g);
        let s = status::decide(&Default::default(), &g, &privacy(), Some(1), NOW);
        assert_eq!(cond(&s, part).0, "False", "{what}");
        assert!(cond(&s, part).2.contains(message), "{what}: {}", cond(&s, part).2);
        let ready = cond(&s, "Ready");
        assert_eq!(ready.0, "False", "{what}");
        assert_eq!(ready.1, format!("{part}False"), "{what}");
        assert!(ready.2.contains(message), "{what}: {}", ready.2);
    }
}

#[test]
fn an_exhausted_budget_suspends_training_but_does_not_make_the_pipeline_unready() {
    let spent = BudgetStatus {
        total_epsilon: 10.0,
        spent_epsilon: 9.0,
        remaining_epsilon: 1.0,
        delta: 1e-3,
        spent_delta: 2.7e-4,
        remaining_delta: 7.3e-4,
    };
    let mut g = healthy();
    g.registry = RegistryRead::Read(RegistryView {
        models: vec![model("randomForest", 4)],
        budget: spent.clone(),
    });
    g.budget = status::budget(&g.registry, None, &privacy());
    assert!(g.budget.exhausted.is_some());
    let s = status::decide(&Default::default(), &g, &privacy(), Some(1), NOW);
    assert_eq!(cond(&s, "PrivacyBudgetExhausted").0, "True");
    assert!(cond(&s, "OfflineJobsReady").2.contains("training CronJob suspended"));
    assert_eq!(cond(&s, "Ready").0, "True");
    assert_eq!(s.models.len(), 1);
    assert_eq!(s.privacy_budget, Some(spent));
    let message = cond(&s, "PrivacyBudgetExhausted").2;
    assert!(message.contains("remaining epsilon") && !message.contains("delta"), "{message}");
}

#[test]
fn a_budget_whose_delta_cannot_pay_for_a_run_says_delta() {
    // Epsilon for three more runs, delta for less than one (deltaPerRun = 1e-3 * 3 / 10).
    let spent = BudgetStatus {
        total_epsilon: 10.0,
        spent_epsilon: 1.0,
        remaining_epsilon: 9.0,
        delta: 1e-3,
        spent_delta: 8e-4,
        remaining_delta: 2e-4,
    };
    let mut g = healthy();
    g.registry = RegistryRead::Read(RegistryView { models: vec![], budget: spent });
    g.budget = status::budget(&g.registry, None, &privacy());
    let s = status::decide(&Default::default(), &g, &privacy(), Some(1), NOW);
    let (state, _, message) = cond(&s, "PrivacyBudgetExhausted");
    assert_eq!(state, "True");
    assert!(
        message.contains("remaining delta 2e-4") && message.contains("deltaPerRun 3e-4"),
        "{message}"
    );
    assert!(!message.contains("remaining epsilon"), "{message}");
    // With an explicit deltaPerRun that fits, the same budget pays for the next run.
    let roomy = PrivacySpec { delta_per_run: Some(1e-4), ..privacy() };
    g.budget = status::budget(&g.registry, None, &roomy);
    let s = status::decide(&Default::default(), &g, &roomy, Some(1), NOW);
    assert_eq!(cond(&s, "PrivacyBudgetExhausted").0, "False");
}

#[test]
fn an_unreadable_registry_keeps_the_last_budget_and_models() {
    let mut first = healthy();
    first.registry = RegistryRead::Read(RegistryView {
        models: vec![model("mlp", 2)],
        budget: BudgetStatus {
            spent_epsilon: 3.0,
            remaining_epsilon: 7.0,
            ..registry::budget(None, &privacy())
        },
    });
    first.budget = status::budget(&first.registry, None, &privacy());
    let before = status::decide(&Default::default(), &first, &privacy(), Some(1), NOW);
    let mut later = healthy();
    later.registry = RegistryRead::Failed("down".into());
    later.budget = status::budget(&later.registry, before.privacy_budget.as_ref(), &privacy());
    let after = status::decide(&before, &later, &privacy(), Some(1), LATER);
    assert_eq!(after.models, before.models, "models kept");
    assert_eq!(after.privacy_budget.as_ref().map(|b| b.remaining_epsilon), Some(7.0));
    assert_eq!(cond(&after, "BackendsReady").0, "False");
    // a condition whose status did not change keeps its transition time
    let t = |s: &AnalyticsPipelineStatus, c: &str| {
        s.conditions.iter().find(|x| x.type_ == c).map(|x| x.last_transition_time.clone())
    };
    assert_eq!(t(&after, "TopicsReady"), Some(NOW.to_string()));
    assert_eq!(t(&after, "BackendsReady"), Some(LATER.to_string()));
    // without any earlier budget: the spec's fresh one
    let fresh = status::budget(&RegistryRead::NotRead, None, &privacy());
    assert_eq!(
        fresh,
        BudgetDecision { budget: registry::budget(None, &privacy()), exhausted: None }
    );
}

#[test]
fn an_invalid_spec_changes_only_spec_valid_and_ready() {
    let before = status::decide(&Default::default(), &healthy(), &privacy(), Some(1), NOW);
    let problems = vec![Problem {
        field: "spec.offline.training.privacy.epsilonPerRun".into(),
        message: "exceeds totalEpsilon".into(),
    }];
    let after = status::decide_invalid(&before, &problems, Some(2), LATER);
    assert_eq!(cond(&after, "SpecValid").0, "False");
    assert!(cond(&after, "SpecValid").2.starts_with("spec.offline.training.privacy.epsilonPerRun"));
    assert_eq!(cond(&after, "Ready").0, "False");
    assert_eq!(cond(&after, "TopicsReady").0, "True", "other conditions kept");
    assert_eq!(after.observed_generation, Some(2));
    assert_eq!(after.topics, before.topics);
}
