//! Model quality on generated sessions against the ground truth: on 50,000 sessions the best
//! non-private tree model's test ROC AUC is within 0.03 of the AUC of the true probability (the
//! ceiling), and at epsilon = 1 each private model loses at most 0.05 AUC against its
//! non-private version. Prints every figure (run with `--nocapture`).
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

mod common;

use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use shopstream_features::CategoricalEncoding;
use shopstream_trees::dp_forest::{DpForestConfig, fit_dp_forest};
use shopstream_trees::dp_gbdt::{DpGbdtConfig, fit_dp_gbdt};
use shopstream_trees::forest::{ForestConfig, fit_forest};
use shopstream_trees::gbdt::{GbdtConfig, fit_gbdt};
use shopstream_trees::metrics::roc_auc;

#[test]
fn tree_models_approach_the_ceiling_and_dp_costs_little() {
    let data = common::generated(50_000, 2026, CategoricalEncoding::Ordinal);
    let x = &data.train.x;
    let y = data.train.y.as_slice().unwrap();
    let y_test = data.test.y.as_slice().unwrap();
    let ranges = data.encoder.public_ranges();
    let auc = |p: Vec<f64>| roc_auc(&p, y_test);
    let ceiling = roc_auc(&data.test_truth, y_test);

    let rf = fit_forest(x, y, &ForestConfig::default()).unwrap();
    let gb = fit_gbdt(x, y, &GbdtConfig::default()).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let dp_rf_cfg = DpForestConfig { epsilon: 1.0, ..Default::default() };
    let (dprf, rf_cost) = fit_dp_forest(x, y, ranges, &dp_rf_cfg, &mut rng).unwrap();
    let dp_gb_cfg = DpGbdtConfig { epsilon: 1.0, ..Default::default() };
    let (dpgb, gb_cost) = fit_dp_gbdt(x, y, ranges, &dp_gb_cfg, &mut rng).unwrap();

    let rf_auc = auc(rf.predict_proba_matrix(&data.test.x));
    let gb_auc = auc(gb.predict_proba_matrix(&data.test.x));
    let dprf_auc = auc(dprf.predict_proba_matrix(&data.test.x));
    let dpgb_auc = auc(dpgb.predict_proba_matrix(&data.test.x));
    let best = rf_auc.max(gb_auc);
    println!("train rows {}, test rows {}", data.train.len(), data.test.len());
    println!("ceiling (true probability) AUC   {ceiling:.4}");
    println!("random forest AUC                {rf_auc:.4}");
    println!("gbdt AUC                         {gb_auc:.4}");
    println!(
        "dp random forest AUC (eps={}, delta={})  {dprf_auc:.4}  (loss {:.4})",
        rf_cost.epsilon,
        rf_cost.delta,
        rf_auc - dprf_auc
    );
    println!(
        "dp gbdt AUC (eps={}, delta={})           {dpgb_auc:.4}  (loss {:.4})",
        gb_cost.epsilon,
        gb_cost.delta,
        gb_auc - dpgb_auc
    );
    println!("best non-private gap to ceiling  {:.4}", ceiling - best);
    assert!(ceiling - best <= 0.03, "best non-private AUC {best:.4} vs ceiling {ceiling:.4}");
    assert!(rf_auc - dprf_auc <= 0.05, "DP-RF loses {:.4}", rf_auc - dprf_auc);
    assert!(gb_auc - dpgb_auc <= 0.05, "DP-GBDT loses {:.4}", gb_auc - dpgb_auc);
    assert!(rf_cost.epsilon <= 1.0 && gb_cost.epsilon <= 1.0);
    assert!(rf_cost.delta <= 1e-5 && gb_cost.delta <= 1e-5);
}
