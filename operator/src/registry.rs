//! Model registry and privacy ledger, read from MongoDB (written by the offline jobs).
//!
//! The documents have one Rust type each, shared with their writers: a registry document is
//! read as [`shopstream_registry::ModelSummary`] (the fields the status needs), a ledger as
//! [`shopstream_privacy::BudgetDoc`].

use std::collections::HashMap;
use std::time::Duration;

use futures::TryStreamExt;
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use shopstream_privacy::BudgetDoc;
use shopstream_registry::ModelSummary;
use tokio::sync::Mutex;

use crate::crd::{BudgetStatus, ModelStatus, PrivacySpec};

/// Collection of registered models.
pub const MODEL_REGISTRY: &str = shopstream_registry::COLLECTION;
/// Collection of privacy ledgers.
pub const PRIVACY_BUDGET: &str = shopstream_privacy::store::COLLECTION;
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

/// The registry documents as [`ModelSummary`]s. A document this version cannot read (another
/// writer, an older shape) is skipped with a warning, not fatal for the whole status.
pub fn summaries(docs: Vec<Document>) -> Vec<ModelSummary> {
    docs.into_iter()
        .filter_map(|d| match mongodb::bson::from_document::<ModelSummary>(d) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "skipping a registry document of another shape");
                None
            }
        })
        .collect()
}

/// The latest version of each model.
pub fn latest_models(docs: &[ModelSummary]) -> Vec<ModelStatus> {
    let mut best: HashMap<&str, &ModelSummary> = HashMap::new();
    for d in docs {
        if best.get(d.name.as_str()).is_some_and(|m| m.version >= d.version) {
            continue;
        }
        best.insert(&d.name, d);
    }
    let mut out: Vec<ModelStatus> = best
        .into_values()
        .map(|d| ModelStatus {
            name: d.name.clone(),
            version: d.version,
            roc_auc: Some(d.metrics.roc_auc),
            epsilon: d.privacy.epsilon,
            trained_at: d
                .trained_at
                .try_to_rfc3339_string()
                .unwrap_or_else(|_| d.trained_at.timestamp_millis().to_string()),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The budget from the ledger document, or from the spec when no ledger exists yet.
pub fn budget(ledger: Option<&BudgetDoc>, spec: &PrivacySpec) -> BudgetStatus {
    let (total, spent, delta, spent_delta) = match ledger {
        Some(l) => (l.total_epsilon, l.spent_epsilon, l.delta, l.spent_delta),
        None => (spec.total_epsilon, 0.0, spec.delta, 0.0),
    };
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
            .projection(ModelSummary::projection())
            .sort(doc! { "name": 1, "version": -1 })
            .limit(MAX_REGISTRY_DOCS)
            .await
            .map_err(err)?
            .try_collect()
            .await
            .map_err(err)?;
        let models = summaries(docs);
        let ledger = db
            .collection::<BudgetDoc>(PRIVACY_BUDGET)
            .find_one(doc! { "_id": pipeline })
            .await
            .map_err(err)?;
        Ok(RegistryView {
            models: latest_models(&models),
            budget: budget(ledger.as_ref(), privacy),
        })
    }
}
