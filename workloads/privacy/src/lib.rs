//! Differential privacy for shopstream: accounting, mechanisms and the pipeline budget.
//!
//! * [`rdp`]: Rényi-DP accountant for DP-SGD (Poisson-subsampled Gaussian), matching
//!   Google's `dp-accounting` `RdpAccountant`, and a noise-multiplier solver.
//! * [`mechanisms`]: Laplace and (analytic) Gaussian mechanisms with sensitivity calibration
//!   and a cryptographically secure RNG.
//! * [`ledger`]: the budget arithmetic (basic composition across releases).
//! * [`store`]: the budget persisted in MongoDB with atomic, refusing spends.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod ledger;
pub mod mechanisms;
pub mod rdp;
pub mod store;

pub use ledger::{Budget, Cost};
pub use mechanisms::{DpRng, Gaussian, Laplace};
pub use rdp::{RdpAccountant, SubsampledGaussian, solve_noise_multiplier};
pub use store::{BudgetDoc, BudgetStore, LedgerEntry, SpendRequest};

/// Errors of the privacy crate.
#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    /// A parameter is out of range.
    #[error("invalid privacy parameter: {0}")]
    InvalidParameter(String),
    /// The release costs more than what is left; nothing was spent.
    #[error(
        "privacy budget of pipeline '{pipeline}' exhausted: '{what}' costs (epsilon {epsilon}, delta {delta:e}) \
         but only (epsilon {remaining_epsilon}, delta {remaining_delta:e}) remaining of \
         (epsilon {total_epsilon}, delta {total_delta:e}); refusing before touching any data"
    )]
    BudgetExceeded {
        /// Pipeline name.
        pipeline: String,
        /// The refused release.
        what: String,
        /// Its epsilon.
        epsilon: f64,
        /// Its delta.
        delta: f64,
        /// Epsilon left.
        remaining_epsilon: f64,
        /// Delta left.
        remaining_delta: f64,
        /// Total epsilon.
        total_epsilon: f64,
        /// Total delta.
        total_delta: f64,
    },
    /// The pipeline has no budget document.
    #[error("no privacy budget for pipeline '{0}' (create it with a total epsilon/delta first)")]
    NoBudget(String),
    /// Too many concurrent writers.
    #[error("privacy budget of pipeline '{0}' changed concurrently too many times; try again")]
    Contention(String),
    /// BSON encoding failed.
    #[error("cannot encode ledger entry: {0}")]
    Encode(String),
    /// MongoDB error.
    #[error("mongodb: {0}")]
    Mongo(#[from] mongodb::error::Error),
}
