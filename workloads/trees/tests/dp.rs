//! The private mechanisms are calibrated as documented: the samplers have the stated
//! distributions, the trainers add noise of exactly the configured scale (read from one config
//! and measured on the released model), the cost is known before training, and the private
//! forest's structure does not depend on the data.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

mod common;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use shopstream_trees::dp::{
    discrete_laplace, exponential_mechanism, gaussian, laplace, secure_rng, zcdp_epsilon, zcdp_rho,
};
use shopstream_trees::dp_forest::{self, DpForestConfig, fit_dp_forest};
use shopstream_trees::dp_gbdt::{self, DpGbdtConfig, fit_dp_gbdt};
use shopstream_trees::{Tree, TreeEnsemble};

#[test]
fn laplace_sampler_has_the_stated_scale() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let b = 2.5;
    let n = 400_000;
    let draws: Vec<f64> = (0..n).map(|_| laplace(&mut rng, b)).collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let mad = draws.iter().map(|v| v.abs()).sum::<f64>() / n as f64;
    let var = draws.iter().map(|v| v * v).sum::<f64>() / n as f64;
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((mad / b - 1.0).abs() < 0.01, "E|x| {mad} vs {b}");
    assert!((var / (2.0 * b * b) - 1.0).abs() < 0.02, "var {var} vs {}", 2.0 * b * b);
}

#[test]
fn discrete_laplace_has_the_stated_distribution() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let eps = 0.7f64;
    let a = (-eps).exp();
    let n = 400_000;
    let draws: Vec<i64> = (0..n).map(|_| discrete_laplace(&mut rng, eps)).collect();
    let p0 = draws.iter().filter(|&&k| k == 0).count() as f64 / n as f64;
    let p2 = draws.iter().filter(|&&k| k == 2).count() as f64 / n as f64;
    let var = draws.iter().map(|&k| (k * k) as f64).sum::<f64>() / n as f64;
    let expect_p0 = (1.0 - a) / (1.0 + a);
    assert!((p0 / expect_p0 - 1.0).abs() < 0.02, "P(0) {p0} vs {expect_p0}");
    assert!((p2 / (expect_p0 * a * a) - 1.0).abs() < 0.03, "P(2) {p2}");
    let expect_var = 2.0 * a / (1.0 - a).powi(2);
    assert!((var / expect_var - 1.0).abs() < 0.03, "var {var} vs {expect_var}");
}

#[test]
fn exponential_mechanism_picks_with_the_stated_probabilities() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let utilities = [0.0, 1.0, 3.0];
    let (eps, sens) = (1.2, 1.5);
    let n = 200_000;
    let mut counts = [0usize; 3];
    for _ in 0..n {
        counts[exponential_mechanism(&mut rng, &utilities, eps, sens).unwrap()] += 1;
    }
    let w: Vec<f64> = utilities.iter().map(|u| (eps * u / (2.0 * sens)).exp()).collect();
    let total: f64 = w.iter().sum();
    for i in 0..3 {
        let p = counts[i] as f64 / n as f64;
        assert!((p - w[i] / total).abs() < 0.005, "option {i}: {p} vs {}", w[i] / total);
    }
    assert_eq!(exponential_mechanism(&mut rng, &[], eps, sens), None);
}

#[test]
fn secure_rng_is_seeded_from_the_os() {
    let (mut a, mut b) = (secure_rng(), secure_rng());
    assert_ne!(a.random::<u128>(), b.random::<u128>());
}

/// Rows routed through a released tree: true count per leaf.
fn leaf_counts(tree: &Tree, x: &Array2<f64>) -> Vec<(usize, f64)> {
    let mut counts = vec![0.0; tree.nodes.len()];
    for r in x.rows() {
        counts[tree.leaf_index(&r.to_vec())] += 1.0;
    }
    (0..tree.nodes.len()).filter(|&i| tree.nodes[i].is_leaf()).map(|i| (i, counts[i])).collect()
}

fn one_tree(model: &TreeEnsemble) -> &Tree {
    assert_eq!(model.trees.len(), 1);
    &model.trees[0]
}

#[test]
fn zcdp_conversion_round_trips() {
    for (eps, delta) in [(1.0, 1e-5), (0.1, 1e-6), (8.0, 1e-3)] {
        let rho = zcdp_rho(eps, delta);
        assert!((zcdp_epsilon(rho, delta) - eps).abs() < 1e-12);
    }
    // Hand-computed: (sqrt(ln(1e5) + 1) - sqrt(ln(1e5)))^2.
    let l = 100_000f64.ln();
    assert!((zcdp_rho(1.0, 1e-5) - ((l + 1.0).sqrt() - l.sqrt()).powi(2)).abs() < 1e-15);
    assert!((zcdp_rho(1.0, 1e-5) - 0.020_820).abs() < 1e-6);
}

#[test]
fn gaussian_sampler_has_the_stated_scale() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let sigma = 3.0;
    let n = 400_000;
    let draws: Vec<f64> = (0..n).map(|_| gaussian(&mut rng, sigma)).collect();
    let mean = draws.iter().sum::<f64>() / n as f64;
    let var = draws.iter().map(|v| v * v).sum::<f64>() / n as f64;
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var / (sigma * sigma) - 1.0).abs() < 0.01, "var {var}");
}

#[test]
fn dp_gbdt_leaf_noise_is_the_configured_gaussian() {
    let data = common::generated(4000, 21, shopstream_features::CategoricalEncoding::Ordinal);
    let x = &data.train.x;
    let y = data.train.y.as_slice().unwrap();
    let ranges = data.encoder.public_ranges();
    // One tree, so the true leaf counts can be recomputed by routing the rows.
    for (split_share, clip, eps) in [(0.5, 1.0, 1.0), (0.2, 0.5, 4.0)] {
        let cfg = DpGbdtConfig {
            n_trees: 1,
            max_depth: 2,
            epsilon: eps,
            split_share,
            gradient_clip: clip,
            ..Default::default()
        };
        // The documented calibration, from the config alone.
        let rho = zcdp_rho(eps, cfg.delta);
        let expected = (clip * clip + 1.0f64).sqrt() / (2.0 * (1.0 - split_share) * rho).sqrt();
        assert!((cfg.leaf_sigma() - expected).abs() < 1e-9);
        assert!((cfg.split_epsilon() - (8.0 * split_share * rho / 2.0).sqrt()).abs() < 1e-12);
        // Per-tree zCDP adds up to the total.
        let spent = cfg.max_depth as f64 * cfg.split_epsilon().powi(2) / 8.0
            + cfg.leaf_sensitivity().powi(2) / (2.0 * cfg.leaf_sigma().powi(2));
        assert!((spent * cfg.n_trees as f64 - rho).abs() < 1e-12);
        let mut rng = ChaCha20Rng::seed_from_u64(77);
        let mut noise = Vec::new();
        for _ in 0..300 {
            let (model, cost) = fit_dp_gbdt(x, y, ranges, &cfg, &mut rng).unwrap();
            assert_eq!(cost, dp_gbdt::privacy_cost(&cfg));
            let tree = one_tree(&model);
            for (leaf, n) in leaf_counts(tree, x) {
                // cover = max(n + noise, 0) + 1.
                if n > 6.0 * cfg.leaf_sigma() {
                    noise.push(tree.nodes[leaf].cover - 1.0 - n);
                }
            }
        }
        let sd = (noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64).sqrt();
        let mean = noise.iter().sum::<f64>() / noise.len() as f64;
        println!(
            "dp gbdt split_share {split_share}, clip {clip}, eps {eps}: configured sigma {:.3}, \
             measured {sd:.3} over {} leaves",
            cfg.leaf_sigma(),
            noise.len()
        );
        assert!(noise.len() > 300);
        assert!((sd / cfg.leaf_sigma() - 1.0).abs() < 0.08, "sd {sd}");
        assert!(mean.abs() < 0.2 * cfg.leaf_sigma(), "mean {mean}");
    }
}

#[test]
fn dp_forest_leaf_noise_is_the_configured_gaussian() {
    let data = common::generated(6000, 22, shopstream_features::CategoricalEncoding::Ordinal);
    let x = &data.train.x;
    let y = data.train.y.as_slice().unwrap();
    let ranges = data.encoder.public_ranges();
    let cfg = DpForestConfig { n_trees: 1, max_depth: 2, epsilon: 2.0, ..Default::default() };
    let expected_sigma = (1.0 / (2.0 * zcdp_rho(2.0, cfg.delta))).sqrt();
    assert!((cfg.count_sigma() - expected_sigma).abs() < 1e-12);
    let mut rng = ChaCha20Rng::seed_from_u64(78);
    let mut noise = Vec::new();
    for _ in 0..400 {
        let (model, cost) = fit_dp_forest(x, y, ranges, &cfg, &mut rng).unwrap();
        assert_eq!(cost, dp_forest::privacy_cost(&cfg));
        let tree = one_tree(&model);
        for (leaf, n) in leaf_counts(tree, x) {
            // cover = max(n0 + z0, 0) + max(n1 + z1, 0) + 2 * prior; both counts are far
            // from zero in leaves this large.
            if n > 400.0 {
                noise.push(tree.nodes[leaf].cover - 2.0 * cfg.prior - n);
            }
        }
    }
    // z0 + z1 has variance 2 sigma^2.
    let var = noise.iter().map(|v| v * v).sum::<f64>() / noise.len() as f64;
    let expected_var = 2.0 * cfg.count_sigma().powi(2);
    println!("dp forest eps {}: expected var {expected_var:.3}, measured {var:.3}", cfg.epsilon);
    assert!(noise.len() > 300);
    assert!((var / expected_var - 1.0).abs() < 0.12, "var {var} vs {expected_var}");
}

#[test]
fn privacy_cost_is_known_before_training() {
    let f = DpForestConfig { epsilon: 0.8, delta: 1e-6, ..Default::default() };
    let cost = dp_forest::privacy_cost(&f);
    assert_eq!((cost.epsilon, cost.delta), (0.8, 1e-6));
    assert!(cost.mechanism.contains("dp-random-forest"));
    let g = DpGbdtConfig { epsilon: 1.5, ..Default::default() };
    let cost = dp_gbdt::privacy_cost(&g);
    assert_eq!((cost.epsilon, cost.delta), (1.5, 1e-5));
    assert!(cost.mechanism.contains("dp-gbdt"));
    assert!(DpGbdtConfig { delta: 0.0, ..Default::default() }.validate().is_err());
    assert!(DpGbdtConfig { epsilon: 0.0, ..Default::default() }.validate().is_err());
    assert!(DpForestConfig { epsilon: -1.0, ..Default::default() }.validate().is_err());
}

#[test]
fn dp_forest_structure_is_data_independent() {
    let data = common::generated(3000, 23, shopstream_features::CategoricalEncoding::Ordinal);
    let x = &data.train.x;
    let y: Vec<f64> = data.train.y.to_vec();
    let flipped: Vec<f64> = y.iter().map(|v| 1.0 - v).collect();
    let ranges = data.encoder.public_ranges();
    let cfg = DpForestConfig::default();
    let (a, _) = fit_dp_forest(x, &y, ranges, &cfg, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
    let (b, _) =
        fit_dp_forest(x, &flipped, ranges, &cfg, &mut ChaCha20Rng::seed_from_u64(5)).unwrap();
    for (ta, tb) in a.trees.iter().zip(&b.trees) {
        for (na, nb) in ta.nodes.iter().zip(&tb.nodes) {
            assert_eq!((na.feature, na.threshold, na.left), (nb.feature, nb.threshold, nb.left));
        }
    }
    // The labels did matter for the leaves.
    assert_ne!(a, b);
    // Thresholds come from the public ranges, not the data.
    for t in &a.trees {
        for n in t.nodes.iter().filter(|n| !n.is_leaf()) {
            let (lo, hi) = ranges[n.feature as usize];
            assert!(n.threshold > lo - 1e-9 && n.threshold < hi + 1e-9);
        }
    }
}
