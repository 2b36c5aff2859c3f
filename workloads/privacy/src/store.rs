//! Persistence of the budget ledger in MongoDB (collection `privacy_budget`, one document per
//! pipeline):
//!
//! ```json
//! { "_id": "<pipeline>", "totalEpsilon": 10.0, "delta": 1e-4,
//!   "spentEpsilon": 1.0, "spentDelta": 1e-5,
//!   "entries": [ { "at": ISODate, "what": "...", "mechanism": "dp-sgd/rdp",
//!                  "epsilon": 1.0, "delta": 1e-5, "model": "mlp-dp", "version": 3 } ] }
//! ```
//!
//! Spending is one atomic `findAndModify` whose filter requires
//! `spentEpsilon <= totalEpsilon - cost.epsilon` and `spentDelta <= delta - cost.delta` (with
//! the totals pinned to the values the check was made against), so concurrent runs can never
//! overspend: the loser's filter no longer matches, it re-reads and is refused if the
//! remaining budget is too small.
//!
//! A charge made for a run (`runId`, e.g. the Kubernetes Job's uid, the same for every retry
//! of the Job) is made once: the filter also requires that no entry carries that `runId`, and
//! a retry finds its entries and pays nothing ([`Charge::already_paid`]).

use mongodb::{
    Collection, Database,
    bson::{self, doc},
    options::ReturnDocument,
};
use serde::{Deserialize, Serialize};

use crate::PrivacyError;
use crate::ledger::{Budget, Cost};

/// Name of the MongoDB collection holding the budgets.
pub const COLLECTION: &str = "privacy_budget";

/// How many times a spend is retried when another writer changed the document in between.
const MAX_ATTEMPTS: usize = 20;

/// One recorded release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// When the spend was recorded.
    pub at: bson::DateTime,
    /// What was released (e.g. "train mlp-dp").
    pub what: String,
    /// Mechanism and accounting used (e.g. "dp-sgd/rdp", "laplace").
    pub mechanism: String,
    /// Epsilon spent.
    pub epsilon: f64,
    /// Delta spent.
    pub delta: f64,
    /// Registered model name, when the release is a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Registered model version, when the release is a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The run that paid (one charge per run, whatever its retries).
    #[serde(default, rename = "runId", skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

/// The stored document (field names as the operator reads them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetDoc {
    /// Pipeline name.
    #[serde(rename = "_id")]
    pub id: String,
    /// Total epsilon.
    pub total_epsilon: f64,
    /// Total delta.
    pub delta: f64,
    /// Epsilon spent so far.
    pub spent_epsilon: f64,
    /// Delta spent so far.
    pub spent_delta: f64,
    /// Every release, oldest first.
    #[serde(default)]
    pub entries: Vec<LedgerEntry>,
}

impl BudgetDoc {
    /// Whether the run `run_id` has already paid (some entry carries it).
    pub fn paid_by(&self, run_id: &str) -> bool {
        self.entries.iter().any(|e| e.run_id.as_deref() == Some(run_id))
    }

    /// The in-memory view used for checks.
    pub fn budget(&self) -> Budget {
        Budget {
            total_epsilon: self.total_epsilon,
            total_delta: self.delta,
            spent_epsilon: self.spent_epsilon,
            spent_delta: self.spent_delta,
        }
    }
}

/// A release to be charged.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRequest {
    /// What is released.
    pub what: String,
    /// Mechanism name.
    pub mechanism: String,
    /// Its cost.
    pub cost: Cost,
    /// Model name, if any.
    pub model: Option<String>,
    /// Model version, if any.
    pub version: Option<i64>,
}

/// The outcome of a charge.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    /// The budget after the charge.
    pub doc: BudgetDoc,
    /// The run had already paid (a retry): nothing was charged this time.
    pub already_paid: bool,
}

/// Access to the `privacy_budget` collection.
#[derive(Debug, Clone)]
pub struct BudgetStore {
    coll: Collection<BudgetDoc>,
}

impl BudgetStore {
    /// Uses `db.privacy_budget`.
    pub fn new(db: &Database) -> Self {
        Self { coll: db.collection(COLLECTION) }
    }

    /// Reads a pipeline's budget.
    pub async fn get(&self, pipeline: &str) -> Result<Option<BudgetDoc>, PrivacyError> {
        Ok(self.coll.find_one(doc! { "_id": pipeline }).await?)
    }

    /// Creates the pipeline's budget if missing. If it exists with other totals, the configured
    /// totals win (the pipeline's owner changed them) and a warning is logged; what was spent
    /// is kept.
    pub async fn ensure(
        &self,
        pipeline: &str,
        total_epsilon: f64,
        total_delta: f64,
    ) -> Result<BudgetDoc, PrivacyError> {
        Budget::new(total_epsilon, total_delta)?;
        let upsert = self
            .coll
            .update_one(
                doc! { "_id": pipeline },
                doc! { "$setOnInsert": {
                    "totalEpsilon": total_epsilon, "delta": total_delta,
                    "spentEpsilon": 0.0, "spentDelta": 0.0, "entries": [],
                } },
            )
            .upsert(true)
            .await;
        if let Err(e) = upsert {
            // Two first runs racing on the same _id: the loser sees a duplicate key; the
            // document exists either way.
            if !is_duplicate_key(&e) {
                return Err(e.into());
            }
        }
        let current = self
            .get(pipeline)
            .await?
            .ok_or_else(|| PrivacyError::NoBudget(pipeline.to_string()))?;
        if current.total_epsilon != total_epsilon || current.delta != total_delta {
            tracing::warn!(
                pipeline,
                old_epsilon = current.total_epsilon,
                new_epsilon = total_epsilon,
                old_delta = current.delta,
                new_delta = total_delta,
                "privacy budget totals changed by configuration"
            );
            self.coll
                .update_one(
                    doc! { "_id": pipeline },
                    doc! { "$set": { "totalEpsilon": total_epsilon, "delta": total_delta } },
                )
                .await?;
            return self
                .get(pipeline)
                .await?
                .ok_or_else(|| PrivacyError::NoBudget(pipeline.to_string()));
        }
        Ok(current)
    }

    /// Atomically charges `req` to the pipeline's budget, or refuses with
    /// [`PrivacyError::BudgetExceeded`] without changing anything.
    pub async fn spend(
        &self,
        pipeline: &str,
        req: &SpendRequest,
    ) -> Result<BudgetDoc, PrivacyError> {
        Ok(self.spend_all(pipeline, std::slice::from_ref(req), None).await?.doc)
    }

    /// Charges several releases at once, all or nothing: their summed cost (basic composition)
    /// must fit in what is left, and every one is recorded as its own entry. A training run
    /// uses this to pay for all its private models before it reads any data.
    ///
    /// With a `run_id`, the charge is made once per run: if entries of that run are already in
    /// the ledger (a retried Job), nothing is charged and [`Charge::already_paid`] is set.
    pub async fn spend_all(
        &self,
        pipeline: &str,
        reqs: &[SpendRequest],
        run_id: Option<&str>,
    ) -> Result<Charge, PrivacyError> {
        let costs = reqs
            .iter()
            .map(|r| Cost::new(r.cost.epsilon, r.cost.delta))
            .collect::<Result<Vec<_>, _>>()?;
        let cost = Cost::sum(costs.iter().copied());
        let what = reqs.iter().map(|r| r.what.as_str()).collect::<Vec<_>>().join(" + ");
        for _ in 0..MAX_ATTEMPTS {
            let current = self
                .get(pipeline)
                .await?
                .ok_or_else(|| PrivacyError::NoBudget(pipeline.to_string()))?;
            if let Some(run) = run_id
                && current.paid_by(run)
            {
                tracing::info!(pipeline, run, "this run has already paid; nothing charged");
                return Ok(Charge { doc: current, already_paid: true });
            }
            let budget = current.budget();
            budget.check(pipeline, &what, cost)?;
            let now = bson::DateTime::now();
            let mut entries = Vec::with_capacity(reqs.len());
            for (req, c) in reqs.iter().zip(&costs) {
                let entry = LedgerEntry {
                    at: now,
                    what: req.what.clone(),
                    mechanism: req.mechanism.clone(),
                    epsilon: c.epsilon,
                    delta: c.delta,
                    model: req.model.clone(),
                    version: req.version,
                    run_id: run_id.map(str::to_string),
                };
                entries
                    .push(bson::to_bson(&entry).map_err(|e| PrivacyError::Encode(e.to_string()))?);
            }
            let updated = self
                .coll
                .find_one_and_update(
                    {
                        let mut filter = doc! {
                            "_id": pipeline,
                            "totalEpsilon": current.total_epsilon,
                            "delta": current.delta,
                            "spentEpsilon": { "$lte": budget.max_spent_epsilon_for(cost) },
                            "spentDelta": { "$lte": budget.max_spent_delta_for(cost) },
                        };
                        if let Some(run) = run_id {
                            filter.insert("entries.runId", doc! { "$ne": run });
                        }
                        filter
                    },
                    doc! {
                        "$inc": { "spentEpsilon": cost.epsilon, "spentDelta": cost.delta },
                        "$push": { "entries": { "$each": entries } },
                    },
                )
                .return_document(ReturnDocument::After)
                .await?;
            if let Some(doc) = updated {
                tracing::info!(
                    pipeline,
                    what = %what,
                    epsilon = cost.epsilon,
                    delta = cost.delta,
                    spent_epsilon = doc.spent_epsilon,
                    total_epsilon = doc.total_epsilon,
                    "privacy budget charged"
                );
                return Ok(Charge { doc, already_paid: false });
            }
            // Another writer got there first (or the totals changed): re-read and re-check.
        }
        Err(PrivacyError::Contention(pipeline.to_string()))
    }
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => {
            w.code == 11000
        }
        mongodb::error::ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000"),
    }
}
