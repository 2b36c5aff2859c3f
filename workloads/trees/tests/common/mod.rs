//! Shared test helpers: generated data and the `shap` reference runner.
#![allow(dead_code, clippy::unwrap_used)]

use ndarray::Array2;
use shopstream_features::{CategoricalEncoding, Dataset, Encoder, FeatureSpec};
use shopstream_generator::{Generator, GeneratorConfig};

/// Generated sessions encoded for trees, split by user, with the true probabilities.
pub struct Data {
    pub encoder: Encoder,
    pub train: Dataset,
    pub test: Dataset,
    pub test_truth: Vec<f64>,
}

pub fn generated(n: usize, seed: u64, encoding: CategoricalEncoding) -> Data {
    let gen_cfg = GeneratorConfig { seed, users: (n / 10).max(10), ..Default::default() };
    let generated: Vec<_> = Generator::new(gen_cfg).unwrap().take(n).collect();
    let sessions: Vec<_> = generated.iter().map(|g| g.session.clone()).collect();
    let truth: std::collections::HashMap<String, f64> =
        generated.iter().map(|g| (g.session.session_id.clone(), g.purchase_probability)).collect();
    let spec = FeatureSpec { categorical: encoding, ..FeatureSpec::default() };
    let (train_s, test_s) =
        shopstream_features::split_sessions_by_user(&sessions, 0.2, seed).unwrap();
    let encoder = spec.fit(&train_s);
    let train = Dataset::from_sessions(&encoder, &train_s);
    let test = Dataset::from_sessions(&encoder, &test_s);
    let test_truth = test.session_ids.iter().map(|id| truth[id]).collect();
    Data { encoder, train, test, test_truth }
}

/// SHAP values and expected value from the `shap` package for an exported model.
pub fn reference_shap(
    model: &shopstream_trees::TreeEnsemble,
    rows: &Array2<f64>,
) -> (Array2<f64>, f64) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/shap_reference.py");
    let rows_json: Vec<Vec<f64>> = rows.rows().into_iter().map(|r| r.to_vec()).collect();
    let request = serde_json::json!({"model": model.to_shap_dict(), "rows": rows_json});
    let resp = shopstream_test_support::oracle(script, &request);
    let shap: Vec<Vec<f64>> = serde_json::from_value(resp["shap"].clone()).unwrap();
    let ev = resp["expected_value"].as_f64().unwrap();
    let n = shap.len();
    let m = shap.first().map_or(0, Vec::len);
    (Array2::from_shape_vec((n, m), shap.into_iter().flatten().collect()).unwrap(), ev)
}
