//! Accuracy on planted clusters whose exact Jaccard similarities are known (computed for every
//! pair with a common token): recall >= 0.9 of the pairs at or above the threshold, and at most
//! 10% of the reported pairs below threshold - 0.1.
#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

use std::collections::HashMap;

use shopstream_similarity::synthetic::{PlantedConfig, exact_pairs, planted_users};
use shopstream_similarity::{SimilarityIndex, SimilarityParams, compute};

struct Accuracy {
    positives: usize,
    reported: usize,
    recall: f64,
    below_margin_share: f64,
}

fn measure(cfg: &PlantedConfig, params: &SimilarityParams) -> Accuracy {
    let users = planted_users(cfg);
    let truth = exact_pairs(&users, 0.0);
    let exact: HashMap<(u32, u32), f64> = truth.iter().map(|&(u, v, j)| ((u, v), j)).collect();
    let index = SimilarityIndex::build(users.iter().map(|(_, s)| s.iter()), params).unwrap();
    let reported = index.similar_pairs();
    let t = params.threshold;

    let positives = truth.iter().filter(|p| p.2 >= t).count();
    let found = reported.iter().filter(|p| exact.get(&(p.u, p.v)).is_some_and(|&j| j >= t)).count();
    let below = reported
        .iter()
        .filter(|p| exact.get(&(p.u, p.v)).copied().unwrap_or(0.0) < t - 0.1)
        .count();

    // The spread of the truth, and recall per band of similarity (printed for the report).
    let mut bins = [(0usize, 0usize); 10];
    let reported_set: std::collections::HashSet<(u32, u32)> =
        reported.iter().map(|p| (p.u, p.v)).collect();
    for &(u, v, j) in &truth {
        let b = ((j * 10.0) as usize).min(9);
        bins[b].0 += 1;
        if reported_set.contains(&(u, v)) {
            bins[b].1 += 1;
        }
    }
    println!("users {}, pairs sharing a token {}", users.len(), truth.len());
    for (b, (n, r)) in bins.iter().enumerate() {
        println!(
            "  J in [{:.1}, {:.1}): {n:>7} pairs, {r:>6} reported ({:.3})",
            b as f64 / 10.0,
            (b + 1) as f64 / 10.0,
            if *n > 0 { *r as f64 / *n as f64 } else { 0.0 }
        );
    }
    Accuracy {
        positives,
        reported: reported.len(),
        recall: found as f64 / positives as f64,
        below_margin_share: below as f64 / reported.len() as f64,
    }
}

fn report(label: &str, params: &SimilarityParams, a: &Accuracy) {
    println!(
        "{label}: threshold {}, {} perms, min similarity {:.4}: {} true pairs >= threshold, \
         {} reported, recall {:.4}, reported below threshold - 0.1: {:.4}",
        params.threshold,
        params.num_perm,
        params.min_similarity(),
        a.positives,
        a.reported,
        a.recall,
        a.below_margin_share
    );
}

fn check(cfg: PlantedConfig, params: SimilarityParams) {
    let a = measure(&cfg, &params);
    report("ours", &params, &a);
    assert!(a.positives >= 1000, "the planted data must have many similar pairs");
    assert!(a.recall >= 0.9, "recall {:.4} < 0.9", a.recall);
    assert!(
        a.below_margin_share <= 0.1,
        "{:.4} of reported pairs below t - 0.1",
        a.below_margin_share
    );
}

#[test]
fn planted_clusters_default_threshold() {
    let cfg = PlantedConfig { seed: 11, clusters: 240, ..Default::default() };
    check(cfg, SimilarityParams::default());
    // datasketch's own set-up on the same data, for the record (docs/similarity.md): equal
    // weights and a cut at the threshold. Ours must not do worse.
    let ds = SimilarityParams::datasketch_like(0.5, 128);
    let theirs = measure(&cfg, &ds);
    report("datasketch-like", &ds, &theirs);
    let ours = measure(&cfg, &SimilarityParams::default());
    assert!(ours.recall >= theirs.recall);
}

#[test]
fn planted_clusters_other_thresholds_and_seeds() {
    for (seed, threshold, num_perm) in [(12u64, 0.3, 128usize), (13, 0.7, 128), (14, 0.5, 256)] {
        check(
            PlantedConfig { seed, clusters: 160, ..Default::default() },
            SimilarityParams { threshold, num_perm, seed: seed * 31, ..Default::default() },
        );
    }
}

#[test]
fn top_k_lists_are_the_best_reported_pairs() {
    let users = planted_users(&PlantedConfig { seed: 5, clusters: 60, ..Default::default() });
    let params = SimilarityParams { top_k: 3, ..Default::default() };
    let result = compute(&users, &params).unwrap();
    let index = SimilarityIndex::build(users.iter().map(|(_, s)| s.iter()), &params).unwrap();
    let ids: Vec<&str> = users.iter().map(|(u, _)| u).collect();
    let mut all: Vec<Vec<(String, f64)>> = vec![Vec::new(); ids.len()];
    for p in index.similar_pairs() {
        all[p.u as usize].push((ids[p.v as usize].to_string(), p.similarity));
        all[p.v as usize].push((ids[p.u as usize].to_string(), p.similarity));
    }
    let mut nonempty = 0;
    for (i, u) in result.users.iter().enumerate() {
        assert_eq!(u.user_id, ids[i]);
        let mut expect = all[i].clone();
        expect.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        expect.truncate(3);
        let got: Vec<(String, f64)> =
            u.similar.iter().map(|s| (s.user_id.clone(), s.similarity)).collect();
        assert_eq!(got, expect, "user {}", u.user_id);
        nonempty += usize::from(!got.is_empty());
    }
    assert!(nonempty > ids.len() / 4, "{nonempty} of {} users have similar users", ids.len());
}
