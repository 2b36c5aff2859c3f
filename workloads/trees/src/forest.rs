//! Random forest for binary classification (non-private).
//!
//! Each tree is grown on a bootstrap sample (rows drawn with replacement; a row's multiplicity
//! is its weight), examining a random subset of columns at every node, choosing the split that
//! most reduces the weighted Gini impurity (for 0/1 labels this is the variance reduction
//! `S_L^2/n_L + S_R^2/n_R - S^2/n` on histogram bins). A leaf outputs its weighted class-1
//! fraction; the forest's probability is the mean over trees.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::TreesError;
use crate::gbdt::check_xy;
use crate::grow::{GrowParams, Grower};
use crate::hist::BinnedMatrix;
use crate::tree::{OutputSpace, TreeEnsemble};

/// How many columns a node examines.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    /// `ceil(sqrt(columns))` (scikit-learn's `"sqrt"`).
    Sqrt,
    /// Every column.
    All,
    /// This share of the columns (at least one).
    Fraction(f64),
}

impl MaxFeatures {
    /// Columns per node for `n` columns.
    pub fn count(self, n: usize) -> usize {
        let k = match self {
            MaxFeatures::Sqrt => (n as f64).sqrt().ceil() as usize,
            MaxFeatures::All => n,
            MaxFeatures::Fraction(f) => (f * n as f64).ceil() as usize,
        };
        k.clamp(1, n.max(1))
    }
}

/// Settings of [`fit_forest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForestConfig {
    /// Number of trees.
    pub n_trees: usize,
    /// Maximum depth of a tree.
    pub max_depth: usize,
    /// Minimum bootstrap weight in a leaf (scikit-learn's `min_samples_leaf`).
    pub min_samples_leaf: f64,
    /// Columns examined per node.
    pub max_features: MaxFeatures,
    /// Whether to draw a bootstrap sample per tree (else every tree sees every row once).
    pub bootstrap: bool,
    /// Most histogram bins per column.
    pub max_bins: usize,
    /// Seed of the bootstrap and column sampling.
    pub seed: u64,
}

impl Default for ForestConfig {
    fn default() -> Self {
        ForestConfig {
            n_trees: 100,
            max_depth: 12,
            min_samples_leaf: 5.0,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            max_bins: 256,
            seed: 0,
        }
    }
}

impl ForestConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TreesError> {
        let bad = |m: &str| Err(TreesError::InvalidConfig(m.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be at least 1");
        }
        if self.max_depth == 0 || self.max_depth > 64 {
            return bad("max_depth must be in 1..=64");
        }
        if self.min_samples_leaf.is_nan() || self.min_samples_leaf < 1.0 {
            return bad("min_samples_leaf must be at least 1");
        }
        if let MaxFeatures::Fraction(f) = self.max_features
            && !(f > 0.0 && f <= 1.0)
        {
            return bad("max_features fraction must be in (0, 1]");
        }
        if self.max_bins < 2 {
            return bad("max_bins must be at least 2");
        }
        Ok(())
    }
}

/// Trains a random forest on `x` and 0/1 labels `y`. Deterministic for a seed.
pub fn fit_forest(
    x: &Array2<f64>,
    y: &[f64],
    cfg: &ForestConfig,
) -> Result<TreeEnsemble, TreesError> {
    cfg.validate()?;
    check_xy(x, y)?;
    let binned = BinnedMatrix::from_quantiles(x.view(), cfg.max_bins)?;
    let n = y.len();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let params = GrowParams {
        max_depth: cfg.max_depth,
        min_child_weight: cfg.min_samples_leaf,
        lambda: 0.0,
        min_split_gain: 1e-12,
        features_per_node: Some(cfg.max_features.count(x.ncols())),
    };
    let mut weight = vec![0.0; n];
    let mut grad = vec![0.0; n];
    let mut trees = Vec::with_capacity(cfg.n_trees);
    for _ in 0..cfg.n_trees {
        if cfg.bootstrap {
            weight.fill(0.0);
            for _ in 0..n {
                weight[rng.random_range(0..n)] += 1.0;
            }
        } else {
            weight.fill(1.0);
        }
        for i in 0..n {
            grad[i] = weight[i] * y[i];
        }
        let mut rows: Vec<u32> = (0..n as u32).filter(|&i| weight[i as usize] > 0.0).collect();
        let tree = Grower::new(&binned, &grad, &weight, params, &mut rng).grow(&mut rows);
        trees.push(tree);
    }
    Ok(TreeEnsemble {
        trees,
        tree_weight: 1.0 / cfg.n_trees as f64,
        base_offset: 0.0,
        output: OutputSpace::Probability,
        n_features: x.ncols(),
    })
}
