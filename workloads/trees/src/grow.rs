//! Growing one random-forest tree on histograms of `(w y, w)` (bootstrap weight `w`), so a
//! leaf's value `G / H` is its weighted class-1 fraction and its cover the bootstrap draws that
//! reached it. (Boosting trees grow in [`crate::boost`].)
//!
//! Depth-first: a node's histogram holds `(sum g, sum h)` per column bin; the best split
//! maximises `G_L^2/(H_L+lambda) + G_R^2/(H_R+lambda) - G^2/(H+lambda)` subject to
//! `H_L, H_R >= min_child_weight`. Only the smaller child's histogram is built from rows; the
//! larger one is the parent's minus it.

use rand::Rng;
use rand::seq::index::sample;

use crate::hist::BinnedMatrix;
use crate::tree::{Node, Tree};

/// Parameters of one tree.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GrowParams {
    pub max_depth: usize,
    pub min_child_weight: f64,
    pub lambda: f64,
    pub min_split_gain: f64,
    /// Columns examined per node (`None`: all).
    pub features_per_node: Option<usize>,
}

pub(crate) struct Grower<'a, R: Rng> {
    data: &'a BinnedMatrix,
    grad: &'a [f64],
    hess: &'a [f64],
    params: GrowParams,
    rng: &'a mut R,
    nodes: Vec<Node>,
    pool: Vec<Vec<[f64; 2]>>,
    features: Vec<usize>,
}

struct Split {
    feature: usize,
    bin: u8,
    gain: f64,
}

impl<'a, R: Rng> Grower<'a, R> {
    pub fn new(
        data: &'a BinnedMatrix,
        grad: &'a [f64],
        hess: &'a [f64],
        params: GrowParams,
        rng: &'a mut R,
    ) -> Self {
        Grower {
            data,
            grad,
            hess,
            params,
            rng,
            nodes: Vec::new(),
            pool: Vec::new(),
            features: (0..data.n_features()).collect(),
        }
    }

    fn take_hist(&mut self) -> Vec<[f64; 2]> {
        let mut h = self.pool.pop().unwrap_or_default();
        h.clear();
        h.resize(self.data.total_bins(), [0.0; 2]);
        h
    }

    /// Grows a tree on `rows` (row indices; reordered in place).
    pub fn grow(mut self, rows: &mut [u32]) -> Tree {
        let mut hist = self.take_hist();
        self.data.accumulate(rows, self.grad, self.hess, &mut hist);
        self.node(rows, hist, 0);
        let mut tree = Tree { nodes: self.nodes };
        tree.finish();
        tree
    }

    /// Weighted mean `G / H`: the class-1 fraction.
    fn leaf_value(&self, g: f64, h: f64) -> f64 {
        if h > 0.0 { g / h } else { 0.0 }
    }

    fn node(&mut self, rows: &mut [u32], mut hist: Vec<[f64; 2]>, depth: usize) -> u32 {
        let id = self.nodes.len();
        // Totals from the first column's bins (every row is in exactly one of them).
        let (g, h) = if self.data.n_features() == 0 {
            (0.0, 0.0)
        } else {
            hist[..self.data.n_bins(0)].iter().fold((0.0, 0.0), |(g, h), e| (g + e[0], h + e[1]))
        };
        // Covers count bootstrap draws (the sum of weights, H).
        self.nodes.push(Node::leaf(self.leaf_value(g, h), h));
        let p = self.params;
        if depth >= p.max_depth || h < 2.0 * p.min_child_weight || rows.len() < 2 {
            self.pool.push(hist);
            return id as u32;
        }
        let Some(split) = self.best_split(&hist, g, h) else {
            self.pool.push(hist);
            return id as u32;
        };
        let n_left = self.data.partition(rows, split.feature, split.bin);
        let (left_rows, right_rows) = rows.split_at_mut(n_left);
        if left_rows.is_empty() || right_rows.is_empty() {
            self.pool.push(hist);
            return id as u32;
        }
        // Build the smaller child's histogram; the larger one is parent - smaller.
        let mut small = self.take_hist();
        let left_is_small = left_rows.len() <= right_rows.len();
        let small_rows: &[u32] = if left_is_small { left_rows } else { right_rows };
        self.data.accumulate(small_rows, self.grad, self.hess, &mut small);
        for (a, b) in hist.iter_mut().zip(&small) {
            a[0] -= b[0];
            a[1] -= b[1];
        }
        let (left_hist, right_hist) = if left_is_small { (small, hist) } else { (hist, small) };
        let left = self.node(left_rows, left_hist, depth + 1);
        let right = self.node(right_rows, right_hist, depth + 1);
        let n = &mut self.nodes[id];
        n.feature = split.feature as u32;
        n.threshold = self.data.cuts()[split.feature][split.bin as usize];
        n.left = left;
        n.right = right;
        id as u32
    }

    fn best_split(&mut self, hist: &[[f64; 2]], g: f64, h: f64) -> Option<Split> {
        let p = self.params;
        let parent = g * g / (h + p.lambda);
        let nf = self.data.n_features();
        let chosen: Vec<usize> = match p.features_per_node {
            Some(k) if k < nf => sample(self.rng, nf, k).into_vec(),
            _ => std::mem::take(&mut self.features),
        };
        let mut best: Option<Split> = None;
        for &f in &chosen {
            let off = self.data.offset(f);
            let nb = self.data.n_bins(f);
            let (mut gl, mut hl) = (0.0, 0.0);
            for b in 0..nb - 1 {
                let e = hist[off + b];
                gl += e[0];
                hl += e[1];
                let (gr, hr) = (g - gl, h - hl);
                if hl < p.min_child_weight || hr < p.min_child_weight {
                    continue;
                }
                let gain = gl * gl / (hl + p.lambda) + gr * gr / (hr + p.lambda) - parent;
                if gain > p.min_split_gain && best.as_ref().is_none_or(|s| gain > s.gain) {
                    best = Some(Split { feature: f, bin: b as u8, gain });
                }
            }
        }
        if p.features_per_node.is_none_or(|k| k >= nf) {
            self.features = chosen;
        }
        best
    }
}
