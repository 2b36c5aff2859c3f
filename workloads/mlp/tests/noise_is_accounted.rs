//! The noise DP-SGD adds is the noise the accountant charges for: both read ONE config.

#![allow(clippy::unwrap_used)]

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use shopstream_mlp::{DpSgdConfig, MlpConfig, Scaling, train_dp};
use shopstream_privacy::{DpRng, SubsampledGaussian};

#[test]
fn noise_used_in_training_equals_noise_accounted() {
    // One config: target epsilon 1 at delta 1e-5 -> solved sigma.
    let cfg = DpSgdConfig::for_target_epsilon(1.0, 1e-5, 0.05, 60, 0.5).unwrap();

    // What the accountant is given comes from the same struct...
    let accounted = cfg.accounting();
    assert_eq!(
        accounted,
        SubsampledGaussian {
            sampling_rate: cfg.sampling_rate,
            noise_multiplier: cfg.noise_multiplier,
            steps: cfg.steps
        }
    );
    let cost = cfg.cost().unwrap();
    assert!((cost.epsilon - 1.0).abs() < 0.01, "charged epsilon {}", cost.epsilon);
    assert_eq!(cost.delta, 1e-5);

    // ...and the trainer reports, per step, the std it drew from and the std it actually added.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let n = 2000;
    let x = Array2::from_shape_fn((n, 5), |_| rng.random::<f64>());
    let y: Vec<f64> = (0..n).map(|i| if x[[i, 0]] + x[[i, 1]] > 1.0 { 1.0 } else { 0.0 }).collect();
    let mut steps = Vec::new();
    let mlp = MlpConfig { hidden: vec![16, 8], ..Default::default() };
    train_dp(&x, &y, &mlp, &cfg, Scaling::unit(5), &mut DpRng::seeded(5), &mut |s| {
        steps.push(s.clone())
    })
    .unwrap();

    assert_eq!(steps.len() as u64, cfg.steps, "one noisy step per accounted step");
    let expected_std = cfg.noise_multiplier * cfg.clip_norm;
    let mut sq = 0.0;
    let mut count = 0usize;
    for s in &steps {
        assert_eq!(s.noise_std, expected_std, "step {} drew from another std", s.step);
        sq += s.noise_sample_std.powi(2) * s.noise_len as f64;
        count += s.noise_len;
    }
    let pooled = (sq / count as f64).sqrt();
    // ~ 60 steps x 241 coordinates = 14k draws: the pooled std is within ~0.6% (1 s.e.).
    println!(
        "sigma {:.4}, C {}, noise std {:.5}, measured {:.5} over {count} draws",
        cfg.noise_multiplier, cfg.clip_norm, expected_std, pooled
    );
    assert!(
        (pooled / expected_std - 1.0).abs() < 0.03,
        "measured noise std {pooled} vs accounted {expected_std}"
    );

    // Poisson sampling at the accounted rate: mean batch size ~ q N (sd of the mean ~ 1.2).
    let mean_batch = steps.iter().map(|s| s.batch_size as f64).sum::<f64>() / steps.len() as f64;
    let expected = cfg.sampling_rate * n as f64;
    println!("mean batch {mean_batch:.1}, expected {expected}");
    assert!((mean_batch - expected).abs() < 6.0, "mean batch {mean_batch} vs q N = {expected}");
    let sizes: std::collections::BTreeSet<usize> = steps.iter().map(|s| s.batch_size).collect();
    assert!(sizes.len() > 5, "batch sizes must vary under Poisson sampling: {sizes:?}");
}
