//! Differentially private random forest with data-independent splits and noisy leaf counts.
//!
//! # Mechanism
//! In the family of random-decision-tree forests (Fan et al. 2003; Jagannathan, Pillaipakkamnatt
//! and Wright 2009, "A practical differentially private random decision tree classifier"):
//!
//! 1. Each tree is a complete binary tree of depth `max_depth` whose every split is drawn
//!    without looking at data: a column uniformly at random, then a threshold uniformly at
//!    random from that column's public grid ([`crate::hist::public_cuts`] of the public value
//!    ranges, e.g. `Encoder::public_ranges`). The structure therefore costs no privacy.
//! 2. All training rows are routed to the leaves of every tree; for every leaf the two class
//!    counts `n0, n1` are released with Gaussian noise `N(0, sigma^2)`,
//!    `sigma` = [`DpForestConfig::count_sigma`].
//! 3. A leaf outputs `(max(ñ1, 0) + a) / (max(ñ0, 0) + max(ñ1, 0) + 2a)` with the prior
//!    pseudo-count `a` ([`DpForestConfig::prior`]); its cover (needed by TreeSHAP) is
//!    `max(ñ0, 0) + max(ñ1, 0) + 2a`. Both are post-processing of the noisy counts. The forest
//!    averages the trees.
//!
//! # Sensitivity and composition
//! Adding or removing one session changes exactly one class count of one leaf of each tree by
//! one: a tree's leaf-count vector has L2 sensitivity 1, so its Gaussian release is
//! `1 / (2 sigma^2)`-zCDP. The `n_trees` releases compose to
//! `rho = n_trees / (2 sigma^2)`-zCDP, calibrated so that `rho = zcdp_rho(epsilon, delta)`:
//! the forest is `(epsilon, delta)`-DP (see [`crate::dp`] for the conversion). The cost is known
//! from the configuration alone ([`privacy_cost`]).

use ndarray::Array2;
use rand::{CryptoRng, Rng};
use serde::{Deserialize, Serialize};

use crate::TreesError;
use crate::complete::grow_complete;
use crate::dp::{PrivacyCost, gaussian, zcdp_rho};
use crate::gbdt::check_private_input;
use crate::hist::{BinnedMatrix, public_cuts};
use crate::tree::{OutputSpace, TreeEnsemble};

/// Name of the mechanism, as recorded in [`PrivacyCost::mechanism`].
pub const MECHANISM: &str = "dp-random-forest: random splits on public ranges, Gaussian leaf class counts, zCDP composition over trees";

/// Settings of [`fit_dp_forest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DpForestConfig {
    /// Number of trees.
    pub n_trees: usize,
    /// Depth of every (complete) tree.
    pub max_depth: usize,
    /// Target epsilon of the whole forest.
    pub epsilon: f64,
    /// Target delta of the whole forest.
    pub delta: f64,
    /// Pseudo-count per class added to the noisy counts of a leaf.
    pub prior: f64,
    /// Size of the public threshold grid per numeric column.
    pub grid: usize,
}

impl Default for DpForestConfig {
    fn default() -> Self {
        DpForestConfig {
            n_trees: 100,
            max_depth: 4,
            epsilon: 1.0,
            delta: 1e-5,
            prior: 1.0,
            grid: 32,
        }
    }
}

impl DpForestConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), TreesError> {
        let bad = |m: &str| Err(TreesError::InvalidConfig(m.to_string()));
        if self.n_trees == 0 {
            return bad("n_trees must be at least 1");
        }
        if self.max_depth == 0 || self.max_depth > 20 {
            return bad("max_depth must be in 1..=20");
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad("epsilon must be positive and finite");
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return bad("delta must be in (0, 1)");
        }
        if !(self.prior.is_finite() && self.prior > 0.0) {
            return bad("prior must be positive and finite");
        }
        if self.grid < 2 {
            return bad("grid must be at least 2");
        }
        Ok(())
    }
}

impl DpForestConfig {
    /// zCDP budget of the whole forest, `zcdp_rho(epsilon, delta)`.
    pub fn rho(&self) -> f64 {
        zcdp_rho(self.epsilon, self.delta)
    }

    /// Standard deviation of the Gaussian noise on every leaf class count:
    /// `sqrt(n_trees / (2 rho))` (sensitivity 1). The very value the trainer uses.
    pub fn count_sigma(&self) -> f64 {
        (self.n_trees as f64 / (2.0 * self.rho())).sqrt()
    }
}

/// The privacy the training with this configuration spends: `(epsilon, delta)` of the config.
pub fn privacy_cost(cfg: &DpForestConfig) -> PrivacyCost {
    PrivacyCost { epsilon: cfg.epsilon, delta: cfg.delta, mechanism: MECHANISM.to_string() }
}

/// Trains a private forest. `ranges` are the public `(min, max)` of every column (never computed
/// from `x`); `rng` must be cryptographically secure (see [`crate::dp`]). Returns the model and
/// the privacy it spent (equal to [`privacy_cost`]).
pub fn fit_dp_forest<R: Rng + CryptoRng + ?Sized>(
    x: &Array2<f64>,
    y: &[f64],
    ranges: &[(f64, f64)],
    cfg: &DpForestConfig,
    rng: &mut R,
) -> Result<(TreeEnsemble, PrivacyCost), TreesError> {
    cfg.validate()?;
    check_private_input(x, y, ranges)?;
    let binned = BinnedMatrix::from_cuts(x.view(), public_cuts(ranges, cfg.grid))?;
    let n_features = x.ncols();
    let sigma = cfg.count_sigma();
    let mut trees = Vec::with_capacity(cfg.n_trees);
    let mut rows: Vec<u32> = (0..y.len() as u32).collect();
    for _ in 0..cfg.n_trees {
        // Draw the structure first (data-independent, breadth-first order), then the noise:
        // both closures below need the generator, so the draws are made up front.
        let internal = (1usize << cfg.max_depth) - 1;
        let splits: Vec<(usize, u8)> = (0..internal)
            .map(|_| {
                let f = rng.random_range(0..n_features);
                (f, rng.random_range(0..binned.n_bins(f) - 1) as u8)
            })
            .collect();
        let noise: Vec<(f64, f64)> = (0..1usize << cfg.max_depth)
            .map(|_| (gaussian(rng, sigma), gaussian(rng, sigma)))
            .collect();
        let mut next_split = splits.into_iter();
        let mut next_noise = noise.into_iter();
        let prior = cfg.prior;
        let tree = grow_complete(
            &binned,
            &mut rows,
            cfg.max_depth,
            |_, _| next_split.next().unwrap_or((0, 0)),
            |leaf_rows| {
                let n1 = leaf_rows.iter().filter(|&&r| y[r as usize] == 1.0).count() as f64;
                let n0 = leaf_rows.len() as f64 - n1;
                let (z0, z1) = next_noise.next().unwrap_or((0.0, 0.0));
                let c0 = (n0 + z0).max(0.0);
                let c1 = (n1 + z1).max(0.0);
                let cover = c0 + c1 + 2.0 * prior;
                ((c1 + prior) / cover, cover)
            },
        );
        trees.push(tree);
    }
    let model = TreeEnsemble {
        trees,
        tree_weight: 1.0 / cfg.n_trees as f64,
        base_offset: 0.0,
        output: OutputSpace::Probability,
        n_features,
    };
    Ok((model, privacy_cost(cfg)))
}
