//! The pure similarity computation: token sets in, top-k similar users out.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

use crate::SimilarityError;
use crate::lsh::{LshIndex, LshParams, optimal_params};
use crate::minhash::{MinHasher, Signatures};
use crate::tokens::UserTokens;

/// Tunables of one similarity run. They are stored with the results (`params`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimilarityParams {
    /// Jaccard similarity threshold the LSH bands are tuned for and pairs are filtered by.
    pub threshold: f64,
    /// Number of MinHash permutations (signature length).
    pub num_perm: usize,
    /// Seed of the permutations.
    pub seed: u64,
    /// Most similar users kept per user.
    pub top_k: usize,
    /// Weight of the false positive probability when choosing bands.
    pub fp_weight: f64,
    /// Weight of the false negative probability when choosing bands.
    pub fn_weight: f64,
    /// Smallest estimated similarity reported; `None` means [`SimilarityParams::standard_error`]
    /// below the threshold (see [`SimilarityParams::min_similarity`]).
    pub min_similarity: Option<f64>,
}

impl Default for SimilarityParams {
    /// Threshold 0.5 (as the original), 128 permutations, seed 1, top 10, band weights
    /// `fp 0.2 / fn 0.8`, reporting down to one standard error below the threshold.
    ///
    /// # Why these defaults, not datasketch's `(0.5, 0.5)` and a cut at the threshold
    /// With equal weights the S-curve of `(b, r)` crosses about 0.5 at the threshold: at
    /// `t = 0.5`, 128 permutations, datasketch picks `(25, 5)`, and a pair exactly at the
    /// threshold becomes a candidate with probability 0.55; cutting the estimate at `t` then
    /// loses about half of the remaining pairs near `t` to estimation noise (standard error
    /// `sqrt(t (1 - t) / num_perm)` = 0.044). Real similarity distributions put most pairs just
    /// above any threshold, so that set-up missed about 18% of the pairs at or above 0.5 on our
    /// planted-cluster test. Weighting false negatives 0.8 gives `(30, 4)` (candidate
    /// probability 0.86 at 0.5, 0.97 at 0.55) and reporting down to one standard error below `t`
    /// keeps pairs whose estimate is consistent with `J >= t`; both only add pairs that the
    /// estimate puts close to the threshold, and the stored `similarity` is the estimate itself.
    /// Measured figures for both set-ups are in `docs/similarity.md`.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            num_perm: 128,
            seed: 1,
            top_k: 10,
            fp_weight: 0.2,
            fn_weight: 0.8,
            min_similarity: None,
        }
    }
}

impl SimilarityParams {
    /// datasketch's own set-up for a threshold: weights `(0.5, 0.5)`, cut at the threshold.
    pub fn datasketch_like(threshold: f64, num_perm: usize) -> Self {
        Self {
            threshold,
            num_perm,
            fp_weight: 0.5,
            fn_weight: 0.5,
            min_similarity: Some(threshold),
            ..Self::default()
        }
    }

    /// Standard error of the MinHash estimate at the threshold: `sqrt(t (1 - t) / num_perm)`.
    pub fn standard_error(&self) -> f64 {
        (self.threshold * (1.0 - self.threshold) / self.num_perm.max(1) as f64).sqrt()
    }

    /// The smallest estimated similarity reported: the set value, else threshold minus one
    /// [`SimilarityParams::standard_error`].
    pub fn min_similarity(&self) -> f64 {
        self.min_similarity.unwrap_or(self.threshold - self.standard_error())
    }

    /// Checks every field and computes the LSH bands for them.
    pub fn lsh_params(&self) -> Result<LshParams, SimilarityError> {
        if self.top_k == 0 {
            return Err(SimilarityError::param("top_k", "must be at least 1"));
        }
        if let Some(m) = self.min_similarity
            && !(0.0..=1.0).contains(&m)
        {
            return Err(SimilarityError::param("min_similarity", format!("{m} is not in [0, 1]")));
        }
        MinHasher::new(self.num_perm, self.seed)?;
        optimal_params(self.threshold, self.num_perm, self.fp_weight, self.fn_weight)
    }
}

/// One similar user with the estimated Jaccard similarity of the two token sets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimilarUser {
    /// The other user's id.
    pub user_id: String,
    /// Estimated Jaccard similarity, in `[min_similarity, 1]`.
    pub similarity: f64,
}

/// A user and their most similar users, most similar first (ties by `userId`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSimilarity {
    /// The user.
    pub user_id: String,
    /// Up to `top_k` similar users.
    pub similar: Vec<SimilarUser>,
}

/// Counts from one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStats {
    /// Users with at least one token.
    pub users: usize,
    /// Distinct candidate pairs from the LSH bands.
    pub candidate_pairs: u64,
    /// Candidate pairs whose estimated similarity reached the minimum reported similarity.
    pub similar_pairs: u64,
}

/// Result of [`compute`].
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarityResult {
    /// The parameters used.
    pub params: SimilarityParams,
    /// The LSH bands used.
    pub lsh: LshParams,
    /// One entry per user, in `userId` order (users without similar users have an empty list).
    pub users: Vec<UserSimilarity>,
    /// Counts.
    pub stats: RunStats,
}

/// A pair found similar: items `u < v` (row numbers) and their estimated similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoredPair {
    /// Smaller item.
    pub u: u32,
    /// Larger item.
    pub v: u32,
    /// Estimated Jaccard similarity.
    pub similarity: f64,
}

/// Signatures + LSH index of a batch of token sets, with the similarity filter.
pub struct SimilarityIndex {
    signatures: Signatures,
    index: LshIndex,
    min_similarity: f64,
}

impl SimilarityIndex {
    /// Signs every set and builds the index.
    pub fn build<'a, S, I, T>(sets: S, params: &SimilarityParams) -> Result<Self, SimilarityError>
    where
        S: IntoIterator<Item = I>,
        I: IntoIterator<Item = &'a T>,
        T: AsRef<[u8]> + ?Sized + 'a,
    {
        let lsh = params.lsh_params()?;
        let hasher = MinHasher::new(params.num_perm, params.seed)?;
        let signatures = hasher.signatures(sets);
        let index = LshIndex::build(&signatures, lsh)?;
        Ok(Self { signatures, index, min_similarity: params.min_similarity() })
    }

    /// The signatures.
    pub fn signatures(&self) -> &Signatures {
        &self.signatures
    }

    /// The LSH index.
    pub fn index(&self) -> &LshIndex {
        &self.index
    }

    /// Calls `f` for every candidate pair whose estimated similarity is at least
    /// [`SimilarityParams::min_similarity`]; returns the number of candidate pairs examined.
    pub fn for_each_similar_pair(&self, mut f: impl FnMut(ScoredPair)) -> u64 {
        let mut candidates = 0u64;
        self.index.for_each_candidate_pair(|u, v| {
            candidates += 1;
            let similarity = self.signatures.similarity(u as usize, v as usize);
            if similarity >= self.min_similarity {
                f(ScoredPair { u, v, similarity });
            }
        });
        candidates
    }

    /// Every similar pair (see [`SimilarityIndex::for_each_similar_pair`]).
    pub fn similar_pairs(&self) -> Vec<ScoredPair> {
        let mut out = Vec::new();
        self.for_each_similar_pair(|p| out.push(p));
        out
    }

    /// The `top_k` most similar items of every item (most similar first, ties by smaller item),
    /// plus the counts of candidate and similar pairs.
    pub fn top_k(&self, top_k: usize) -> (Vec<Vec<(u32, f64)>>, u64, u64) {
        let n = self.signatures.len();
        let mut heaps: Vec<BinaryHeap<Entry>> = (0..n).map(|_| BinaryHeap::new()).collect();
        let mut similar = 0u64;
        let push = |heap: &mut BinaryHeap<Entry>, entry: Entry| {
            if heap.len() < top_k {
                heap.push(entry);
            } else if let Some(worst) = heap.peek()
                && entry < *worst
            {
                heap.pop();
                heap.push(entry);
            }
        };
        let candidates = self.for_each_similar_pair(|p| {
            similar += 1;
            push(&mut heaps[p.u as usize], Entry { similarity: p.similarity, item: p.v });
            push(&mut heaps[p.v as usize], Entry { similarity: p.similarity, item: p.u });
        });
        let lists = heaps
            .into_iter()
            .map(|heap| {
                heap.into_sorted_vec().into_iter().map(|e| (e.item, e.similarity)).collect()
            })
            .collect();
        (lists, candidates, similar)
    }
}

/// Heap entry ordered "better first": higher similarity, then smaller item. The max-heap's top
/// is thus the worst kept entry.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    similarity: f64,
    item: u32,
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.similarity.total_cmp(&self.similarity).then(self.item.cmp(&other.item))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Computes every user's top-k similar users: MinHash signatures of the merged token sets, LSH
/// candidate pairs, estimated Jaccard similarity, filter by threshold, top-k per user.
/// Users with an empty token set are left out.
pub fn compute(
    users: &UserTokens,
    params: &SimilarityParams,
) -> Result<SimilarityResult, SimilarityError> {
    let lsh = params.lsh_params()?;
    let kept: Vec<(&str, _)> = users.iter().filter(|(_, set)| !set.is_empty()).collect();
    let index = SimilarityIndex::build(kept.iter().map(|(_, set)| set.iter()), params)?;
    let (lists, candidate_pairs, similar_pairs) = index.top_k(params.top_k);
    let out = kept
        .iter()
        .zip(lists)
        .map(|((user, _), list)| UserSimilarity {
            user_id: (*user).to_string(),
            similar: list
                .into_iter()
                .map(|(item, similarity)| SimilarUser {
                    user_id: kept[item as usize].0.to_string(),
                    similarity,
                })
                .collect(),
        })
        .collect();
    Ok(SimilarityResult {
        params: *params,
        lsh,
        users: out,
        stats: RunStats { users: kept.len(), candidate_pairs, similar_pairs },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> UserTokens {
        let mut u = UserTokens::new();
        let base: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
        // a and b are identical, c shares 18 of 20 with them (J = 18/22 = 0.82), d is disjoint.
        u.add_tokens("a", base.clone());
        u.add_tokens("b", base.clone());
        u.add_tokens("c", base[..18].iter().cloned().chain((0..2).map(|i| format!("c{i}"))));
        u.add_tokens("d", (0..20).map(|i| format!("d{i}")));
        u.add_tokens("empty", Vec::<String>::new());
        u
    }

    #[test]
    fn finds_similar_users_in_order() {
        let params = SimilarityParams { num_perm: 256, ..Default::default() };
        let r = compute(&users(), &params).unwrap();
        assert_eq!(r.stats.users, 4);
        let ids: Vec<&str> = r.users.iter().map(|u| u.user_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d"]);
        let a = &r.users[0].similar;
        assert_eq!(a[0], SimilarUser { user_id: "b".into(), similarity: 1.0 });
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].user_id, "c");
        assert!((a[1].similarity - 18.0 / 22.0).abs() < 0.12, "{}", a[1].similarity);
        assert!(r.users[3].similar.is_empty());
        assert_eq!(r.stats.similar_pairs, 3);
    }

    #[test]
    fn top_k_truncates_with_deterministic_ties() {
        let mut u = UserTokens::new();
        for name in ["e", "d", "c", "b", "a"] {
            u.add_tokens(name, ["x", "y", "z"]);
        }
        let params = SimilarityParams { top_k: 2, ..Default::default() };
        let r = compute(&u, &params).unwrap();
        let a: Vec<&str> = r.users[0].similar.iter().map(|s| s.user_id.as_str()).collect();
        assert_eq!(a, ["b", "c"]);
        let e: Vec<&str> = r.users[4].similar.iter().map(|s| s.user_id.as_str()).collect();
        assert_eq!(e, ["a", "b"]);
        assert_eq!(r.stats.similar_pairs, 10);
        assert_eq!(compute(&u, &params).unwrap(), r, "runs are reproducible");
    }

    #[test]
    fn bad_params_are_rejected() {
        let u = users();
        for p in [
            SimilarityParams { top_k: 0, ..Default::default() },
            SimilarityParams { num_perm: 0, ..Default::default() },
            SimilarityParams { threshold: 1.5, ..Default::default() },
        ] {
            assert!(compute(&u, &p).is_err(), "{p:?}");
        }
    }
}
