//! Synthetic users in planted clusters, with exact Jaccard similarities, for tests and
//! benchmarks of the similarity search.
//!
//! Construction (all draws from ChaCha8 seeded with [`PlantedConfig::seed`]):
//! - `clusters` clusters; cluster `c` has a core of `core_size` tokens and a tightness `q_c`
//!   drawn uniformly from `[min_keep, 1]`. Consecutive clusters (`2i`, `2i + 1`) share the first
//!   `shared_core` core tokens, so members of sibling clusters overlap partly.
//! - each cluster has between `min_members` and `max_members` members; a member keeps each core
//!   token with probability `q_c` (at least one), adds `n_c` tokens of its own (`n_c` drawn per
//!   cluster from `0..=noise`), and takes each of
//!   `popular` tokens common to all users (like a device or a referrer) with probability
//!   `popular_rate`.
//!
//! Two members of one cluster thus have an expected Jaccard similarity near `q / (2 - q)`, which
//! spans about `0.2..1` over the clusters, sibling clusters give values in between, and unrelated
//! users share only popular tokens (similarity near 0). [`exact_pairs`] gives the truth.

use std::collections::BTreeSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::tokens::UserTokens;

/// Shape of the planted data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlantedConfig {
    /// Seed of every random draw.
    pub seed: u64,
    /// Number of clusters.
    pub clusters: usize,
    /// Fewest members of a cluster.
    pub min_members: usize,
    /// Most members of a cluster.
    pub max_members: usize,
    /// Core tokens per cluster.
    pub core_size: usize,
    /// Core tokens shared between sibling clusters.
    pub shared_core: usize,
    /// Lowest keep probability of a core token.
    pub min_keep: f64,
    /// Most tokens of its own per user (the number is drawn per cluster from `0..=noise`).
    pub noise: usize,
    /// Size of the pool of tokens common to all users.
    pub popular: usize,
    /// Probability of taking each popular token.
    pub popular_rate: f64,
}

impl Default for PlantedConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            clusters: 200,
            min_members: 2,
            max_members: 28,
            core_size: 30,
            shared_core: 12,
            min_keep: 0.3,
            noise: 4,
            popular: 20,
            popular_rate: 0.15,
        }
    }
}

/// Generates the users (ids `u000000`, `u000001`, ... in creation order).
pub fn planted_users(cfg: &PlantedConfig) -> UserTokens {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut users = UserTokens::new();
    let mut next = 0usize;
    for c in 0..cfg.clusters {
        let keep = rng.random_range(cfg.min_keep..=1.0);
        let members = rng.random_range(cfg.min_members..=cfg.max_members.max(cfg.min_members));
        let noise = rng.random_range(0..=cfg.noise);
        let sibling_root = c - c % 2;
        let core: Vec<String> = (0..cfg.core_size)
            .map(|k| {
                if k < cfg.shared_core {
                    format!("pair{sibling_root}:{k}")
                } else {
                    format!("core{c}:{k}")
                }
            })
            .collect();
        for _ in 0..members {
            let id = format!("u{next:06}");
            let mut tokens: Vec<String> =
                core.iter().filter(|_| rng.random_bool(keep)).cloned().collect();
            if tokens.is_empty() {
                tokens.push(core[rng.random_range(0..core.len())].clone());
            }
            tokens.extend((0..noise).map(|k| format!("own{next}:{k}")));
            tokens.extend(
                (0..cfg.popular)
                    .filter(|_| rng.random_bool(cfg.popular_rate))
                    .map(|k| format!("pop:{k}")),
            );
            users.add_tokens(&id, tokens);
            next += 1;
        }
    }
    users
}

/// Every pair `(i, j, exact Jaccard)` with `i < j` (positions in `userId` order) whose exact
/// Jaccard similarity is at least `min`. Uses an inverted index, so pairs without a common token
/// cost nothing.
pub fn exact_pairs(users: &UserTokens, min: f64) -> Vec<(u32, u32, f64)> {
    let sets: Vec<&BTreeSet<String>> = users.iter().map(|(_, s)| s).collect();
    let mut vocab = std::collections::HashMap::<&str, u32>::new();
    let mut postings: Vec<Vec<u32>> = Vec::new();
    for (u, set) in sets.iter().enumerate() {
        for t in set.iter() {
            let id = *vocab.entry(t.as_str()).or_insert_with(|| {
                postings.push(Vec::new());
                (postings.len() - 1) as u32
            });
            postings[id as usize].push(u as u32);
        }
    }
    let mut out = Vec::new();
    let mut counts = vec![0u32; sets.len()];
    let mut touched = Vec::new();
    for (u, set) in sets.iter().enumerate() {
        for t in set.iter() {
            let posting = &postings[vocab[t.as_str()] as usize];
            // Postings are in increasing user order: take only v > u.
            let start = posting.partition_point(|&v| v as usize <= u);
            for &v in &posting[start..] {
                if counts[v as usize] == 0 {
                    touched.push(v);
                }
                counts[v as usize] += 1;
            }
        }
        touched.sort_unstable();
        for &v in &touched {
            let inter = counts[v as usize] as usize;
            let union = set.len() + sets[v as usize].len() - inter;
            let j = inter as f64 / union as f64;
            if j >= min {
                out.push((u as u32, v, j));
            }
            counts[v as usize] = 0;
        }
        touched.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::jaccard;

    #[test]
    fn exact_pairs_match_brute_force() {
        let cfg = PlantedConfig { clusters: 12, max_members: 8, ..Default::default() };
        let users = planted_users(&cfg);
        let sets: Vec<_> = users.iter().map(|(_, s)| s.clone()).collect();
        let fast = exact_pairs(&users, 0.0);
        let mut brute = Vec::new();
        for i in 0..sets.len() {
            for j in i + 1..sets.len() {
                let s = jaccard(&sets[i], &sets[j]);
                if s > 0.0 {
                    brute.push((i as u32, j as u32, s));
                }
            }
        }
        assert_eq!(fast, brute);
        assert_eq!(planted_users(&cfg), users, "deterministic");
    }
}
