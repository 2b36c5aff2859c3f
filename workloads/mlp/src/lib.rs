//! A small MLP purchase classifier on candle (CPU): non-private training, DP-SGD with exact
//! per-example clipping and Poisson sampling, and model-agnostic KernelSHAP.
//!
//! * [`train::train`] / [`train::train_dp`] produce an [`MlpModel`] (serde-serialisable
//!   weights + input scaling) whose [`MlpModel::predict_proba`] returns probabilities.
//! * [`DpSgdConfig`] is the single source of the DP-SGD parameters for both the trainer and
//!   the RDP accountant ([`DpSgdConfig::cost`]).
//! * [`shap::KernelExplainer`] explains any batch prediction function.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod model;
pub mod shap;
pub mod train;

pub use model::{MlpModel, Scaling};
pub use shap::{Explanation, KernelExplainer, KernelShapOptions};
pub use train::{DpSgdConfig, DpStepInfo, MlpConfig, train, train_dp};

/// Errors of the MLP crate.
#[derive(Debug, thiserror::Error)]
pub enum MlpError {
    /// Tensor library failure.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// Inconsistent shapes or inputs.
    #[error("shape: {0}")]
    Shape(String),
    /// Invalid configuration.
    #[error("invalid MLP configuration: {0}")]
    Config(String),
    /// (De)serialisation failure.
    #[error("model serialisation: {0}")]
    Serde(String),
    /// Privacy accounting failure.
    #[error(transparent)]
    Privacy(#[from] shopstream_privacy::PrivacyError),
}
