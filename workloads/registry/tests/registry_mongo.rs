//! Registry round trip and version allocation on the real MongoDB-wire server.

#![allow(clippy::unwrap_used)]

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

    // The raw document, as the operator reads it.
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
    assert!(raw.get_binary_generic("model").is_ok());
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
    db.drop().await.unwrap();
}
