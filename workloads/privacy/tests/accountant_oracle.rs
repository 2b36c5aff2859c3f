//! Our RDP accountant and Gaussian calibration against Google's `dp-accounting` (Python).

#![allow(clippy::unwrap_used)]

use shopstream_privacy::mechanisms::gaussian_delta;
use shopstream_privacy::{Gaussian, SubsampledGaussian, solve_noise_multiplier};

fn oracle(req: serde_json::Value) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oracle/rdp_oracle.py");
    shopstream_test_support::oracle(script, &req)
}

#[test]
fn rdp_epsilon_within_2_percent_of_dp_accounting() {
    let mut grid = Vec::new();
    for &q in &[0.001, 0.01, 0.05] {
        for &sigma in &[0.7, 1.0, 2.0, 4.0] {
            for &steps in &[100u64, 1000, 10000] {
                grid.push((q, sigma, steps));
            }
        }
    }
    let req = serde_json::json!({
        "grid": grid.iter().map(|&(q, s, t)| serde_json::json!({"q": q, "sigma": s, "steps": t, "delta": 1e-5})).collect::<Vec<_>>()
    });
    let reference = oracle(req);
    let reference = reference["rdp"].as_array().unwrap();
    assert_eq!(reference.len(), grid.len());
    let mut worst = 0.0f64;
    for (&(q, sigma, steps), r) in grid.iter().zip(reference) {
        let r = r.as_f64().unwrap();
        let ours = SubsampledGaussian { sampling_rate: q, noise_multiplier: sigma, steps }
            .epsilon(1e-5)
            .unwrap();
        let rel = (ours - r).abs() / r;
        println!(
            "q={q:<6} sigma={sigma:<4} steps={steps:<6} ours={ours:<12.6} dp_accounting={r:<12.6} rel={rel:.2e}"
        );
        worst = worst.max(rel);
        assert!(rel <= 0.02, "q={q} sigma={sigma} steps={steps}: ours {ours} vs reference {r}");
    }
    println!("worst relative difference: {worst:.3e}");
}

#[test]
fn solved_noise_multiplier_meets_target_according_to_dp_accounting() {
    let cases = [(1.0, 0.01, 1000u64), (1.0, 0.004, 5000), (4.0, 0.05, 2000)];
    let sigmas: Vec<f64> =
        cases.iter().map(|&(eps, q, t)| solve_noise_multiplier(eps, 1e-5, q, t).unwrap()).collect();
    let req = serde_json::json!({
        "grid": cases.iter().zip(&sigmas).map(|(&(_, q, t), &s)| serde_json::json!({"q": q, "sigma": s, "steps": t, "delta": 1e-5})).collect::<Vec<_>>()
    });
    let reference = oracle(req);
    for ((&(eps, _, _), s), r) in
        cases.iter().zip(&sigmas).zip(reference["rdp"].as_array().unwrap())
    {
        let r = r.as_f64().unwrap();
        println!("target {eps}: sigma {s:.5} -> dp_accounting eps {r:.6}");
        assert!((r - eps).abs() / eps < 0.02, "target {eps}, sigma {s}, reference eps {r}");
    }
}

#[test]
fn gaussian_delta_matches_the_pld_accountant() {
    let cases = [(1.0, 1.0), (4.0, 1.0), (2.0, 0.5), (0.8, 3.0)];
    let req = serde_json::json!({
        "gaussian": cases.iter().map(|&(s, e)| serde_json::json!({"sigma": s, "epsilon": e})).collect::<Vec<_>>()
    });
    let reference = oracle(req);
    for (&(sigma, eps), r) in cases.iter().zip(reference["gaussian_delta"].as_array().unwrap()) {
        let r = r.as_f64().unwrap();
        let ours = gaussian_delta(1.0, sigma, eps);
        println!("sigma {sigma} eps {eps}: ours {ours:.6e} pld {r:.6e}");
        // The PLD accountant discretises pessimistically, so it is slightly above the exact value.
        assert!(
            ours <= r * (1.0 + 1e-6) && ours >= r * 0.98,
            "sigma {sigma} eps {eps}: {ours} vs {r}"
        );
    }
    // And the calibrated mechanism meets its delta according to the reference.
    let g = Gaussian::new(1.0, 1.0, 1e-5).unwrap();
    let reference = oracle(serde_json::json!({"gaussian": [{"sigma": g.sigma(), "epsilon": 1.0}]}));
    let d = reference["gaussian_delta"][0].as_f64().unwrap();
    assert!(d <= 1.02e-5, "calibrated sigma {} gives reference delta {d}", g.sigma());
}
