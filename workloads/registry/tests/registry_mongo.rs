//! Registry round trip and version allocation on the real MongoDB-wire server.

#![allow(clippy::unwrap_used)]

use futures::TryStreamExt;
use mongodb::bson::{self, doc};
use shopstream_registry::{
    DataSnapshot, FeatureImportance, Metrics, ModelEntry, PrivacyInfo, Registry, RegistryError,
};

async fn test_db() -> (mongodb::Client, mongodb::Database) {
    let url = std::env::var("SHOPSTREAM_MONGO_URL").unwrap_or_else(|_| {
        panic!(
            "SHOPSTREAM_MONGO_URL is not set: run `eval \"$(dev/stack env)\"` after `dev/stack up`"
        )
    });
    let client = mongodb::Client::with_uri_str(&url).await.unwrap();
    let db = client.database(&format!("registry_test_{}", uuid::Uuid::new_v4().simple()));
    (client, db)
}

fn entry(name: &str, private: bool) -> ModelEntry {
    ModelEntry {
        name: name.to_string(),
        version: 0,
        kind: "mlp".to_string(),
        trained_at: bson::DateTime::from_millis(1_790_000_000_000),
        data: DataSnapshot {
            rows: 100,
            train_rows: 80,
            test_rows: 20,
            from: Some(bson::DateTime::from_millis(1_780_000_000_000)),
            to: Some(bson::DateTime::from_millis(1_785_000_000_000)),
        },
        metrics: Metrics { roc_auc: 0.8, accuracy: 0.7, f1: 0.65, log_loss: 0.5 },
        privacy: if private {
            PrivacyInfo { mechanism: "dp-sgd/rdp".into(), epsilon: Some(1.0), delta: Some(1e-5) }
        } else {
            PrivacyInfo { mechanism: "none".into(), epsilon: None, delta: None }
        },
        top_features: vec![FeatureImportance { feature: "clicks".into(), mean_abs_shap: 0.1 }],
        model: br#"{"weights":[1,2,3]}"#.to_vec(),
    }
}

#[tokio::test]
async fn round_trip_latest_and_documented_shape() {
    let (_c, db) = test_db().await;
    let reg = Registry::new(&db);
    reg.ensure_indexes().await.unwrap();
    let v1 = reg.register(entry("mlp", false)).await.unwrap();
    let v2 = reg.register(entry("mlp", false)).await.unwrap();
    let w1 = reg.register(entry("mlp-dp", true)).await.unwrap();
    assert_eq!((v1, v2, w1), (1, 2, 1));

    let latest = reg.get("mlp", None).await.unwrap();
    assert_eq!(latest.version, 2);
    let mut expected = entry("mlp", false);
    expected.version = 2;
    assert_eq!(latest, expected, "full round trip including model bytes");
    assert_eq!(reg.get("mlp", Some(1)).await.unwrap().version, 1);
    assert!(matches!(reg.get("mlp", Some(9)).await, Err(RegistryError::NotFound { .. })));
    assert!(matches!(reg.get("nope", None).await, Err(RegistryError::NotFound { .. })));

    // What the operator reads (its projection, its type) is what was registered.
    let summary: shopstream_registry::ModelSummary = db
        .collection::<shopstream_registry::ModelSummary>("model_registry")
        .find_one(doc! { "name": "mlp-dp" })
        .projection(shopstream_registry::ModelSummary::projection())
        .await
        .unwrap()
        .unwrap();
    let e = entry("mlp-dp", true);
    assert_eq!(
        (summary.name.as_str(), summary.version, summary.trained_at),
        ("mlp-dp", 1, e.trained_at)
    );
    assert_eq!((summary.metrics, summary.privacy), (e.metrics, e.privacy));

    // The raw document, as other readers see it.
    let raw = db
        .collection::<bson::Document>("model_registry")
        .find_one(doc! { "name": "mlp-dp" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.get_i64("version").unwrap(), 1);
    assert!(raw.get_datetime("trainedAt").is_ok());
    let m = raw.get_document("metrics").unwrap();
    for k in ["rocAuc", "accuracy", "f1", "logLoss"] {
        assert!(m.get_f64(k).is_ok(), "metrics.{k}");
    }
    let p = raw.get_document("privacy").unwrap();
    assert_eq!(p.get_str("mechanism").unwrap(), "dp-sgd/rdp");
    assert_eq!(p.get_f64("epsilon").unwrap(), 1.0);
    assert_eq!(p.get_f64("delta").unwrap(), 1e-5);
    let d = raw.get_document("data").unwrap();
    assert_eq!(d.get_i64("trainRows").unwrap(), 80);
    assert!(d.get_datetime("from").is_ok());
    assert_eq!(
        raw.get_array("topFeatures").unwrap()[0]
            .as_document()
            .unwrap()
            .get_f64("meanAbsShap")
            .unwrap(),
        0.1
    );
    // The bytes are not inline: the document references a GridFS file.
    assert!(!raw.contains_key("model"), "model bytes are not stored in the document");
    let blob = raw.get_document("blob").unwrap();
    assert_eq!(blob.get_str("bucket").unwrap(), "model_blobs");
    let model = br#"{"weights":[1,2,3]}"#;
    assert_eq!(blob.get_i64("length").unwrap(), model.len() as i64);
    assert_eq!(blob.get_str("sha256").unwrap(), shopstream_registry::blob::sha256_hex(model));
    assert_eq!(blob.get_str("encoding").unwrap(), "identity", "19 bytes do not gzip smaller");
    let file = db
        .collection::<bson::Document>("model_blobs.files")
        .find_one(doc! { "_id": blob.get_object_id("fileId").unwrap() })
        .await
        .unwrap()
        .expect("the referenced GridFS file exists");
    assert_eq!(file.get_i64("length").unwrap(), blob.get_i64("storedLength").unwrap());
    let np = db
        .collection::<bson::Document>("model_registry")
        .find_one(doc! { "name": "mlp" })
        .await
        .unwrap()
        .unwrap();
    let p = np.get_document("privacy").unwrap();
    assert_eq!(p.get("epsilon"), Some(&bson::Bson::Null), "non-private epsilon is null");
    assert_eq!(p.get("delta"), Some(&bson::Bson::Null));

    let listed = reg.list(Some("mlp")).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| !d.contains_key("model")));
    assert!(listed.iter().all(|d| d.get_document("blob").is_ok()), "listing shows the reference");
    db.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_version_allocation_is_gapless_and_unique() {
    let (_c, db) = test_db().await;
    let reg = Registry::new(&db);
    reg.ensure_indexes().await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..12 {
        let reg = reg.clone();
        handles
            .push(tokio::spawn(async move { reg.register(entry("gbdt", false)).await.unwrap() }));
    }
    let mut versions = Vec::new();
    for h in handles {
        versions.push(h.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (1..=12).collect::<Vec<i64>>());
    // The unique index refuses a duplicate (name, version).
    let mut dup = entry("gbdt", false);
    dup.version = 3;
    assert!(reg.insert(&dup).await.is_err());
    // The refused insert left no blob behind: exactly one GridFS file per document, each
    // referenced, and no chunk without a file.
    assert_eq!(blob_file_ids(&db).await, referenced_file_ids(&db).await);
    assert_eq!(blob_file_ids(&db).await.len(), 12);
    let chunk_files: std::collections::BTreeSet<String> = db
        .collection::<bson::Document>("model_blobs.chunks")
        .distinct("files_id", doc! {})
        .await
        .unwrap()
        .iter()
        .map(|b| b.as_object_id().unwrap().to_hex())
        .collect();
    assert_eq!(chunk_files, blob_file_ids(&db).await);
    db.drop().await.unwrap();
}

/// Every document of a collection.
async fn all(db: &mongodb::Database, collection: &str) -> Vec<bson::Document> {
    let found = db.collection::<bson::Document>(collection).find(doc! {}).await.unwrap();
    found.try_collect().await.unwrap()
}

async fn blob_file_ids(db: &mongodb::Database) -> std::collections::BTreeSet<String> {
    let files = all(db, "model_blobs.files").await;
    files.iter().map(|f| f.get_object_id("_id").unwrap().to_hex()).collect()
}

async fn referenced_file_ids(db: &mongodb::Database) -> std::collections::BTreeSet<String> {
    let docs = all(db, "model_registry").await;
    docs.iter()
        .map(|d| d.get_document("blob").unwrap().get_object_id("fileId").unwrap().to_hex())
        .collect()
}

/// A random-forest-like JSON document of about `bytes` bytes whose float thresholds and leaf
/// values are pseudo-random, so it compresses only 2-3x (a real forest's floats do not
/// compress much better).
fn forest_json(bytes: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = String::with_capacity(bytes + 256);
    s.push_str(r#"{"kind":"random_forest","trees":["#);
    while s.len() < bytes {
        s.push_str(r#"{"nodes":["#);
        for i in 0..64 {
            let (a, b) = (next(), next());
            s.push_str(&format!(
                r#"{{"f":{},"t":{:e},"l":{},"r":{},"v":{}}},"#,
                a % 37,
                (a >> 11) as f64 / (1u64 << 53) as f64 * 100.0,
                2 * i + 1,
                2 * i + 2,
                (b >> 11) as f64 / (1u64 << 53) as f64,
            ));
        }
        s.pop();
        s.push_str("]},");
    }
    s.pop();
    s.push_str("]}");
    s.into_bytes()
}

fn big_entry(name: &str, model: Vec<u8>) -> ModelEntry {
    let mut e = entry(name, false);
    e.kind = "random_forest".into();
    e.model = model;
    e
}

#[tokio::test]
async fn model_larger_than_a_document_round_trips_through_gridfs() {
    let (_c, db) = test_db().await;
    let reg = Registry::new(&db);
    reg.ensure_indexes().await.unwrap();
    let model = forest_json(56 << 20, 7);
    assert!(model.len() > 56 << 20);
    let v = reg.register(big_entry("rf", model.clone())).await.unwrap();
    assert_eq!(v, 1);

    let raw = db
        .collection::<bson::Document>("model_registry")
        .find_one(doc! { "name": "rf" })
        .await
        .unwrap()
        .unwrap();
    let blob = raw.get_document("blob").unwrap();
    assert_eq!(blob.get_str("encoding").unwrap(), "gzip");
    assert_eq!(blob.get_i64("length").unwrap(), model.len() as i64);
    let stored = blob.get_i64("storedLength").unwrap();
    assert!(
        stored > 16 << 20,
        "even gzipped the model ({stored} bytes) must exceed the 16 MiB document limit, so \
         this test exercises what an inline document could not hold"
    );
    assert!(stored < model.len() as i64);
    let chunks = db
        .collection::<bson::Document>("model_blobs.chunks")
        .count_documents(doc! { "files_id": blob.get_object_id("fileId").unwrap() })
        .await
        .unwrap();
    assert_eq!(chunks, (stored as u64).div_ceil(255 * 1024), "255 KiB GridFS chunks");

    let got = reg.get("rf", None).await.unwrap();
    assert_eq!(got.version, 1);
    assert_eq!(got.model.len(), model.len());
    assert!(got.model == model, "model bytes read back differ");
    let mut expected = big_entry("rf", model);
    expected.version = 1;
    assert_eq!(got, expected, "metadata round trip");

    let listed = reg.list(None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(!listed[0].contains_key("model"));
    db.drop().await.unwrap();
}

/// Overwrites chunk `n` of the model's GridFS file with the same number of different bytes.
async fn damage_chunk(db: &mongodb::Database, name: &str, n: i32) {
    let raw = db
        .collection::<bson::Document>("model_registry")
        .find_one(doc! { "name": name })
        .await
        .unwrap()
        .unwrap();
    let file_id = raw.get_document("blob").unwrap().get_object_id("fileId").unwrap();
    let chunks = db.collection::<bson::Document>("model_blobs.chunks");
    let chunk = chunks.find_one(doc! { "files_id": file_id, "n": n }).await.unwrap().unwrap();
    let mut data = chunk.get_binary_generic("data").unwrap().clone();
    let mid = data.len() / 2;
    data[mid] ^= 0x20;
    let bin = bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: data };
    let r = chunks
        .update_one(
            doc! { "_id": chunk.get_object_id("_id").unwrap() },
            doc! { "$set": { "data": bin } },
        )
        .await
        .unwrap();
    assert_eq!(r.modified_count, 1);
}

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn damaged_or_missing_bytes_are_a_clear_error() {
    let (_c, db) = test_db().await;
    let reg = Registry::new(&db);
    reg.ensure_indexes().await.unwrap();

    // Incompressible bytes are stored as they are: a flipped byte is caught by the SHA-256.
    reg.register(big_entry("raw", noise(1 << 20, 3))).await.unwrap();
    assert_eq!(reg.get("raw", None).await.unwrap().model, noise(1 << 20, 3));
    damage_chunk(&db, "raw", 2).await;
    let err = reg.get("raw", None).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Corrupt { name, version: 1, .. } if name == "raw"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    assert!(msg.contains("model 'raw' version 1"), "{msg}");

    // A gzip blob with a damaged chunk does not decode (or fails the checks after it).
    reg.register(big_entry("gz", forest_json(2 << 20, 5))).await.unwrap();
    damage_chunk(&db, "gz", 1).await;
    let err = reg.get("gz", None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Corrupt { .. }), "{err:?}");

    // A missing chunk is reported as damage too, not as a short model.
    reg.register(big_entry("gone", noise(1 << 20, 4))).await.unwrap();
    let raw = db
        .collection::<bson::Document>("model_registry")
        .find_one(doc! { "name": "gone" })
        .await
        .unwrap()
        .unwrap();
    let file_id = raw.get_document("blob").unwrap().get_object_id("fileId").unwrap();
    db.collection::<bson::Document>("model_blobs.chunks")
        .delete_one(doc! { "files_id": file_id, "n": 3 })
        .await
        .unwrap();
    let err = reg.get("gone", None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("MissingChunk { n: 3 }"), "{err}");

    // A document whose recorded digest does not match intact bytes.
    reg.register(big_entry("lie", b"{}".repeat(1000))).await.unwrap();
    db.collection::<bson::Document>("model_registry")
        .update_one(doc! { "name": "lie" }, doc! { "$set": { "blob.sha256": "00".repeat(32) } })
        .await
        .unwrap();
    let err = reg.get("lie", None).await.unwrap_err();
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");

    // The whole GridFS file gone.
    db.collection::<bson::Document>("model_blobs.files")
        .delete_one(doc! { "_id": file_id })
        .await
        .unwrap();
    let err = reg.get("gone", None).await.unwrap_err();
    assert!(matches!(err, RegistryError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains("FileNotFound"), "{err}");
    db.drop().await.unwrap();
}

#[tokio::test]
async fn documents_with_inline_model_bytes_still_read() {
    let (_c, db) = test_db().await;
    let reg = Registry::new(&db);
    reg.ensure_indexes().await.unwrap();
    // The shape written before the blob store: the bytes inline as BinData, no `blob`.
    let legacy = doc! {
        "name": "old", "version": 1_i64, "kind": "mlp",
        "trainedAt": bson::DateTime::from_millis(1_790_000_000_000),
        "data": { "rows": 100_i64, "trainRows": 80_i64, "testRows": 20_i64,
                  "from": bson::DateTime::from_millis(1_780_000_000_000),
                  "to": bson::DateTime::from_millis(1_785_000_000_000) },
        "metrics": { "rocAuc": 0.8, "accuracy": 0.7, "f1": 0.65, "logLoss": 0.5 },
        "privacy": { "mechanism": "none", "epsilon": null, "delta": null },
        "topFeatures": [ { "feature": "clicks", "meanAbsShap": 0.1 } ],
        "model": bson::Binary {
            subtype: bson::spec::BinarySubtype::Generic,
            bytes: br#"{"weights":[1,2,3]}"#.to_vec(),
        },
    };
    db.collection::<bson::Document>("model_registry").insert_one(legacy).await.unwrap();
    let mut expected = entry("old", false);
    expected.version = 1;
    assert_eq!(reg.get("old", Some(1)).await.unwrap(), expected);
    // A new version of the same name goes to GridFS; both read.
    reg.allocate_version("old").await.unwrap();
    let v = reg.register(entry("old", false)).await.unwrap();
    assert_eq!(v, 2);
    assert_eq!(reg.get("old", None).await.unwrap().model, expected.model);
    let listed = reg.list(Some("old")).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|d| !d.contains_key("model")));
    db.drop().await.unwrap();
}
