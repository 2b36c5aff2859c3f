//! The budget ledger against the real MongoDB-wire server from `dev/stack`.

#![allow(clippy::unwrap_used)]

use mongodb::{Client, Database};
use shopstream_privacy::{BudgetStore, Cost, PrivacyError, SpendRequest};

async fn test_db() -> (Client, Database) {
    let url = std::env::var("SHOPSTREAM_MONGO_URL").unwrap_or_else(|_| {
        panic!(
            "SHOPSTREAM_MONGO_URL is not set: run `eval \"$(dev/stack env)\"` after `dev/stack up`"
        )
    });
    let client = Client::with_uri_str(&url).await.expect("connect to MongoDB");
    let name = format!("privacy_test_{}", uuid::Uuid::new_v4().simple());
    let db = client.database(&name);
    (client, db)
}

fn req(what: &str, epsilon: f64, delta: f64) -> SpendRequest {
    SpendRequest {
        what: what.to_string(),
        mechanism: "dp-sgd/rdp".to_string(),
        cost: Cost::new(epsilon, delta).unwrap(),
        model: Some("mlp-dp".to_string()),
        version: Some(7),
    }
}

#[tokio::test]
async fn spends_are_recorded_in_the_documented_shape_and_overspend_is_refused() {
    let (_c, db) = test_db().await;
    let store = BudgetStore::new(&db);
    store.ensure("p1", 2.5, 1e-4).await.unwrap();
    store.spend("p1", &req("train mlp-dp", 1.0, 1e-5)).await.unwrap();
    let after = store.spend("p1", &req("train gbdt-dp", 1.0, 0.0)).await.unwrap();
    assert_eq!(after.spent_epsilon, 2.0);
    assert_eq!(after.entries.len(), 2);

    let err = store.spend("p1", &req("train rf-dp", 1.0, 0.0)).await.unwrap_err();
    assert!(matches!(err, PrivacyError::BudgetExceeded { .. }), "{err}");
    assert!(err.to_string().contains("train rf-dp"), "{err}");

    // Raw document: the camelCase shape the operator reads.
    let raw = db
        .collection::<mongodb::bson::Document>("privacy_budget")
        .find_one(mongodb::bson::doc! { "_id": "p1" })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.get_f64("totalEpsilon").unwrap(), 2.5);
    assert_eq!(raw.get_f64("delta").unwrap(), 1e-4);
    assert_eq!(raw.get_f64("spentEpsilon").unwrap(), 2.0);
    assert_eq!(raw.get_f64("spentDelta").unwrap(), 1e-5);
    let entries = raw.get_array("entries").unwrap();
    assert_eq!(entries.len(), 2, "the refused spend left no entry");
    let e0 = entries[0].as_document().unwrap();
    assert!(e0.get_datetime("at").is_ok());
    assert_eq!(e0.get_str("what").unwrap(), "train mlp-dp");
    assert_eq!(e0.get_str("mechanism").unwrap(), "dp-sgd/rdp");
    assert_eq!(e0.get_f64("epsilon").unwrap(), 1.0);
    assert_eq!(e0.get_f64("delta").unwrap(), 1e-5);
    assert_eq!(e0.get_str("model").unwrap(), "mlp-dp");
    assert_eq!(e0.get_i64("version").unwrap(), 7);

    // ensure() on an existing pipeline keeps what was spent.
    let again = store.ensure("p1", 2.5, 1e-4).await.unwrap();
    assert_eq!(again.spent_epsilon, 2.0);
    db.drop().await.unwrap();
}

#[tokio::test]
async fn unknown_pipeline_is_an_error_not_a_free_budget() {
    let (_c, db) = test_db().await;
    let store = BudgetStore::new(&db);
    assert!(matches!(
        store.spend("nope", &req("x", 0.1, 0.0)).await,
        Err(PrivacyError::NoBudget(_))
    ));
    db.drop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_spends_never_overspend() {
    let (_c, db) = test_db().await;
    let store = BudgetStore::new(&db);
    // Room for exactly 5 spends of 0.2; 16 runs race for it.
    store.ensure("race", 1.0, 1e-3).await.unwrap();
    let mut handles = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.spend("race", &req(&format!("run {i}"), 0.2, 1e-5)).await
        }));
    }
    let mut ok = 0;
    let mut refused = 0;
    for h in handles {
        match h.await.unwrap() {
            Ok(_) => ok += 1,
            Err(PrivacyError::BudgetExceeded { .. }) => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    let doc = store.get("race").await.unwrap().unwrap();
    println!("accepted {ok}, refused {refused}, spent {}", doc.spent_epsilon);
    assert_eq!(ok, 5);
    assert_eq!(refused, 11);
    assert!(doc.spent_epsilon <= 1.0 + 1e-9);
    assert_eq!(doc.entries.len(), 5);
    db.drop().await.unwrap();
}

#[tokio::test]
async fn a_run_pays_for_all_its_releases_or_none() {
    let (_c, db) = test_db().await;
    let store = BudgetStore::new(&db);
    store.ensure("multi", 2.0, 1e-4).await.unwrap();
    let run = [req("train mlp-dp", 1.0, 1e-5), req("train gbdt-dp", 0.75, 0.0)];
    let doc = store.spend_all("multi", &run, None).await.unwrap().doc;
    assert_eq!(doc.spent_epsilon, 1.75);
    assert_eq!(doc.entries.len(), 2);
    assert_eq!(doc.entries[1].what, "train gbdt-dp");
    // The next run needs 1.75 again but only 0.25 is left: nothing of it is charged.
    let err = store.spend_all("multi", &run, None).await.unwrap_err();
    assert!(matches!(err, PrivacyError::BudgetExceeded { .. }), "{err}");
    let after = store.get("multi").await.unwrap().unwrap();
    assert_eq!(after.spent_epsilon, 1.75);
    assert_eq!(after.entries.len(), 2);
    db.drop().await.unwrap();
}

#[tokio::test]
async fn a_run_pays_once_whatever_its_retries() {
    let (_c, db) = test_db().await;
    let store = BudgetStore::new(&db);
    store.ensure("retried", 10.0, 1e-4).await.unwrap();
    let run = [req("train mlp-dp", 1.0, 1e-5), req("train gbdt-dp", 1.0, 1e-5)];
    let first = store.spend_all("retried", &run, Some("job-uid-1")).await.unwrap();
    assert!(!first.already_paid);
    assert_eq!((first.doc.spent_epsilon, first.doc.spent_delta), (2.0, 2e-5));
    assert!(first.doc.entries.iter().all(|e| e.run_id.as_deref() == Some("job-uid-1")));
    // The Job's retry: the same run id pays nothing and says so.
    let retry = store.spend_all("retried", &run, Some("job-uid-1")).await.unwrap();
    assert!(retry.already_paid);
    assert_eq!((retry.doc.spent_epsilon, retry.doc.spent_delta), (2.0, 2e-5));
    assert_eq!(retry.doc.entries.len(), 2);
    // The next scheduled run is another Job: it pays.
    let next = store.spend_all("retried", &run, Some("job-uid-2")).await.unwrap();
    assert!(!next.already_paid);
    assert_eq!(next.doc.spent_epsilon, 4.0);
    assert_eq!(next.doc.entries.len(), 4);
    // Two attempts of one run racing: exactly one pays.
    let (a, b) = tokio::join!(
        store.spend_all("retried", &run, Some("job-uid-3")),
        store.spend_all("retried", &run, Some("job-uid-3"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.already_paid != b.already_paid, "exactly one of the two attempts pays");
    let after = store.get("retried").await.unwrap().unwrap();
    assert_eq!(after.spent_epsilon, 6.0);
    assert_eq!(after.entries.len(), 6);
    db.drop().await.unwrap();
}
