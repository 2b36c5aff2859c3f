//! Growing one boosting tree (the non-private GBDT), tuned for speed.
//!
//! The same split rule as [`crate::grow`] (maximise `G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda) -
//! G^2/(H+lambda)` subject to `H_L, H_R >= min_child_weight`, depth limit, leaf value
//! `-eta G/(H+lambda)`), with the data layout of XGBoost's `hist` method:
//!
//! - gradient pairs are `f32` `(g, h)` packed contiguously in row order; histograms sum in `f64`;
//! - a node's rows are a contiguous range of one index array, kept ascending by a stable
//!   partition, so building a histogram reads the row-major bins and gradients in order;
//! - only the smaller child's histogram is built from its rows, the larger one is the parent's
//!   minus it, and no histogram is built for a child that cannot split (at the depth limit, or
//!   too light); histogram buffers are pooled across nodes and trees;
//! - every leaf records its range of rows, so the training margins are updated from the
//!   partition without traversing the tree ([`BoostGrower::add_to_margin`]).
//!
//! Growth is depth-first to the depth limit; without a leaf limit this gives the same tree as
//! XGBoost's depth-wise policy.

use crate::hist::BinnedMatrix;
use crate::tree::{Node, Tree};

/// Parameters of one boosting tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoostParams {
    pub max_depth: usize,
    pub min_child_weight: f64,
    pub lambda: f64,
    pub min_split_gain: f64,
    pub eta: f64,
}

type Hist = Vec<[f64; 2]>;

/// Grows boosting trees on one binned matrix, reusing its buffers from tree to tree.
pub(crate) struct BoostGrower<'a> {
    data: &'a BinnedMatrix,
    params: BoostParams,
    pool: Vec<Hist>,
    scratch: Vec<u32>,
    nodes: Vec<Node>,
    /// `(node, start, end)`: the rows of each leaf of the last tree are `rows[start..end]`.
    leaves: Vec<(u32, u32, u32)>,
}

struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
    /// `(G, H)` of the left side.
    left: (f64, f64),
}

impl<'a> BoostGrower<'a> {
    pub fn new(data: &'a BinnedMatrix, params: BoostParams) -> Self {
        BoostGrower {
            data,
            params,
            pool: Vec::new(),
            scratch: Vec::new(),
            nodes: Vec::new(),
            leaves: Vec::new(),
        }
    }

    fn take_hist(&mut self) -> Hist {
        let mut h = self.pool.pop().unwrap_or_default();
        h.clear();
        h.resize(self.data.total_bins(), [0.0; 2]);
        h
    }

    /// Grows a tree on `rows` (row indices; reordered in place, each leaf's rows contiguous
    /// and in their original relative order) with gradient pairs `gpair` (indexed by row).
    pub fn grow(&mut self, rows: &mut [u32], gpair: &[[f32; 2]]) -> Tree {
        self.nodes.clear();
        self.leaves.clear();
        let (mut hist, (g, h)) = if rows.len() >= 2 && self.data.n_features() > 0 {
            // The root's sums are those of any one column's bins (every row is in one).
            let mut hist = self.take_hist();
            self.data.accumulate_pairs(rows, gpair, &mut hist);
            let sums = hist[..self.data.n_bins(0)]
                .iter()
                .fold((0.0, 0.0), |(g, h), e| (g + e[0], h + e[1]));
            (Some(hist), sums)
        } else {
            let sums = rows.iter().fold((0.0, 0.0), |(g, h), &r| {
                let [gr, hr] = gpair[r as usize];
                (g + f64::from(gr), h + f64::from(hr))
            });
            (None, sums)
        };
        if !self.expandable(0, h, rows.len())
            && let Some(hist) = hist.take()
        {
            self.pool.push(hist);
        }
        self.node(rows, 0, gpair, hist, (g, h), 0);
        let mut tree = Tree { nodes: std::mem::take(&mut self.nodes) };
        tree.finish();
        self.nodes = Vec::with_capacity(tree.nodes.len());
        tree
    }

    /// Adds each leaf's value of `tree` (the last tree grown, on `rows`) to `margin` of the
    /// leaf's rows: the training predictions without a traversal.
    pub fn add_to_margin(&self, tree: &Tree, rows: &[u32], margin: &mut [f64]) {
        for &(id, start, end) in &self.leaves {
            let v = tree.nodes[id as usize].value;
            for &r in &rows[start as usize..end as usize] {
                margin[r as usize] += v;
            }
        }
    }

    /// Whether a node at `depth` with hessian sum `h` over `n` rows may split.
    fn expandable(&self, depth: usize, h: f64, n: usize) -> bool {
        depth < self.params.max_depth && h >= 2.0 * self.params.min_child_weight && n >= 2
    }

    fn leaf_value(&self, g: f64, h: f64) -> f64 {
        -self.params.eta * g / (h + self.params.lambda)
    }

    /// Grows the node over `rows` (= `rows[start..]` of the whole index array) with sums
    /// `(g, h)`; `hist` is its histogram when it may split, else `None`.
    fn node(
        &mut self,
        rows: &mut [u32],
        start: usize,
        gpair: &[[f32; 2]],
        hist: Option<Hist>,
        (g, h): (f64, f64),
        depth: usize,
    ) -> u32 {
        let id = self.nodes.len() as u32;
        let n = rows.len();
        self.nodes.push(Node::leaf(self.leaf_value(g, h), n as f64));
        let as_leaf = |s: &mut Self, hist: Option<Hist>| {
            if let Some(hist) = hist {
                s.pool.push(hist);
            }
            s.leaves.push((id, start as u32, (start + n) as u32));
            id
        };
        let Some(mut hist) = hist else {
            return as_leaf(self, None);
        };
        let Some(split) = self.best_split(&hist, g, h) else {
            return as_leaf(self, Some(hist));
        };
        let n_left = self.data.partition_stable(rows, split.feature, split.bin, &mut self.scratch);
        let n_right = n - n_left;
        if n_left == 0 || n_right == 0 {
            return as_leaf(self, Some(hist));
        }
        let (gl, hl) = split.left;
        let (gr, hr) = (g - gl, h - hl);
        let grow_left = self.expandable(depth + 1, hl, n_left);
        let grow_right = self.expandable(depth + 1, hr, n_right);
        let (left_rows, right_rows) = rows.split_at_mut(n_left);
        let (mut left_hist, mut right_hist) = (None, None);
        if grow_left || grow_right {
            // Build the smaller child's histogram from rows; the larger one is parent - smaller.
            let left_is_small = n_left <= n_right;
            let mut small = self.take_hist();
            let small_rows: &[u32] = if left_is_small { left_rows } else { right_rows };
            self.data.accumulate_pairs(small_rows, gpair, &mut small);
            let (grow_small, grow_large) =
                if left_is_small { (grow_left, grow_right) } else { (grow_right, grow_left) };
            let large = if grow_large {
                for (a, b) in hist.iter_mut().zip(&small) {
                    a[0] -= b[0];
                    a[1] -= b[1];
                }
                Some(hist)
            } else {
                self.pool.push(hist);
                None
            };
            let small = if grow_small {
                Some(small)
            } else {
                self.pool.push(small);
                None
            };
            (left_hist, right_hist) = if left_is_small { (small, large) } else { (large, small) };
        } else {
            self.pool.push(hist);
        }
        let left = self.node(left_rows, start, gpair, left_hist, (gl, hl), depth + 1);
        let right = self.node(right_rows, start + n_left, gpair, right_hist, (gr, hr), depth + 1);
        let n = &mut self.nodes[id as usize];
        n.feature = split.feature as u32;
        n.threshold = self.data.cuts()[split.feature][split.bin as usize];
        n.left = left;
        n.right = right;
        id
    }

    fn best_split(&self, hist: &[[f64; 2]], g: f64, h: f64) -> Option<Split> {
        let p = self.params;
        let parent = g * g / (h + p.lambda);
        let mut best: Option<Split> = None;
        for f in 0..self.data.n_features() {
            let off = self.data.offset(f);
            let nb = self.data.n_bins(f);
            let (mut gl, mut hl) = (0.0, 0.0);
            for (b, e) in hist[off..off + nb - 1].iter().enumerate() {
                gl += e[0];
                hl += e[1];
                let (gr, hr) = (g - gl, h - hl);
                if hr < p.min_child_weight {
                    break;
                }
                if hl < p.min_child_weight {
                    continue;
                }
                let gain = gl * gl / (hl + p.lambda) + gr * gr / (hr + p.lambda) - parent;
                if gain > p.min_split_gain && best.as_ref().is_none_or(|s| gain > s.gain) {
                    best = Some(Split { feature: f, bin: b as u8, gain, left: (gl, hl) });
                }
            }
        }
        best
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // Tests: fail loudly.
mod tests {
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Mixed columns (continuous, small integer, binary, skewed) and random gradient pairs.
    fn problem(n: usize, seed: u64) -> (Array2<f64>, Vec<[f32; 2]>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((n, 4), |(_, c)| match c {
            0 => rng.random::<f64>(),
            1 => f64::from(rng.random_range(0..6u8)),
            2 => f64::from(u8::from(rng.random_bool(0.3))),
            _ => rng.random::<f64>().powi(3) * 100.0,
        });
        let gpair = (0..n)
            .map(|_| [rng.random_range(-1.0f32..1.0), rng.random_range(0.01f32..0.25)])
            .collect();
        (x, gpair)
    }

    /// Sums `(G, H)` of `rows` in `f64`.
    fn sums(rows: &[usize], gpair: &[[f32; 2]]) -> (f64, f64) {
        rows.iter()
            .fold((0.0, 0.0), |(g, h), &r| (g + f64::from(gpair[r][0]), h + f64::from(gpair[r][1])))
    }

    /// The best gain over every (column, cut), computed from the raw rows.
    fn exhaustive_best(
        data: &BinnedMatrix,
        rows: &[usize],
        gpair: &[[f32; 2]],
        p: &BoostParams,
    ) -> Option<f64> {
        let (g, h) = sums(rows, gpair);
        let mut best: Option<f64> = None;
        for f in 0..data.n_features() {
            for b in 0..data.n_bins(f) - 1 {
                let left: Vec<usize> =
                    rows.iter().copied().filter(|&r| data.bin(r, f) as usize <= b).collect();
                let (gl, hl) = sums(&left, gpair);
                let (gr, hr) = (g - gl, h - hl);
                if hl < p.min_child_weight || hr < p.min_child_weight {
                    continue;
                }
                let gain =
                    gl * gl / (hl + p.lambda) + gr * gr / (hr + p.lambda) - g * g / (h + p.lambda);
                if gain > p.min_split_gain && best.is_none_or(|b| gain > b) {
                    best = Some(gain);
                }
            }
        }
        best
    }

    #[allow(clippy::too_many_arguments)]
    fn check_node(
        tree: &Tree,
        id: usize,
        depth: usize,
        rows: Vec<usize>,
        x: &Array2<f64>,
        data: &BinnedMatrix,
        gpair: &[[f32; 2]],
        p: &BoostParams,
    ) {
        let node = tree.nodes[id];
        let (g, h) = sums(&rows, gpair);
        assert_eq!(node.cover, rows.len() as f64, "node {id}: cover is the row count");
        let best = if depth < p.max_depth && h >= 2.0 * p.min_child_weight && rows.len() >= 2 {
            exhaustive_best(data, &rows, gpair, p)
        } else {
            None
        };
        if node.is_leaf() {
            let want = -p.eta * g / (h + p.lambda);
            assert!((node.value - want).abs() < 1e-9, "leaf {id}: {} vs {want}", node.value);
            assert!(best.is_none(), "leaf {id} at depth {depth} had a split of gain {best:?}");
            return;
        }
        let f = node.feature as usize;
        let (left, right): (Vec<usize>, Vec<usize>) =
            rows.iter().partition(|&&r| x[[r, f]] <= node.threshold);
        let (gl, hl) = sums(&left, gpair);
        let (gr, hr) = (g - gl, h - hl);
        let gain = gl * gl / (hl + p.lambda) + gr * gr / (hr + p.lambda) - g * g / (h + p.lambda);
        let best = best.expect("an internal node has a valid split");
        assert!(gain >= best - 1e-9, "node {id}: chosen gain {gain}, exhaustive best {best}");
        assert!(hl >= p.min_child_weight && hr >= p.min_child_weight);
        check_node(tree, node.left as usize, depth + 1, left, x, data, gpair, p);
        check_node(tree, node.right as usize, depth + 1, right, x, data, gpair, p);
    }

    #[test]
    fn splits_are_the_exhaustive_best_and_leaves_the_newton_steps() {
        for (seed, max_depth, min_child_weight) in [(1, 4, 0.5), (2, 6, 3.0), (3, 3, 0.0)] {
            let (x, gpair) = problem(600, seed);
            let data = BinnedMatrix::from_quantiles(x.view(), 16).unwrap();
            let p = BoostParams {
                max_depth,
                min_child_weight,
                lambda: 1.0,
                min_split_gain: 0.0,
                eta: 0.3,
            };
            let mut grower = BoostGrower::new(&data, p);
            // Two trees with one grower: pooled buffers must not leak state between trees.
            for _ in 0..2 {
                let mut rows: Vec<u32> = (0..x.nrows() as u32).collect();
                let tree = grower.grow(&mut rows, &gpair);
                assert!(tree.nodes.len() > 3 && tree.max_depth() <= max_depth);
                tree.validate(x.ncols()).unwrap();
                check_node(&tree, 0, 0, (0..x.nrows()).collect(), &x, &data, &gpair, &p);

                // The margin update from leaf ranges equals traversing the tree.
                let mut margin = vec![0.5; x.nrows()];
                grower.add_to_margin(&tree, &rows, &mut margin);
                for (i, m) in margin.iter().enumerate() {
                    let want = 0.5 + tree.predict(&x.row(i).to_vec());
                    assert!((m - want).abs() < 1e-15, "row {i}: {m} vs {want}");
                }
                // Each leaf's rows are ascending (stable partition).
                for &(_, s, e) in &grower.leaves {
                    assert!(rows[s as usize..e as usize].windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }
}
