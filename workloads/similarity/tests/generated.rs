//! The similarity search on sessions from the project's generator, against exact Jaccard
//! similarities of the users' merged token sets (all pairs).
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

use std::collections::HashMap;

use shopstream_generator::{Generator, GeneratorConfig};
use shopstream_similarity::minhash::MinHasher;
use shopstream_similarity::synthetic::exact_pairs;
use shopstream_similarity::{SimilarityIndex, SimilarityParams, UserTokens, compute};

fn generated_users(seed: u64, users: usize, sessions: usize) -> UserTokens {
    let generator = Generator::new(GeneratorConfig { seed, users, ..Default::default() }).unwrap();
    let mut tokens = UserTokens::new();
    for g in generator.take(sessions) {
        tokens.add_session(&g.session);
    }
    tokens
}

#[test]
fn generated_sessions_against_exact_jaccard() {
    let users = generated_users(7, 1200, 6000);
    assert!(users.len() > 1000, "{} users", users.len());
    let params = SimilarityParams::default();
    let t = params.threshold;
    let truth = exact_pairs(&users, 0.0);
    let exact: HashMap<(u32, u32), f64> = truth.iter().map(|&(u, v, j)| ((u, v), j)).collect();
    let index = SimilarityIndex::build(users.iter().map(|(_, s)| s.iter()), &params).unwrap();
    let reported = index.similar_pairs();

    let positives = truth.iter().filter(|p| p.2 >= t).count();
    let found = reported.iter().filter(|p| exact[&(p.u, p.v)] >= t).count();
    let below = reported
        .iter()
        .filter(|p| exact.get(&(p.u, p.v)).copied().unwrap_or(0.0) < t - 0.1)
        .count();
    let recall = found as f64 / positives as f64;
    let below_share = below as f64 / reported.len() as f64;
    // The estimator itself, without selection by the filter, on a sample of the pairs sharing a
    // token and over many seeds: all pairs share one set of permutations, so with this small
    // vocabulary (about 100 distinct tokens, a few in almost every set) the errors of one
    // seed are strongly correlated across pairs; unbiasedness is a property over seeds.
    let sample: Vec<(u32, u32, f64)> = truth.iter().step_by(37).copied().collect();
    let sets: Vec<_> = users.iter().map(|(_, s)| s).collect();
    let seeds = 40u64;
    let (mut err, mut sq_err, mut var) = (0.0, 0.0, 0.0);
    let mut per_seed = Vec::new();
    for seed in 0..seeds {
        let hasher = MinHasher::new(params.num_perm, 1000 + seed).unwrap();
        let sigs = hasher.signatures(sets.iter().map(|s| s.iter()));
        let mut seed_err = 0.0;
        for &(u, v, j) in &sample {
            let e = sigs.similarity(u as usize, v as usize) - j;
            seed_err += e;
            sq_err += e * e;
            var += j * (1.0 - j) / params.num_perm as f64;
        }
        err += seed_err;
        per_seed.push(seed_err / sample.len() as f64);
    }
    let n = (sample.len() as u64 * seeds) as f64;
    let (bias, rmse, expected_rmse) = (err / n, (sq_err / n).sqrt(), (var / n).sqrt());
    let spread = (per_seed.iter().map(|b| (b - bias).powi(2)).sum::<f64>() / seeds as f64).sqrt();
    println!(
        "estimator over {seeds} seeds x {} pairs: bias {bias:+.5} (one seed's bias varies by \
         {spread:.4}), RMSE {rmse:.4} (theory {expected_rmse:.4})",
        sample.len()
    );
    let all_pairs = users.len() * (users.len() - 1) / 2;
    println!(
        "generated: {} users, {} sessions, {} pairs ({} share a token), {} pairs >= {t}, {} reported, \
         recall {recall:.4}, reported below {:.1}: {below_share:.4}",
        users.len(),
        users.sessions(),
        all_pairs,
        truth.len(),
        positives,
        reported.len(),
        t - 0.1,
    );
    assert!(positives >= 100, "too few similar pairs to measure: {positives}");
    assert!(recall >= 0.9, "recall {recall:.4}");
    assert!(below_share <= 0.1, "{below_share:.4} of reported pairs below t - 0.1");
    // Three standard errors of the mean over seeds.
    assert!(bias.abs() < 3.0 * spread / (seeds as f64).sqrt(), "estimator bias {bias}");
    assert!(rmse < 1.15 * expected_rmse, "RMSE {rmse} vs theory {expected_rmse}");
}

#[test]
fn generated_top_lists_name_real_users_and_are_reproducible() {
    let users = generated_users(8, 400, 2000);
    let params = SimilarityParams::default();
    let a = compute(&users, &params).unwrap();
    let b = compute(&users, &params).unwrap();
    assert_eq!(a, b);
    let mut with_similar = 0;
    for u in &a.users {
        assert!(u.similar.len() <= params.top_k);
        assert!(u.similar.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        for s in &u.similar {
            assert_ne!(s.user_id, u.user_id);
            assert!(users.get(&s.user_id).is_some());
            assert!(s.similarity >= params.min_similarity());
        }
        with_similar += usize::from(!u.similar.is_empty());
    }
    assert!(with_similar > 0);
}
