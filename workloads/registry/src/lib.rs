//! The model registry, MongoDB collection `model_registry`, with the model bytes in the GridFS
//! bucket `model_blobs`.
//!
//! One small document per registered model version (metadata and where the bytes are):
//!
//! ```json
//! { "name": "mlp-dp", "version": 3, "kind": "mlp", "trainedAt": ISODate,
//!   "data": { "rows": 50000, "trainRows": 40000, "testRows": 10000, "from": ISODate, "to": ISODate },
//!   "metrics": { "rocAuc": 0.81, "accuracy": 0.74, "f1": 0.71, "logLoss": 0.52 },
//!   "privacy": { "mechanism": "dp-sgd/rdp", "epsilon": 1.0, "delta": 1e-5 },
//!   "topFeatures": [ { "feature": "time_on_pages", "meanAbsShap": 0.12 } ],
//!   "blob": { "bucket": "model_blobs", "fileId": ObjectId, "encoding": "gzip",
//!             "length": 17025033, "storedLength": 2123456, "sha256": "9f86d0…" } }
//! ```
//!
//! `privacy.epsilon` and `privacy.delta` are `null` for non-private models. Versions are
//! allocated per name from the `model_registry_counters` collection with an atomic
//! `$inc` + upsert, so they increase monotonically even with concurrent trainers; a unique
//! index on `(name, version)` backs that up.
//!
//! ## Model bytes
//!
//! MongoDB caps a document at 16 MB, and a serialized model is not bounded by that (the
//! 100-tree random forest of `dev/demo` is 17 MB of JSON), so the bytes live in GridFS
//! (`model_blobs.files` + `model_blobs.chunks`, 255 KiB chunks, unique index on
//! `(files_id, n)`), written and read by the `mongodb` driver's standard GridFS
//! implementation. `blob.length` and `blob.sha256` describe the model bytes as the caller gave
//! them; `blob.encoding` says how the GridFS file holds them: `"gzip"` (default level; JSON
//! models shrink several-fold) or `"identity"` when gzip would not make them smaller.
//! `blob.storedLength` is the GridFS file's length. Every read checks both lengths and the
//! SHA-256 (gzip adds its own CRC-32), and reports a mismatch as [`RegistryError::Corrupt`].
//!
//! Writes upload the blob first and insert the document second, so a version becomes visible
//! only once its bytes are complete; a refused insert deletes the blob again (see
//! [`Registry::insert`]). Listing reads documents only and never touches the blobs.
//!
//! Documents written before the blob store carry the bytes inline as `"model": BinData` and
//! no `blob`; [`Registry::get`] still reads them.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod blob;

use futures::{AsyncReadExt, AsyncWriteExt, TryStreamExt};
use mongodb::{
    Collection, Database, IndexModel,
    bson::{self, Bson, doc, oid::ObjectId},
    error::ErrorKind,
    gridfs::GridFsBucket,
    options::{FindOptions, GridFsBucketOptions, IndexOptions, ReturnDocument},
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
    /// The stored model bytes are missing or do not match what the document records
    /// (length, SHA-256, or undecodable gzip).
    #[error("model '{name}' version {version}: stored model bytes are corrupt: {reason}")]
    Corrupt {
        /// Model name.
        name: String,
        /// Version.
        version: i64,
        /// What failed.
        reason: String,
    },
    /// Compressing the model bytes failed.
    #[error("compressing the model: {0}")]
    Compress(#[source] std::io::Error),
    /// Uploading or downloading the model bytes failed.
    #[error("model blob I/O: {0}")]
    Blob(#[source] std::io::Error),
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

/// What a registry document says about a model version, without the model: the fields a
/// reader that only reports on models needs (the operator's status). Read with
/// [`ModelSummary::projection`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelSummary {
    /// Model name.
    pub name: String,
    /// Version.
    pub version: i64,
    /// When training finished.
    pub trained_at: bson::DateTime,
    /// Test metrics.
    pub metrics: Metrics,
    /// Privacy guarantee.
    pub privacy: PrivacyInfo,
}

impl ModelSummary {
    /// The projection that reads exactly these fields of a registry document.
    pub fn projection() -> bson::Document {
        bson::doc! { "_id": 0, "name": 1, "version": 1, "trainedAt": 1, "metrics": 1, "privacy": 1 }
    }
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

/// GridFS bucket holding the model bytes (collections `model_blobs.files` and
/// `model_blobs.chunks`).
pub const BLOB_BUCKET: &str = "model_blobs";

/// A registered model version, as callers register it and get it back.
///
/// The model bytes are not stored in the registry document (MongoDB caps a document at
/// 16 MB, and a 100-tree random forest is already 17 MB of JSON): [`Registry::insert`] puts
/// them in the [`BLOB_BUCKET`] GridFS bucket and the document records a [`BlobRef`].
#[derive(Debug, Clone, PartialEq)]
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
    /// The serialized model (opaque bytes of any size; the trainer stores JSON).
    pub model: Vec<u8>,
}

/// Where and how a model's bytes are stored: the registry document's `blob` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobRef {
    /// GridFS bucket name ([`BLOB_BUCKET`] for everything this version writes).
    pub bucket: String,
    /// `_id` of the GridFS file (`<bucket>.files`; its chunks have `files_id` = this).
    pub file_id: ObjectId,
    /// Encoding of the stored bytes: `"gzip"` or `"identity"` (see [`blob::Encoding`]).
    pub encoding: String,
    /// Length of the model bytes (decoded).
    pub length: i64,
    /// Length of the stored (encoded) bytes, i.e. of the GridFS file.
    pub stored_length: i64,
    /// Lower-case hex SHA-256 of the model bytes (decoded), verified on every read.
    pub sha256: String,
}

/// The document as stored. `model` is only read: documents written before the blob store
/// kept the model bytes inline there.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredEntry {
    name: String,
    version: i64,
    kind: String,
    trained_at: bson::DateTime,
    data: DataSnapshot,
    metrics: Metrics,
    privacy: PrivacyInfo,
    top_features: Vec<FeatureImportance>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    blob: Option<BlobRef>,
    #[serde(default, skip_serializing)]
    model: Option<bson::Binary>,
}

impl StoredEntry {
    fn new(e: &ModelEntry, blob: BlobRef) -> Self {
        Self {
            name: e.name.clone(),
            version: e.version,
            kind: e.kind.clone(),
            trained_at: e.trained_at,
            data: e.data.clone(),
            metrics: e.metrics,
            privacy: e.privacy.clone(),
            top_features: e.top_features.clone(),
            blob: Some(blob),
            model: None,
        }
    }

    fn into_entry(self, model: Vec<u8>) -> ModelEntry {
        ModelEntry {
            name: self.name,
            version: self.version,
            kind: self.kind,
            trained_at: self.trained_at,
            data: self.data,
            metrics: self.metrics,
            privacy: self.privacy,
            top_features: self.top_features,
            model,
        }
    }
}

/// Access to the registry collections and the model blob bucket.
#[derive(Debug, Clone)]
pub struct Registry {
    db: Database,
    entries: Collection<StoredEntry>,
    raw: Collection<bson::Document>,
    counters: Collection<bson::Document>,
    blobs: GridFsBucket,
}

impl Registry {
    /// Uses `db.model_registry`, `db.model_registry_counters` and the GridFS bucket
    /// `db.model_blobs`.
    pub fn new(db: &Database) -> Self {
        Self {
            db: db.clone(),
            entries: db.collection(COLLECTION),
            raw: db.collection(COLLECTION),
            counters: db.collection(COUNTERS),
            blobs: bucket(db, BLOB_BUCKET),
        }
    }

    /// Creates the unique `(name, version)` index (idempotent). The GridFS indexes
    /// (`files_id, n` unique on the chunks) are created by the driver on the first upload.
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
    ///
    /// Order: the model bytes are encoded ([`blob::encode`]) and uploaded to GridFS first,
    /// then the document that references them is inserted. Readers only find a model through
    /// its document, so a version is either fully visible or not at all. When the insert is
    /// refused (e.g. a duplicate `(name, version)`), the blob is deleted again; only when that
    /// clean-up itself fails, or the insert's outcome is not certain (network or write-concern
    /// error), an unreferenced blob can remain: harmless, and never read.
    pub async fn insert(&self, entry: &ModelEntry) -> Result<(), RegistryError> {
        let encoded = blob::encode(&entry.model).map_err(RegistryError::Compress)?;
        let file_id = ObjectId::new();
        self.upload(file_id, entry, &encoded).await?;
        let blob = BlobRef {
            bucket: BLOB_BUCKET.to_string(),
            file_id,
            encoding: encoded.encoding.as_str().to_string(),
            length: to_i64(encoded.length)?,
            stored_length: to_i64(encoded.bytes.len() as u64)?,
            sha256: encoded.sha256,
        };
        if let Err(e) = self.entries.insert_one(StoredEntry::new(entry, blob)).await {
            if is_refused(&e) {
                // Best effort; the insert error is the one worth reporting.
                let _ = self.blobs.delete(Bson::ObjectId(file_id)).await;
            }
            return Err(e.into());
        }
        Ok(())
    }

    async fn upload(
        &self,
        file_id: ObjectId,
        entry: &ModelEntry,
        encoded: &blob::Encoded,
    ) -> Result<(), RegistryError> {
        let mut stream = self
            .blobs
            .open_upload_stream(format!("{}/{}", entry.name, entry.version))
            .id(Bson::ObjectId(file_id))
            .metadata(doc! {
                "name": &entry.name,
                "version": entry.version,
                "encoding": encoded.encoding.as_str(),
                "sha256": &encoded.sha256,
            })
            .await?;
        let written = async {
            stream.write_all(&encoded.bytes).await?;
            stream.close().await
        }
        .await;
        if let Err(e) = written {
            // The driver removes the chunks of a failed chunk insert itself; this also covers
            // a failure while writing the files document. Best effort, as above.
            let _ = self.blobs.delete(Bson::ObjectId(file_id)).await;
            return Err(RegistryError::Blob(e));
        }
        Ok(())
    }

    /// Allocates a version, sets it on `entry`, stores it, and returns the version.
    pub async fn register(&self, mut entry: ModelEntry) -> Result<i64, RegistryError> {
        entry.version = self.allocate_version(&entry.name).await?;
        self.insert(&entry).await?;
        Ok(entry.version)
    }

    /// A version of a model, or the latest when `version` is `None`, with its model bytes.
    ///
    /// The bytes are read from GridFS and verified against the document (lengths and
    /// SHA-256); damaged or missing bytes are [`RegistryError::Corrupt`], never returned.
    /// Documents written before the blob store (model bytes inline in `model`) still read.
    pub async fn get(&self, name: &str, version: Option<i64>) -> Result<ModelEntry, RegistryError> {
        let found = match version {
            Some(v) => self.entries.find_one(doc! { "name": name, "version": v }).await?,
            None => {
                self.entries
                    .find(doc! { "name": name })
                    .sort(doc! { "version": -1 })
                    .limit(1)
                    .await?
                    .try_next()
                    .await?
            }
        };
        let mut stored =
            found.ok_or_else(|| RegistryError::NotFound { name: name.to_string(), version })?;
        let model = match (stored.blob.take(), stored.model.take()) {
            (Some(blob), _) => self.read_blob(&stored.name, stored.version, &blob).await?,
            (None, Some(inline)) => inline.bytes,
            (None, None) => {
                return Err(RegistryError::Malformed(format!(
                    "model '{}' version {} has neither `blob` nor `model`",
                    stored.name, stored.version
                )));
            }
        };
        Ok(stored.into_entry(model))
    }

    async fn read_blob(
        &self,
        name: &str,
        version: i64,
        blob: &BlobRef,
    ) -> Result<Vec<u8>, RegistryError> {
        let malformed = |what: &str| {
            RegistryError::Malformed(format!("model '{name}' version {version}: {what}"))
        };
        let corrupt =
            |reason: String| RegistryError::Corrupt { name: name.to_string(), version, reason };
        let encoding = blob::Encoding::parse(&blob.encoding)
            .ok_or_else(|| malformed(&format!("unknown blob encoding '{}'", blob.encoding)))?;
        let length = u64::try_from(blob.length).map_err(|_| malformed("negative blob.length"))?;
        let stored_length = u64::try_from(blob.stored_length)
            .map_err(|_| malformed("negative blob.storedLength"))?;
        let bucket = if blob.bucket == BLOB_BUCKET {
            self.blobs.clone()
        } else {
            bucket(&self.db, &blob.bucket)
        };
        let id = Bson::ObjectId(blob.file_id);
        let where_ = format!("GridFS file {} in bucket '{}'", blob.file_id, blob.bucket);
        let mut stream = match bucket.open_download_stream(id).await {
            Ok(s) => s,
            Err(e) => {
                return Err(match gridfs_kind(&e) {
                    Some(kind) => corrupt(format!("{where_}: {kind}")),
                    None => e.into(),
                });
            }
        };
        let mut stored =
            Vec::with_capacity(usize::try_from(stored_length).unwrap_or(0).min(1 << 30));
        if let Err(e) = stream.read_to_end(&mut stored).await {
            // Missing or wrongly sized chunks are damage; anything else is I/O.
            let kind = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<mongodb::error::Error>())
                .and_then(gridfs_kind);
            return Err(match kind {
                Some(kind) => corrupt(format!("{where_}: {kind}")),
                None => RegistryError::Blob(e),
            });
        }
        blob::decode(encoding, stored, stored_length, length, &blob.sha256)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Every version's metadata (without the model bytes, which are not downloaded), newest
    /// first, optionally for one name. New documents carry the `blob` reference instead.
    pub async fn list(&self, name: Option<&str>) -> Result<Vec<bson::Document>, RegistryError> {
        let filter = name.map_or_else(|| doc! {}, |n| doc! { "name": n });
        let opts = FindOptions::builder()
            .projection(doc! { "model": 0 })
            .sort(doc! { "name": 1, "version": -1 })
            .build();
        Ok(self.raw.find(filter).with_options(opts).await?.try_collect().await?)
    }
}

fn bucket(db: &Database, name: &str) -> GridFsBucket {
    db.gridfs_bucket(GridFsBucketOptions::builder().bucket_name(name.to_string()).build())
}

/// A GridFS-level failure (file or chunk missing, chunk of the wrong size), as a short text.
fn gridfs_kind(e: &mongodb::error::Error) -> Option<String> {
    match e.kind.as_ref() {
        ErrorKind::GridFs(k) => Some(format!("{k:?}")),
        _ => None,
    }
}

fn to_i64(n: u64) -> Result<i64, RegistryError> {
    i64::try_from(n).map_err(|_| RegistryError::Malformed(format!("length {n} exceeds i64")))
}

/// The server refused the document itself (duplicate key, validation), so it was certainly not
/// written. Write-concern errors (the write may have been applied) and network errors (outcome
/// unknown) do not count: deleting the blob then could leave a document without its bytes.
fn is_refused(e: &mongodb::error::Error) -> bool {
    matches!(e.kind.as_ref(), ErrorKind::Write(mongodb::error::WriteFailure::WriteError(_)))
}

/// Converts a chrono timestamp to a BSON date.
pub fn bson_date(t: chrono::DateTime<chrono::Utc>) -> bson::DateTime {
    bson::DateTime::from_millis(t.timestamp_millis())
}

fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match e.kind.as_ref() {
        ErrorKind::Write(mongodb::error::WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => e.to_string().contains("E11000"),
    }
}
