//! KernelSHAP against the reference `shap.KernelExplainer` on a small trained MLP.

#![allow(clippy::unwrap_used)]

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use shopstream_mlp::shap::exact_shapley;
use shopstream_mlp::{
    KernelExplainer, KernelShapOptions, MlpConfig, MlpError, MlpModel, Scaling, train,
};

fn oracle(req: serde_json::Value) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/kernel_shap_oracle.py");
    shopstream_test_support::oracle(script, &req)
}

fn model(d: usize) -> (MlpModel, Array2<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(d as u64);
    let n = 1500;
    let x = Array2::from_shape_fn((n, d), |_| rng.random::<f64>() * 10.0);
    let y: Vec<f64> = (0..n)
        .map(|i| {
            let s = x[[i, 0]] - x[[i, 1]] + 0.5 * x[[i, 2]] * (x[[i, 3]] > 5.0) as u8 as f64 - 1.0;
            if rng.random::<f64>() < 1.0 / (1.0 + (-s).exp()) { 1.0 } else { 0.0 }
        })
        .collect();
    let cfg = MlpConfig { hidden: vec![12, 6], epochs: 5, ..Default::default() };
    let m = train(&x, &y, &cfg, Scaling::from_ranges(&vec![(0.0, 10.0); d])).unwrap();
    (m, x)
}

fn rows(a: &Array2<f64>) -> Vec<Vec<f64>> {
    a.rows().into_iter().map(|r| r.to_vec()).collect()
}

#[test]
fn exhaustive_kernel_shap_matches_shap_kernel_explainer() {
    let d = 6;
    let (m, x) = model(d);
    let bg = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..25)).to_owned();
    let xs = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(100..105)).to_owned();
    let reference = oracle(serde_json::json!({
        "model": serde_json::to_value(&m).unwrap(),
        "background": rows(&bg), "x": rows(&xs), "nsamples": null,
    }));
    let f = |a: &Array2<f64>| -> Result<Vec<f64>, MlpError> { m.predict_proba(a) };
    let ex = KernelExplainer::new(f, bg, (0..d).map(|j| vec![j]).collect()).unwrap();
    assert!((ex.base_value() - reference["base"].as_f64().unwrap()).abs() < 1e-6);
    let mut worst = 0.0f64;
    for (i, row) in xs.rows().into_iter().enumerate() {
        let e = ex.explain(row.as_slice().unwrap(), KernelShapOptions::default()).unwrap();
        for j in 0..d {
            let r = reference["values"][i][j].as_f64().unwrap();
            worst = worst.max((e.values[j] - r).abs());
        }
    }
    println!("max |ours - shap| over 5 x {d} values: {worst:.2e}");
    // Both enumerate all 62 coalitions with the same kernel weights and solve the same
    // regression, so they compute the same number; the only difference is float32 evaluation
    // of the network (candle vs numpy summation order: ~1e-7 relative on outputs in [0, 1],
    // averaged over the background). 1e-6 leaves a 10x margin over that (measured: ~1e-8).
    assert!(worst < 1e-6, "max abs difference {worst}");
}

#[test]
fn sampled_kernel_shap_is_as_close_to_exact_as_shap_is() {
    let d = 11; // 2^11 - 2 = 2046 coalitions; we use 300 samples, so both estimators sample.
    let (m, x) = model(d);
    let bg = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(0..20)).to_owned();
    let xs = x.slice_axis(ndarray::Axis(0), ndarray::Slice::from(200..203)).to_owned();
    let reference = oracle(serde_json::json!({
        "model": serde_json::to_value(&m).unwrap(),
        "background": rows(&bg), "x": rows(&xs), "nsamples": 300,
    }));
    let f = |a: &Array2<f64>| -> Result<Vec<f64>, MlpError> { m.predict_proba(a) };
    let groups: Vec<Vec<usize>> = (0..d).map(|j| vec![j]).collect();
    let ex = KernelExplainer::new(f, bg.clone(), groups.clone()).unwrap();
    let (mut ours_err, mut shap_err, mut scale) = (0.0f64, 0.0f64, 0.0f64);
    for (i, row) in xs.rows().into_iter().enumerate() {
        let xr = row.as_slice().unwrap();
        let exact = exact_shapley(&f, &bg, &groups, xr).unwrap();
        let e = ex.explain(xr, KernelShapOptions { nsamples: Some(300), seed: i as u64 }).unwrap();
        for j in 0..d {
            let r = reference["values"][i][j].as_f64().unwrap();
            ours_err = ours_err.max((e.values[j] - exact[j]).abs());
            shap_err = shap_err.max((r - exact[j]).abs());
            scale = scale.max(exact[j].abs());
        }
    }
    println!(
        "max |phi| {scale:.4}; max error vs exact Shapley: ours {ours_err:.2e}, shap {shap_err:.2e}"
    );
    // Same estimator, different random coalitions: our error must be of the same order as the
    // reference's (within 3x plus a small floor) and small relative to the largest value.
    assert!(ours_err <= 3.0 * shap_err + 1e-3, "ours {ours_err} vs shap {shap_err}");
    assert!(ours_err <= 0.1 * scale, "ours {ours_err} vs scale {scale}");
}
