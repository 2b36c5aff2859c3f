//! Tree ensembles for the purchase model: random forest and gradient-boosted trees, each
//! non-private and differentially private, with exact TreeSHAP.
//!
//! - [`tree`]: our representation ([`Tree`], [`TreeEnsemble`]) whose nodes carry covers, with
//!   export to the `shap` package's dict-of-arrays form ([`TreeEnsemble::to_shap_dict`]).
//! - [`forest::fit_forest`], [`gbdt::fit_gbdt`]: the non-private trainers (histogram splits).
//! - [`dp_forest::fit_dp_forest`], [`dp_gbdt::fit_dp_gbdt`]: the private trainers; each module
//!   documents its mechanism, sensitivity and composition, and has a `privacy_cost(&config)`
//!   that gives the `(epsilon, delta)` before any data is read. [`dp`] has the mechanisms and
//!   the rules for their (cryptographically secure) randomness.
//! - [`shap`]: exact path-dependent TreeSHAP (Lundberg et al. Algorithm 2), per-row
//!   explanations and global mean |SHAP|.
//! - [`TreeModel`]: a trained model with its kind, feature names and privacy, serialisable with
//!   serde for the model registry.
//!
//! ```
//! use ndarray::array;
//! use shopstream_trees::{gbdt::{fit_gbdt, GbdtConfig}, shap::TreeShap};
//! let x = array![[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]];
//! let y = [0.0, 0.0, 1.0, 1.0];
//! let model = fit_gbdt(&x, &y, &GbdtConfig { n_rounds: 5, min_child_weight: 0.0, ..Default::default() }).unwrap();
//! let mut explainer = TreeShap::new(&model);
//! let e = explainer.explain(&[3.0, 0.0]);
//! let total: f64 = e.phi.iter().sum::<f64>() + e.base;
//! assert!((total - model.raw(&[3.0, 0.0])).abs() < 1e-9);
//! ```

mod boost;
mod complete;
pub mod dp;
pub mod dp_forest;
pub mod dp_gbdt;
pub mod forest;
pub mod gbdt;
mod grow;
pub mod hist;
pub mod metrics;
mod model;
pub mod shap;
pub mod tree;

pub use dp::PrivacyCost;
pub use model::{TreeModel, TreeModelKind};
pub use tree::{LEAF, Node, OutputSpace, Tree, TreeEnsemble};

use thiserror::Error;

/// Errors of the trainers and models.
#[derive(Debug, Error)]
pub enum TreesError {
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The training data or a row is unusable (shape, labels, non-finite values).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A deserialised model breaks the tree invariants.
    #[error("invalid model: {0}")]
    InvalidModel(String),
}
