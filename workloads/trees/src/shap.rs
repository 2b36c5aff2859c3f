//! Exact path-dependent TreeSHAP.
//!
//! For a row `x` the SHAP value of feature `i` is its Shapley value in the game
//! `v(S) = E[f(x) | x_S]`, where the conditional expectation is the *path-dependent* one of
//! Lundberg, Erion and Lee (2018, "Consistent Individualized Feature Attribution for Tree
//! Ensembles"): at a split on a feature outside `S`, both children are followed, weighted by
//! their covers. The values are the ones `shap.TreeExplainer(feature_perturbation =
//! "tree_path_dependent")` computes (tested to 1e-6 against it, and to 1e-10 against brute-force
//! Shapley values); the way they are computed differs from its Algorithm 2.
//!
//! # Algorithm
//!
//! Fix a leaf `l` with value `v`. Let `U` be the distinct features split on along its path
//! (`u = |U|`), and for `j` in `U` let `z_j` be the product of the cover fractions
//! `cover(child) / cover(parent)` of the splits on `j` along the path and `o_j` whether `x`
//! satisfies all of them. The leaf's share of the game is `v_l(S) = v * prod_{j in S} o_j *
//! prod_{j in U \ S} z_j`: it vanishes unless `S` is inside the satisfied set `P = {j : o_j}`.
//! Writing `N = U \ P`, `Z_N = prod_{j in N} z_j`, `w(k) = k! (u-k-1)! / u!` (the Shapley
//! weights for `u` players) and `F(Q) = sum_{S subset of Q} w(|S|) prod_{j in Q \ S} z_j`, the
//! Shapley values of the leaf's game are
//!
//! - `phi_j = -v Z_N F(P)` for every `j` in `N` (one value shared by all of them), and
//! - `phi_i = v (1 - z_i) Z_N F(P \ {i})` for `i` in `P`.
//!
//! `F(Q)` is `sum_k w(k) c_k` where `c_k` are the coefficients of the polynomial
//! `g_Q(t) = prod_{j in Q} (z_j + t)`. A depth-first walk keeps `g_P` (multiplying by
//! `(z + t)` when the row's path goes the satisfied way, in `O(p)`), `Z_N` and `u`; a split on a
//! feature already on the path divides its old factor out again (synthetic division, which only
//! multiplies by `z <= 1`, so it is stable) before applying the combined one. At a leaf, `F(P)`
//! costs `O(p)` and each `F(P \ {i})` is one division of `g_P` by `(z_i + t)`, `O(p)`. The
//! unsatisfied features' shared value is not added at every leaf: each visit returns the sum
//! of it over its subtree's leaves, and the node where a feature became unsatisfied adds that
//! sum to it once. A leaf thus costs `O(p^2)`, against `O(u^2)` with a division per step in
//! Algorithm 2 (which unwinds every path feature, satisfied or not). `p` is small on most
//! leaves: on the benchmark's depth-12 forest the mean `p` is about 4 and the mean `u` about
//! 8.7 (2.2 and 4.8 on the depth-6 boosted trees).
//!
//! Layout: the trees are flattened once per explainer. Internal nodes (threshold, both
//! children's cover fractions, feature, child references: 40 bytes) are stored in depth-first
//! pre-order, leaf values (pre-multiplied by the tree weight) in the order the walk meets them;
//! a leaf is handled inside its parent's visit. Since every row visits every node in that
//! order, the model is read as two sequential streams. Rows are explained in blocks, tree by
//! tree, so each tree stays in cache for the block. All scratch space (the satisfied features
//! and the polynomial segments, `O(D^2)` for depth `D`) is allocated once per explainer or
//! thread, none per node or row.
//!
//! By efficiency of Shapley values, `sum_i phi_i + E[f] = f(x)`, with `E[f]` the cover-weighted
//! mean of the leaves ([`expected_value`]). The values are in the ensemble's raw output space:
//! log-odds for boosting, probability for forests.

use crate::tree::{Tree, TreeEnsemble};

/// Marks a feature that is not on the current path.
const ABSENT: u32 = u32::MAX;
/// Marks a feature on the current path whose splits the row does not all satisfy.
const UNSATISFIED: u32 = u32::MAX - 1;

/// The cover-weighted mean output of a tree (its value at the root).
pub fn expected_value(tree: &Tree) -> f64 {
    tree.nodes.first().map_or(0.0, |n| n.value)
}

/// Marks a child reference as a leaf: the low bits index the tree's leaf values.
const LEAF_BIT: u32 = 1 << 31;

/// One internal node of a flattened tree (40 bytes). Leaves are not nodes: a child reference
/// with [`LEAF_BIT`] set indexes the tree's leaf values, so the walk handles a leaf in its
/// parent's visit, without a call or a node of its own.
#[derive(Debug, Clone, Copy)]
struct FlatNode {
    /// Split threshold: `x <= threshold` goes left.
    threshold: f64,
    /// `cover(left) / cover(node)`.
    left_fraction: f64,
    /// `cover(right) / cover(node)`.
    right_fraction: f64,
    /// Split feature.
    feature: u32,
    /// Left child: an index in the tree's nodes, or a leaf's index with [`LEAF_BIT`].
    left: u32,
    /// Right child, likewise.
    right: u32,
}

/// One flattened tree's place in [`Flat`].
#[derive(Debug, Clone)]
struct FlatTree {
    /// Its internal nodes in `Flat::nodes` (the root first).
    nodes: std::ops::Range<usize>,
    /// Its leaf values in `Flat::leaves`.
    leaves: std::ops::Range<usize>,
}

/// An ensemble flattened for TreeSHAP: each tree's internal nodes in depth-first pre-order and
/// its leaf values in the order the walk meets them, the trees one after another. The walk
/// visits every node of every tree for every row, in exactly this order, so both arrays are
/// read as sequential streams; a node carries its children's cover fractions, so choosing the
/// hot and cold side touches nothing else. Trees that are a lone leaf contribute only to the
/// base value and are left out.
#[derive(Debug, Clone)]
struct Flat {
    /// All internal nodes.
    nodes: Vec<FlatNode>,
    /// All leaf values, times the ensemble's tree weight.
    leaves: Vec<f64>,
    /// Where each tree is.
    trees: Vec<FlatTree>,
    /// Deepest leaf over all trees.
    max_depth: usize,
    /// Shapley weights: row `u` (stride `max_depth + 1`) holds `k! (u-k-1)! / u!`, `k < u`.
    weights: Vec<f64>,
}

impl Flat {
    /// # Panics
    /// If a tree breaks the invariants of [`Tree::validate`] (children after their parent and
    /// in range), which every trainer and [`crate::TreeModel::validate`] guarantee, or has
    /// 2^31 nodes or more.
    fn new(ensemble: &TreeEnsemble) -> Flat {
        let n_nodes: usize = ensemble.trees.iter().map(|t| t.nodes.len()).sum();
        let mut flat = Flat {
            nodes: Vec::with_capacity(n_nodes / 2 + 1),
            leaves: Vec::with_capacity(n_nodes / 2 + 1),
            trees: Vec::with_capacity(ensemble.trees.len()),
            max_depth: 0,
            weights: Vec::new(),
        };
        // (source node, depth, the flattened parent and whether this is its left child)
        type Pending = (usize, usize, Option<(usize, bool)>);
        let mut stack: Vec<Pending> = Vec::new();
        for tree in &ensemble.trees {
            if tree.nodes.first().is_none_or(|root| root.is_leaf()) {
                continue;
            }
            assert!(tree.nodes.len() < LEAF_BIT as usize, "TreeSHAP: tree too large");
            let (node_start, leaf_start) = (flat.nodes.len(), flat.leaves.len());
            stack.push((0, 0, None));
            while let Some((i, depth, parent)) = stack.pop() {
                let n = &tree.nodes[i];
                flat.max_depth = flat.max_depth.max(depth);
                let reference = if n.is_leaf() {
                    flat.leaves.push(n.value * ensemble.tree_weight);
                    (flat.leaves.len() - 1 - leaf_start) as u32 | LEAF_BIT
                } else {
                    let (l, r) = (n.left as usize, n.right as usize);
                    assert!(
                        l > i && r > i && l < tree.nodes.len() && r < tree.nodes.len(),
                        "TreeSHAP: node {i} has children out of order or range (validate the model)"
                    );
                    let at = flat.nodes.len() - node_start;
                    flat.nodes.push(FlatNode {
                        threshold: n.threshold,
                        left_fraction: tree.nodes[l].cover / n.cover,
                        right_fraction: tree.nodes[r].cover / n.cover,
                        feature: n.feature,
                        left: 0, // set when the children are emitted
                        right: 0,
                    });
                    // Pre-order, left first: push right, then left.
                    stack.push((r, depth + 1, Some((at, false))));
                    stack.push((l, depth + 1, Some((at, true))));
                    at as u32
                };
                if let Some((at, is_left)) = parent {
                    let parent = &mut flat.nodes[node_start + at];
                    if is_left {
                        parent.left = reference;
                    } else {
                        parent.right = reference;
                    }
                }
            }
            flat.trees.push(FlatTree {
                nodes: node_start..flat.nodes.len(),
                leaves: leaf_start..flat.leaves.len(),
            });
        }
        let stride = flat.max_depth + 1;
        flat.weights = vec![0.0; stride * stride];
        for u in 1..stride {
            let row = &mut flat.weights[u * stride..u * stride + u];
            // w(0) = 1/u, w(k+1) = w(k) (k+1) / (u-k-1): no factorials, no overflow.
            let mut w = 1.0 / u as f64;
            for (k, slot) in row.iter_mut().enumerate() {
                *slot = w;
                if k + 1 < u {
                    w *= (k + 1) as f64 / (u - k - 1) as f64;
                }
            }
        }
        flat
    }

    /// Length of the polynomial buffer: the root's `[1]`, then at most `2 p + 1 <= 2 D + 1`
    /// new coefficients per level.
    fn poly_len(&self) -> usize {
        1 + self.max_depth * (2 * self.max_depth + 1)
    }
}

/// Scratch space for one walk, allocated once and reused for every tree and row.
#[derive(Debug, Clone)]
struct Scratch {
    /// Satisfied features on the current path (the set `P`; the first `p` entries are live).
    sat_feature: Vec<u32>,
    /// Their combined cover fractions `z_i`.
    sat_zero: Vec<f64>,
    /// Per input column: its index in `sat_feature`, [`UNSATISFIED`] or [`ABSENT`].
    state: Vec<u32>,
    /// Stack of polynomial coefficient segments (`g_P`, lowest degree first).
    poly: Vec<f64>,
}

impl Scratch {
    fn new(flat: &Flat, n_features: usize) -> Scratch {
        let d = flat.max_depth + 1;
        let mut poly = vec![0.0; flat.poly_len()];
        poly[0] = 1.0;
        Scratch {
            sat_feature: vec![0; d],
            sat_zero: vec![0.0; d],
            state: vec![ABSENT; n_features],
            poly,
        }
    }
}

/// `dst = src * (z + t)`; `dst.len() == src.len() + 1`.
#[inline(always)]
fn multiply(src: &[f64], z: f64, dst: &mut [f64]) {
    let n = src.len();
    let dst = &mut dst[..=n];
    let mut prev = 0.0;
    for (d, &c) in dst.iter_mut().zip(src) {
        *d = prev + c * z;
        prev = c;
    }
    dst[n] = prev;
}

/// `dst = src / (z + t)` for an `src` that `(z + t)` divides; `dst.len() == src.len() - 1`.
/// Top-down synthetic division: only multiplies by `z` (at most 1), so errors do not grow.
#[inline(always)]
fn divide(src: &[f64], z: f64, dst: &mut [f64]) {
    let n = src.len() - 1;
    let Some((last, rest)) = dst[..n].split_last_mut() else { return };
    let mut q = src[n];
    *last = q;
    for (d, &c) in rest.iter_mut().rev().zip(src[1..n].iter().rev()) {
        q = c - z * q;
        *d = q;
    }
}

/// One row's depth-first walk over one tree.
struct Walk<'a> {
    nodes: &'a [FlatNode],
    leaves: &'a [f64],
    weights: &'a [f64],
    stride: usize,
    x: &'a [f64],
    phi: &'a mut [f64],
    s: &'a mut Scratch,
}

impl Walk<'_> {
    /// Goes down to a child: a leaf is handled here, an internal node by [`Walk::visit`].
    #[inline(always)]
    fn child(&mut self, child: u32, g: usize, p: usize, u: usize, zn: f64, top: usize) -> f64 {
        if child & LEAF_BIT != 0 {
            let value = self.leaves[(child & !LEAF_BIT) as usize];
            self.leaf(value, g, p, u, zn)
        } else {
            self.visit(child as usize, g, p, u, zn, top)
        }
    }

    /// Visits internal `node` with `g_P` at `poly[g..=g + p]`, `u` distinct features on the
    /// path, their `Z_N` product `zn`, and `poly[top..]` free. Adds the satisfied features'
    /// values to `phi` and returns the sum over the subtree's leaves of the value every
    /// unsatisfied feature gets there (`-v Z_N F(P)`): the caller that made a feature
    /// unsatisfied adds the sum to it once, instead of every leaf adding its share to every
    /// unsatisfied feature.
    fn visit(&mut self, node: usize, g: usize, p: usize, u: usize, zn: f64, top: usize) -> f64 {
        let n = self.nodes[node];
        let f = n.feature as usize;
        let (hot, cold, z_hot, z_cold) = if self.x[f] <= n.threshold {
            (n.left, n.right, n.left_fraction, n.right_fraction)
        } else {
            (n.right, n.left, n.right_fraction, n.left_fraction)
        };
        let state = self.s.state[f];
        if state == ABSENT {
            // A new feature: satisfied on the hot side (factor (z + t)), not on the cold side.
            self.s.state[f] = p as u32;
            self.s.sat_feature[p] = f as u32;
            self.s.sat_zero[p] = z_hot;
            {
                let (a, b) = self.s.poly.split_at_mut(top);
                multiply(&a[g..=g + p], z_hot, &mut b[..p + 2]);
            }
            let hot_sum = self.child(hot, top, p + 1, u + 1, zn, top + p + 2);
            self.s.state[f] = UNSATISFIED;
            let cold_sum = self.child(cold, g, p, u + 1, zn * z_cold, top);
            self.phi[f] += cold_sum;
            self.s.state[f] = ABSENT;
            hot_sum + cold_sum
        } else if state == UNSATISFIED {
            // Unsatisfied already: stays so either way, only Z_N changes.
            self.child(hot, g, p, u, zn * z_hot, top) + self.child(cold, g, p, u, zn * z_cold, top)
        } else {
            // Satisfied so far. Divide the old factor out (at `top`, degree p - 1); the hot side
            // multiplies the combined one in (at `top + p`), the cold side drops the feature
            // from P (the last satisfied feature takes its slot meanwhile).
            let k = state as usize;
            let z_old = self.s.sat_zero[k];
            let z_new = z_old * z_hot;
            {
                let (a, b) = self.s.poly.split_at_mut(top);
                let (q, h) = b.split_at_mut(p);
                divide(&a[g..=g + p], z_old, q);
                multiply(q, z_new, &mut h[..=p]);
            }
            self.s.sat_zero[k] = z_new;
            let hot_sum = self.child(hot, top + p, p, u, zn, top + 2 * p + 1);
            let (last_f, last_z) = (self.s.sat_feature[p - 1], self.s.sat_zero[p - 1]);
            self.s.sat_feature[k] = last_f;
            self.s.sat_zero[k] = last_z;
            self.s.state[last_f as usize] = k as u32;
            self.s.state[f] = UNSATISFIED;
            let cold_sum = self.child(cold, top, p - 1, u, zn * z_old * z_cold, top + p);
            self.phi[f] += cold_sum;
            self.s.state[last_f as usize] = (p - 1) as u32;
            self.s.sat_feature[p - 1] = last_f;
            self.s.sat_zero[p - 1] = last_z;
            self.s.sat_feature[k] = f as u32;
            self.s.sat_zero[k] = z_old;
            self.s.state[f] = k as u32;
            hot_sum + cold_sum
        }
    }

    /// Adds a leaf's values for its satisfied features; returns the unsatisfied ones' value.
    #[inline(always)]
    fn leaf(&mut self, value: f64, g: usize, p: usize, u: usize, zn: f64) -> f64 {
        if u == 0 {
            return 0.0; // a lone root: no feature matters
        }
        let scale = value * zn;
        let w = &self.weights[u * self.stride..u * self.stride + u];
        let c = &self.s.poly[g..=g + p];
        // F(P \ {i}) = sum_k w(k) q_k with q = g_P / (z_i + t), by top-down division fused
        // with the sum.
        for (&f, &z) in self.s.sat_feature[..p].iter().zip(&self.s.sat_zero[..p]) {
            let mut q = c[p]; // q_{p-1} (1: g_P is monic)
            let mut sum = w[p - 1] * q;
            for (&ck, &wk) in c[1..p].iter().rev().zip(w[..p - 1].iter().rev()) {
                q = ck - z * q;
                sum += wk * q;
            }
            self.phi[f as usize] += scale * (1.0 - z) * sum;
        }
        // -v Z_N F(P), the value of every unsatisfied feature (none when p == u).
        if p < u { -scale * c.iter().zip(w).map(|(c, w)| c * w).sum::<f64>() } else { 0.0 }
    }
}

/// SHAP values of one row: `phi` per feature, plus the base value `E[f]`, in the ensemble's
/// raw output space. `phi.iter().sum() + base == ensemble.raw(row)` up to rounding.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// One value per feature.
    pub phi: Vec<f64>,
    /// The expected raw output over the training distribution (as the covers record it).
    pub base: f64,
}

/// A TreeSHAP explainer for an ensemble: the trees flattened once, scratch space reused across
/// rows.
#[derive(Debug, Clone)]
pub struct TreeShap<'a> {
    ensemble: &'a TreeEnsemble,
    flat: Flat,
    base: f64,
    scratch: Scratch,
}

impl<'a> TreeShap<'a> {
    /// Prepares an explainer (flattens the trees; `O(nodes)`).
    ///
    /// # Panics
    /// If a tree breaks [`Tree::validate`]'s ordering invariants (children after their parent,
    /// in range); trained and validated models never do.
    pub fn new(ensemble: &'a TreeEnsemble) -> Self {
        let flat = Flat::new(ensemble);
        let base = ensemble.base_offset
            + ensemble.tree_weight * ensemble.trees.iter().map(expected_value).sum::<f64>();
        let scratch = Scratch::new(&flat, ensemble.n_features);
        TreeShap { ensemble, flat, base, scratch }
    }

    /// The base value `E[f]` (raw output space).
    pub fn base_value(&self) -> f64 {
        self.base
    }

    /// SHAP values of one row, written into `phi` (which is zeroed first).
    ///
    /// # Panics
    /// If `row` or `phi` is narrower than the ensemble's `n_features`.
    pub fn shap_into(&mut self, row: &[f64], phi: &mut [f64]) {
        explain_row(&self.flat, &mut self.scratch, row, phi);
    }

    /// SHAP values of one row.
    pub fn explain(&mut self, row: &[f64]) -> Explanation {
        let mut phi = vec![0.0; self.ensemble.n_features];
        self.shap_into(row, &mut phi);
        Explanation { phi, base: self.base }
    }

    /// SHAP values of every row of a matrix, one row of `phi` per input row, on this thread.
    pub fn explain_matrix(&mut self, x: &ndarray::Array2<f64>) -> ndarray::Array2<f64> {
        let mut out = ndarray::Array2::zeros((x.nrows(), self.ensemble.n_features));
        explain_rows(&self.flat, &mut self.scratch, x.view(), out.view_mut());
        out
    }

    /// Like [`TreeShap::explain_matrix`], with the rows split into contiguous blocks over
    /// `threads` scoped threads (0 = the available parallelism). Same values, bit for bit.
    pub fn explain_matrix_parallel(
        &self,
        x: &ndarray::Array2<f64>,
        threads: usize,
    ) -> ndarray::Array2<f64> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        } else {
            threads
        };
        let mut out = ndarray::Array2::zeros((x.nrows(), self.ensemble.n_features));
        let block = x.nrows().div_ceil(threads.max(1)).max(1);
        let n_features = self.ensemble.n_features;
        std::thread::scope(|scope| {
            for (xs, outs) in x
                .axis_chunks_iter(ndarray::Axis(0), block)
                .zip(out.axis_chunks_iter_mut(ndarray::Axis(0), block))
            {
                let flat = &self.flat;
                scope.spawn(move || {
                    let mut scratch = Scratch::new(flat, n_features);
                    explain_rows(flat, &mut scratch, xs, outs);
                });
            }
        });
        out
    }
}

/// Adds one tree's SHAP values for `row` into `phi`.
fn explain_tree(flat: &Flat, tree: usize, scratch: &mut Scratch, row: &[f64], phi: &mut [f64]) {
    let t = &flat.trees[tree];
    let mut walk = Walk {
        nodes: &flat.nodes[t.nodes.clone()],
        leaves: &flat.leaves[t.leaves.clone()],
        weights: &flat.weights,
        stride: flat.max_depth + 1,
        x: row,
        phi,
        s: scratch,
    };
    // The root's g is the constant polynomial 1 at poly[0]. What the walk returns is consumed
    // inside it: every leaf's unsatisfied features were made so below the root.
    walk.visit(0, 0, 0, 0, 1.0, 1);
}

fn explain_row(flat: &Flat, scratch: &mut Scratch, row: &[f64], phi: &mut [f64]) {
    phi.fill(0.0);
    for tree in 0..flat.trees.len() {
        explain_tree(flat, tree, scratch, row, phi);
    }
}

/// Rows explained together, tree by tree: a tree (about 100 KB for 3,000 nodes) then stays in
/// the core's cache for the whole block instead of the whole ensemble streaming through it
/// once per row. Each row still adds its trees in order, so the values are the same bits.
const ROW_BLOCK: usize = 64;

fn explain_rows(
    flat: &Flat,
    scratch: &mut Scratch,
    x: ndarray::ArrayView2<f64>,
    mut out: ndarray::ArrayViewMut2<f64>,
) {
    let (n_cols, n_features) = (x.ncols(), out.ncols());
    // Chunk strides of at least 1 (a zero-width chunk is not allowed).
    let (row_stride, phi_stride) = (n_cols.max(1), n_features.max(1));
    let mut rows = vec![0.0; ROW_BLOCK * row_stride];
    let mut phis = vec![0.0; ROW_BLOCK * phi_stride];
    for (xs, mut outs) in x
        .axis_chunks_iter(ndarray::Axis(0), ROW_BLOCK)
        .zip(out.axis_chunks_iter_mut(ndarray::Axis(0), ROW_BLOCK))
    {
        let n = xs.nrows();
        for (dst, src) in rows.chunks_exact_mut(row_stride).zip(xs.rows()) {
            for (d, s) in dst.iter_mut().zip(src.iter()) {
                *d = *s;
            }
        }
        phis.fill(0.0);
        for tree in 0..flat.trees.len() {
            for (row, phi) in
                rows.chunks_exact(row_stride).zip(phis.chunks_exact_mut(phi_stride)).take(n)
            {
                explain_tree(flat, tree, scratch, &row[..n_cols], &mut phi[..n_features]);
            }
        }
        for (dst, src) in outs.rows_mut().into_iter().zip(phis.chunks_exact(phi_stride)) {
            for (d, s) in dst.into_iter().zip(src) {
                *d = *s;
            }
        }
    }
}

/// Global importance: the mean absolute SHAP value of each feature over the rows of a SHAP
/// matrix (as returned by [`TreeShap::explain_matrix`]).
pub fn mean_abs_shap(shap: &ndarray::Array2<f64>) -> Vec<f64> {
    let n = shap.nrows().max(1) as f64;
    shap.columns().into_iter().map(|c| c.iter().map(|v| v.abs()).sum::<f64>() / n).collect()
}

/// Features ranked by global importance, most important first, as `(name, mean |SHAP|)`.
pub fn ranked_importance(names: &[String], importance: &[f64]) -> Vec<(String, f64)> {
    let mut ranked: Vec<(String, f64)> =
        names.iter().cloned().zip(importance.iter().copied()).collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
}

/// The path-dependent conditional expectation `E[f(x) | x_S]` of one tree, by brute force:
/// follow `x` at splits on features in `subset`, average the children by cover elsewhere.
/// Exponential in nothing but slow; used to check [`TreeShap`] against the Shapley formula.
pub fn conditional_expectation(tree: &Tree, row: &[f64], subset: &[bool]) -> f64 {
    fn go(tree: &Tree, row: &[f64], subset: &[bool], i: usize) -> f64 {
        let n = &tree.nodes[i];
        if n.is_leaf() {
            return n.value;
        }
        let f = n.feature as usize;
        if subset[f] {
            let next = if row[f] <= n.threshold { n.left } else { n.right };
            go(tree, row, subset, next as usize)
        } else {
            let (l, r) = (&tree.nodes[n.left as usize], &tree.nodes[n.right as usize]);
            (l.cover * go(tree, row, subset, n.left as usize)
                + r.cover * go(tree, row, subset, n.right as usize))
                / n.cover
        }
    }
    go(tree, row, subset, 0)
}
