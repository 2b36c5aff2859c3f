//! Model registry and privacy ledger, read from MongoDB (written by the offline jobs).
//!
//! Contract: collection `model_registry` holds `{ name, version, trainedAt (date), metrics:
//! { rocAuc, ... }, privacy: { mechanism, epsilon | null, delta | null } }`; collection
//! `privacy_budget` holds one document per pipeline `{ _id: <pipeline name>, totalEpsilon, delta,
//! spentEpsilon, spentDelta, entries: [...] }`.

use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ClientOptions;
use tokio::sync::Mutex;

use crate::crd::{BudgetStatus, ModelStatus, PrivacySpec};

/// Collection of registered models.
pub const MODEL_REGISTRY: &str = "model_registry";
/// Collection of privacy ledgers.
pub const PRIVACY_BUDGET: &str = "privacy_budget";
/// At most this many registry documents are read per reconcile.
const MAX_REGISTRY_DOCS: i64 = 5000;

/// Errors reading the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The URL is invalid or the server is unreachable.
    #[error("MongoDB at {url}: {source}")]
    Mongo {
        /// URL (as in the spec).
        url: String,
        /// Cause.
        source: mongodb::error::Error,
    },
}

/// What the registry says about a pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryView {
    /// Latest version per model name, sorted by name.
    pub models: Vec<ModelStatus>,
    /// The budget (from the ledger, or the spec's total with nothing spent).
    pub budget: BudgetStatus,
}

/// Reads the model registry and the privacy ledger from MongoDB (see the module docs), with
/// one client per URL, reused across reconciles.
#[derive(Default)]
pub struct RegistryReader {
    clients: Mutex<HashMap<String, mongodb::Client>>,
}

fn f64_of(b: Option<&Bson>) -> Option<f64> {
    match b? {
        Bson::Double(v) => Some(*v),
        Bson::Int32(v) => Some(f64::from(*v)),
        Bson::Int64(v) => Some(*v as f64),
        _ => None,
    }
}

fn i64_of(b: Option<&Bson>) -> Option<i64> {
    match b? {
        Bson::Int32(v) => Some(i64::from(*v)),
        Bson::Int64(v) => Some(*v),
        Bson::Double(v) if v.fract() == 0.0 => Some(*v as i64),
        _ => None,
    }
}

/// The latest version of each model (documents without a name or version are skipped).
pub fn latest_models(docs: &[Document]) -> Vec<ModelStatus> {
    let mut best: HashMap<String, ModelStatus> = HashMap::new();
    for d in docs {
        let (Ok(name), Some(version)) = (d.get_str("name"), i64_of(d.get("version"))) else {
            continue;
        };
        if best.get(name).is_some_and(|m| m.version >= version) {
            continue;
        }
        let trained_at = match d.get("trainedAt") {
            Some(Bson::DateTime(t)) => {
                t.try_to_rfc3339_string().unwrap_or_else(|_| t.timestamp_millis().to_string())
            }
            Some(Bson::String(s)) => s.clone(),
            _ => String::new(),
        };
        let metrics = d.get_document("metrics").ok();
        let privacy = d.get_document("privacy").ok();
        best.insert(
            name.to_string(),
            ModelStatus {
                name: name.to_string(),
                version,
                roc_auc: metrics.and_then(|m| f64_of(m.get("rocAuc"))),
                epsilon: privacy.and_then(|p| f64_of(p.get("epsilon"))),
                trained_at,
            },
        );
    }
    let mut out: Vec<ModelStatus> = best.into_values().collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The budget from the ledger document, or from the spec when no ledger exists yet.
pub fn budget(ledger: Option<&Document>, spec: &PrivacySpec) -> BudgetStatus {
    let total = ledger.and_then(|d| f64_of(d.get("totalEpsilon"))).unwrap_or(spec.total_epsilon);
    let spent = ledger.and_then(|d| f64_of(d.get("spentEpsilon"))).unwrap_or(0.0);
    let delta = ledger.and_then(|d| f64_of(d.get("delta"))).unwrap_or(spec.delta);
    let spent_delta = ledger.and_then(|d| f64_of(d.get("spentDelta"))).unwrap_or(0.0);
    BudgetStatus {
        total_epsilon: total,
        spent_epsilon: spent,
        remaining_epsilon: (total - spent).max(0.0),
        delta,
        spent_delta,
        remaining_delta: (delta - spent_delta).max(0.0),
    }
}

/// `x` in scientific notation with at most four significant digits (`3e-4`, `1.235e-5`).
fn sci(x: f64) -> String {
    let s = format!("{x:.3e}");
    match s.split_once('e') {
        Some((m, e)) if m.contains('.') => {
            format!("{}e{e}", m.trim_end_matches('0').trim_end_matches('.'))
        }
        _ => s,
    }
}

/// Relative slack when comparing what is left with what a run costs (as the ledger does).
const TOLERANCE: f64 = 1e-9;

/// Whether another training run fits: `Some(message)` naming what ran out (epsilon, delta or
/// both), `None` when it fits.
pub fn exhausted(budget: &BudgetStatus, spec: &PrivacySpec) -> Option<String> {
    let short = |left: f64, need: f64, total: f64| left < need - TOLERANCE * total.max(need);
    let mut out = Vec::new();
    if short(budget.remaining_epsilon, spec.epsilon_per_run, budget.total_epsilon) {
        out.push(format!(
            "remaining epsilon {:.4} (total {:.4}, spent {:.4}) is less than epsilonPerRun {:.4}",
            budget.remaining_epsilon,
            budget.total_epsilon,
            budget.spent_epsilon,
            spec.epsilon_per_run
        ));
    }
    let delta_per_run = spec.delta_per_run();
    if short(budget.remaining_delta, delta_per_run, budget.delta) {
        out.push(format!(
            "remaining delta {} (total {}, spent {}) is less than deltaPerRun {}",
            sci(budget.remaining_delta),
            sci(budget.delta),
            sci(budget.spent_delta),
            sci(delta_per_run)
        ));
    }
    (!out.is_empty()).then(|| format!("{}; the training CronJob is suspended", out.join(", and ")))
}

impl RegistryReader {
    async fn client(&self, url: &str) -> Result<mongodb::Client, RegistryError> {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(url) {
            return Ok(c.clone());
        }
        let err = |source| RegistryError::Mongo { url: url.to_string(), source };
        let mut opts = ClientOptions::parse(url).await.map_err(err)?;
        opts.server_selection_timeout = Some(Duration::from_secs(3));
        opts.connect_timeout = Some(Duration::from_secs(3));
        opts.app_name = Some("shopstream-operator".into());
        let client = mongodb::Client::with_options(opts).map_err(err)?;
        clients.insert(url.to_string(), client.clone());
        Ok(client)
    }

    /// Reads the registry and the ledger of `pipeline`.
    pub async fn read(
        &self,
        url: &str,
        database: &str,
        pipeline: &str,
        privacy: &PrivacySpec,
    ) -> Result<RegistryView, RegistryError> {
        let err = |source| RegistryError::Mongo { url: url.to_string(), source };
        let db = self.client(url).await?.database(database);
        let docs: Vec<Document> = db
            .collection::<Document>(MODEL_REGISTRY)
            .find(doc! {})
            .projection(
                doc! { "name": 1, "version": 1, "trainedAt": 1, "metrics": 1, "privacy": 1 },
            )
            .sort(doc! { "name": 1, "version": -1 })
            .limit(MAX_REGISTRY_DOCS)
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let ledger = db
            .collection::<Document>(PRIVACY_BUDGET)
            .find_one(doc! { "_id": pipeline })
            .await
            .map_err(err)?;
        Ok(RegistryView { models: latest_models(&docs), budget: budget(ledger.as_ref(), privacy) })
    }
}
