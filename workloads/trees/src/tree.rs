//! Our tree and ensemble representation: binary trees whose nodes carry a split, a value and a
//! cover (the training weight that reached the node), which is what TreeSHAP needs.

use serde::{Deserialize, Serialize};

/// Marks "no child" in [`Node::left`] / [`Node::right`]: the node is a leaf.
pub const LEAF: u32 = u32::MAX;

/// One node of a binary decision tree.
///
/// A row goes left when `row[feature] <= threshold` (the convention of scikit-learn and of the
/// `shap` package), else right. `NaN` goes right (our features never contain `NaN`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Column tested at an internal node (unused at a leaf).
    pub feature: u32,
    /// Split threshold (unused at a leaf).
    pub threshold: f64,
    /// Index of the left child, or [`LEAF`].
    pub left: u32,
    /// Index of the right child, or [`LEAF`].
    pub right: u32,
    /// At a leaf: the tree's output. At an internal node: the cover-weighted mean of its
    /// leaves (what the node would output if it were a leaf).
    pub value: f64,
    /// Training weight that reached the node (row count, bootstrap multiplicity or, for the
    /// private models, a noisy count). Positive; an internal node's cover is the sum of its
    /// children's.
    pub cover: f64,
}

impl Node {
    /// A leaf with a value and a cover.
    pub fn leaf(value: f64, cover: f64) -> Node {
        Node { feature: 0, threshold: 0.0, left: LEAF, right: LEAF, value, cover }
    }

    /// Whether the node is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.left == LEAF
    }
}

/// A binary decision tree; the root is node 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// The nodes; children have larger indices than their parent.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Index of the leaf a row falls into.
    #[inline]
    pub fn leaf_index(&self, row: &[f64]) -> usize {
        let mut i = 0;
        loop {
            let n = &self.nodes[i];
            if n.is_leaf() {
                return i;
            }
            i = if row[n.feature as usize] <= n.threshold { n.left } else { n.right } as usize;
        }
    }

    /// The tree's output for a row.
    #[inline]
    pub fn predict(&self, row: &[f64]) -> f64 {
        self.nodes[self.leaf_index(row)].value
    }

    /// Depth of the deepest leaf (a lone root has depth 0).
    pub fn max_depth(&self) -> usize {
        fn go(t: &Tree, i: usize) -> usize {
            let n = &t.nodes[i];
            if n.is_leaf() { 0 } else { 1 + go(t, n.left as usize).max(go(t, n.right as usize)) }
        }
        if self.nodes.is_empty() { 0 } else { go(self, 0) }
    }

    /// Number of leaves.
    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_leaf()).count()
    }

    /// Recomputes every internal node's cover (sum of children) and value (cover-weighted mean
    /// of children) from the leaves. Called by every trainer once the leaves are final.
    pub fn finish(&mut self) {
        // Children have larger indices than parents, so a reverse sweep sees children first.
        for i in (0..self.nodes.len()).rev() {
            let n = self.nodes[i];
            if n.is_leaf() {
                continue;
            }
            let (l, r) = (self.nodes[n.left as usize], self.nodes[n.right as usize]);
            let cover = l.cover + r.cover;
            let value = if cover > 0.0 {
                (l.value * l.cover + r.value * r.cover) / cover
            } else {
                0.5 * (l.value + r.value)
            };
            self.nodes[i].cover = cover;
            self.nodes[i].value = value;
        }
    }

    /// Checks the structural invariants: children after parents and in range, features in
    /// range, positive finite covers, finite values and thresholds.
    pub fn validate(&self, n_features: usize) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("tree has no nodes".into());
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if !(n.cover.is_finite() && n.cover > 0.0) {
                return Err(format!("node {i}: cover {} is not positive", n.cover));
            }
            if !n.value.is_finite() {
                return Err(format!("node {i}: value {} is not finite", n.value));
            }
            if n.is_leaf() != (n.right == LEAF) {
                return Err(format!("node {i}: exactly one child"));
            }
            if !n.is_leaf() {
                if n.feature as usize >= n_features {
                    return Err(format!("node {i}: feature {} out of range", n.feature));
                }
                if n.threshold.is_nan() {
                    return Err(format!("node {i}: threshold is NaN"));
                }
                for c in [n.left, n.right] {
                    if c as usize <= i || c as usize >= self.nodes.len() {
                        return Err(format!("node {i}: child {c} out of order or range"));
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the ensemble's raw output means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputSpace {
    /// Log-odds (margin); the probability is its sigmoid. Gradient-boosted trees.
    LogOdds,
    /// A probability already (mean of leaf class-1 fractions). Random forests.
    Probability,
}

/// An additive ensemble: `raw(x) = base_offset + tree_weight * sum_t tree_t(x)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeEnsemble {
    /// The trees.
    pub trees: Vec<Tree>,
    /// Weight of every tree's output (`1/T` for a forest, `1` for boosting, whose learning
    /// rate is already in the leaf values).
    pub tree_weight: f64,
    /// Constant added to the sum (the initial log-odds of boosting, 0 for a forest).
    pub base_offset: f64,
    /// Meaning of the raw output.
    pub output: OutputSpace,
    /// Number of input columns.
    pub n_features: usize,
}

/// The logistic function.
#[inline]
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl TreeEnsemble {
    /// The raw output (log-odds or probability, per [`TreeEnsemble::output`]); this is what
    /// SHAP values add up to.
    pub fn raw(&self, row: &[f64]) -> f64 {
        self.base_offset + self.tree_weight * self.trees.iter().map(|t| t.predict(row)).sum::<f64>()
    }

    /// The probability of a purchase.
    pub fn predict_proba(&self, row: &[f64]) -> f64 {
        match self.output {
            OutputSpace::LogOdds => sigmoid(self.raw(row)),
            OutputSpace::Probability => self.raw(row).clamp(0.0, 1.0),
        }
    }

    /// Probabilities for every row of a matrix.
    pub fn predict_proba_matrix(&self, x: &ndarray::Array2<f64>) -> Vec<f64> {
        x.rows().into_iter().map(|r| self.predict_proba(&r.to_vec())).collect()
    }

    /// Checks every tree (see [`Tree::validate`]).
    pub fn validate(&self) -> Result<(), String> {
        for (t, tree) in self.trees.iter().enumerate() {
            tree.validate(self.n_features).map_err(|e| format!("tree {t}: {e}"))?;
        }
        if !self.tree_weight.is_finite() || !self.base_offset.is_finite() {
            return Err("tree weight or base offset is not finite".into());
        }
        Ok(())
    }

    /// The model in the dict-of-arrays form that `shap.TreeExplainer` accepts, as JSON: convert
    /// each array with `numpy.array` and pass `{"trees": [...], "base_offset": ...,
    /// "tree_output": ...}`. Values are pre-multiplied by [`TreeEnsemble::tree_weight`], so
    /// `shap` sums the trees as we do. Leaves have `-1` children, feature and threshold as in
    /// scikit-learn; `children_default` equals `children_left` (no missing values).
    pub fn to_shap_dict(&self) -> serde_json::Value {
        let trees: Vec<serde_json::Value> = self
            .trees
            .iter()
            .map(|t| {
                let idx = |c: u32| if c == LEAF { -1i64 } else { i64::from(c) };
                let left: Vec<i64> = t.nodes.iter().map(|n| idx(n.left)).collect();
                let right: Vec<i64> = t.nodes.iter().map(|n| idx(n.right)).collect();
                let features: Vec<i64> = t
                    .nodes
                    .iter()
                    .map(|n| if n.is_leaf() { -1 } else { i64::from(n.feature) })
                    .collect();
                let thresholds: Vec<f64> =
                    t.nodes.iter().map(|n| if n.is_leaf() { -2.0 } else { n.threshold }).collect();
                let values: Vec<f64> = t.nodes.iter().map(|n| n.value * self.tree_weight).collect();
                let covers: Vec<f64> = t.nodes.iter().map(|n| n.cover).collect();
                serde_json::json!({
                    "children_default": left.clone(),
                    "children_left": left,
                    "children_right": right,
                    "features": features,
                    "thresholds": thresholds,
                    "values": values,
                    "node_sample_weight": covers,
                })
            })
            .collect();
        serde_json::json!({
            "trees": trees,
            "base_offset": self.base_offset,
            "tree_output": match self.output {
                OutputSpace::LogOdds => "log_odds",
                OutputSpace::Probability => "probability",
            },
        })
    }
}
