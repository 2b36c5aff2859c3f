//! The model registry, MongoDB collection `model_registry`.
//!
//! One document per registered model version:
//!
//! ```json
//! { "name": "mlp-dp", "version": 3, "kind": "mlp", "trainedAt": ISODate,
//!   "data": { "rows": 50000, "trainRows": 40000, "testRows": 10000, "from": ISODate, "to": ISODate },
//!   "metrics": { "rocAuc": 0.81, "accuracy": 0.74, "f1": 0.71, "logLoss": 0.52 },
//!   "privacy": { "mechanism": "dp-sgd/rdp", "epsilon": 1.0, "delta": 1e-5 },
//!   "topFeatures": [ { "feature": "time_on_pages", "meanAbsShap": 0.12 } ],
//!   "model": BinData(...) }
//! ```
//!
//! `privacy.epsilon` and `privacy.delta` are `null` for non-private models. Versions are
//! allocated per name from the `model_registry_counters` collection with an atomic
//! `$inc` + upsert, so they increase monotonically even with concurrent trainers; a unique
//! index on `(name, version)` backs that up.

#![cfg_attr(test, allow(clippy::unwrap_used))]

use futures::TryStreamExt;
use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Bson, doc},
    options::{FindOptions, IndexOptions, ReturnDocument},
};
use serde::{Deserialize, Serialize};

/// Collection of model versions.
pub const COLLECTION: &str = "model_registry";
/// Collection of per-name version counters.
pub const COUNTERS: &str = "model_registry_counters";

/// Errors of the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// MongoDB failure.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
    /// A stored document does not have the expected shape.
    #[error("malformed registry document: {0}")]
    Malformed(String),
    /// The requested model/version does not exist.
    #[error("no model '{name}'{}", .version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// Model name.
        name: String,
        /// Version, if one was asked for.
        version: Option<i64>,
    },
}

/// The data snapshot a model was trained and tested on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSnapshot {
    /// Sessions used (train + test).
    pub rows: i64,
    /// Training sessions.
    pub train_rows: i64,
    /// Test sessions.
    pub test_rows: i64,
    /// Earliest session timestamp.
    pub from: Option<bson::DateTime>,
    /// Latest session timestamp.
    pub to: Option<bson::DateTime>,
}

/// Test-set metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Accuracy at threshold 0.5.
    pub accuracy: f64,
    /// F1 of the positive class at threshold 0.5.
    pub f1: f64,
    /// Mean binary log loss.
    pub log_loss: f64,
}

/// The privacy guarantee of a model (`None` epsilon/delta = non-private).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PrivacyInfo {
    /// Mechanism (e.g. "none", "dp-sgd/rdp", "dp-rf/laplace").
    pub mechanism: String,
    /// Epsilon spent, `null` if non-private.
    pub epsilon: Option<f64>,
    /// Delta spent, `null` if non-private.
    pub delta: Option<f64>,
}

/// One entry of the global SHAP importance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureImportance {
    /// Feature (group) name.
    pub feature: String,
    /// Mean |SHAP| over the explained sessions.
    pub mean_abs_shap: f64,
}

/// A registered model version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelEntry {
    /// Model name (e.g. "gbdt", "mlp-dp").
    pub name: String,
    /// Version, monotonic per name.
    pub version: i64,
    /// Model family (e.g. "random_forest", "gbdt", "mlp").
    pub kind: String,
    /// When training finished.
    pub trained_at: bson::DateTime,
    /// The data snapshot.
    pub data: DataSnapshot,
    /// Test metrics.
    pub metrics: Metrics,
    /// Privacy guarantee.
    pub privacy: PrivacyInfo,
    /// Top features by mean |SHAP|.
    pub top_features: Vec<FeatureImportance>,
    /// The serialized model (opaque bytes; the trainer stores JSON).
    #[serde(with = "bytes_as_binary")]
    pub model: Vec<u8>,
}

mod bytes_as_binary {
    use mongodb::bson::{Binary, spec::BinarySubtype};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        Binary { subtype: BinarySubtype::Generic, bytes: v.to_vec() }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(Binary::deserialize(d)?.bytes)
    }
}

/// Access to the registry collections.
#[derive(Debug, Clone)]
pub struct Registry {
    models: Collection<ModelEntry>,
    raw: Collection<bson::Document>,
    counters: Collection<bson::Document>,
}

impl Registry {
    /// Uses `db.model_registry` and `db.model_registry_counters`.
    pub fn new(db: &Database) -> Self {
        Self {
            models: db.collection(COLLECTION),
            raw: db.collection(COLLECTION),
            counters: db.collection(COUNTERS),
        }
    }

    /// Creates the unique `(name, version)` index (idempotent).
    pub async fn ensure_indexes(&self) -> Result<(), RegistryError> {
        self.raw
            .create_index(
                IndexModel::builder()
                    .keys(doc! { "name": 1, "version": -1 })
                    .options(IndexOptions::builder().unique(true).build())
                    .build(),
            )
            .await?;
        Ok(())
    }

    /// Atomically allocates the next version for `name` (1, 2, 3, ...).
    ///
    /// The counter document is first created with `$setOnInsert` (a racing creator's
    /// duplicate-key error is ignored), then incremented with a single atomic `$inc`.
    pub async fn allocate_version(&self, name: &str) -> Result<i64, RegistryError> {
        for _ in 0..10 {
            let created = self
                .counters
                .update_one(doc! { "_id": name }, doc! { "$setOnInsert": { "seq": 0_i64 } })
                .upsert(true)
                .await;
            match created {
                Err(e) if !is_duplicate_key(&e) => return Err(e.into()),
                _ => {}
            }
            let updated = self
                .counters
                .find_one_and_update(doc! { "_id": name }, doc! { "$inc": { "seq": 1_i64 } })
                .return_document(ReturnDocument::After)
                .await?;
            if let Some(doc) = updated {
                return match doc.get("seq") {
                    Some(Bson::Int64(v)) => Ok(*v),
                    Some(Bson::Int32(v)) => Ok(i64::from(*v)),
                    Some(Bson::Double(v)) if v.fract() == 0.0 => Ok(*v as i64),
                    other => Err(RegistryError::Malformed(format!(
                        "counter seq for '{name}' is {other:?}"
                    ))),
                };
            }
        }
        Err(RegistryError::Malformed(format!("counter for '{name}' could not be created")))
    }

    /// Stores an entry whose version was obtained from [`Registry::allocate_version`].
    pub async fn insert(&self, entry: &ModelEntry) -> Result<(), RegistryError> {
        self.models.insert_one(entry).await?;
        Ok(())
    }

    /// Allocates a version, sets it on `entry`, stores it, and returns the version.
    pub async fn register(&self, mut entry: ModelEntry) -> Result<i64, RegistryError> {
        entry.version = self.allocate_version(&entry.name).await?;
        self.insert(&entry).await?;
        Ok(entry.version)
    }

    /// A version of a model, or the latest when `version` is `None`.
    pub async fn get(&self, name: &str, version: Option<i64>) -> Result<ModelEntry, RegistryError> {
        let found = match version {
            Some(v) => self.models.find_one(doc! { "name": name, "version": v }).await?,
            None => {
                self.models
                    .find(doc! { "name": name })
                    .sort(doc! { "version": -1 })
                    .limit(1)
                    .await?
                    .try_next()
                    .await?
            }
        };
        found.ok_or_else(|| RegistryError::NotFound { name: name.to_string(), version })
    }

    /// Every version's metadata (without the model bytes), newest first, optionally for one name.
    pub async fn list(&self, name: Option<&str>) -> Result<Vec<bson::Document>, RegistryError> {
        let filter = name.map_or_else(|| doc! {}, |n| doc! { "name": n });
        let opts = FindOptions::builder()
            .projection(doc! { "model": 0 })
            .sort(doc! { "name": 1, "version": -1 })
            .build();
        Ok(self.raw.find(filter).with_options(opts).await?.try_collect().await?)
    }
}

/// Converts a chrono timestamp to a BSON date.
pub fn bson_date(t: chrono::DateTime<chrono::Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
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
