//! The privacy budget of one pipeline: a total `(ε, δ)` and the releases that spent from it.
//!
//! # Composition
//! Releases compose by **basic (sequential) composition**: running mechanisms that are
//! `(ε_i, δ_i)`-DP on the same data is `(Σ ε_i, Σ δ_i)`-DP (Dwork et al. 2006; Dwork & Roth
//! 2014, Theorem 3.16). It holds for any mix of mechanisms and adaptively chosen releases, so
//! the ledger only needs the sums. It is loose compared to RDP composition *within* a training
//! run (which [`crate::rdp`] handles), but it is the safe, simple rule *across* runs whose
//! mechanisms differ (DP-SGD, noisy tree leaves, noisy statistics).
//!
//! A release is admitted only if `spent_ε + ε ≤ total_ε` and `spent_δ + δ ≤ total_δ` (up to a
//! relative tolerance of 1e-9 for floating-point sums).

use serde::{Deserialize, Serialize};

use crate::PrivacyError;

/// Relative slack for floating-point sums when comparing against the total.
pub const TOLERANCE: f64 = 1e-9;

/// The `(ε, δ)` price of one release.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Epsilon spent.
    pub epsilon: f64,
    /// Delta spent.
    pub delta: f64,
}

impl Cost {
    /// A validated cost (finite, non-negative).
    pub fn new(epsilon: f64, delta: f64) -> Result<Self, PrivacyError> {
        if !(epsilon >= 0.0 && epsilon.is_finite()) {
            return Err(PrivacyError::InvalidParameter(format!(
                "release epsilon must be finite and >= 0, got {epsilon}"
            )));
        }
        if !(0.0..1.0).contains(&delta) {
            return Err(PrivacyError::InvalidParameter(format!(
                "release delta must be in [0, 1), got {delta}"
            )));
        }
        Ok(Self { epsilon, delta })
    }

    /// Basic composition of several costs.
    pub fn sum<I: IntoIterator<Item = Cost>>(costs: I) -> Cost {
        costs.into_iter().fold(Cost { epsilon: 0.0, delta: 0.0 }, |a, c| Cost {
            epsilon: a.epsilon + c.epsilon,
            delta: a.delta + c.delta,
        })
    }
}

/// Totals and spent amounts of a pipeline's budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Total epsilon the pipeline may spend over its lifetime.
    pub total_epsilon: f64,
    /// Total delta the pipeline may spend.
    pub total_delta: f64,
    /// Epsilon spent so far.
    pub spent_epsilon: f64,
    /// Delta spent so far.
    pub spent_delta: f64,
}

impl Budget {
    /// A fresh budget; totals must be finite and positive (delta in (0, 1)).
    pub fn new(total_epsilon: f64, total_delta: f64) -> Result<Self, PrivacyError> {
        if !(total_epsilon > 0.0 && total_epsilon.is_finite()) {
            return Err(PrivacyError::InvalidParameter(format!(
                "total epsilon must be finite and > 0, got {total_epsilon}"
            )));
        }
        if !(total_delta > 0.0 && total_delta < 1.0) {
            return Err(PrivacyError::InvalidParameter(format!(
                "total delta must be in (0, 1), got {total_delta}"
            )));
        }
        Ok(Self { total_epsilon, total_delta, spent_epsilon: 0.0, spent_delta: 0.0 })
    }

    /// What is left (never negative).
    pub fn remaining(&self) -> Cost {
        Cost {
            epsilon: (self.total_epsilon - self.spent_epsilon).max(0.0),
            delta: (self.total_delta - self.spent_delta).max(0.0),
        }
    }

    /// Largest spent epsilon at which `cost` still fits (used as the atomic update's filter).
    pub fn max_spent_epsilon_for(&self, cost: Cost) -> f64 {
        self.total_epsilon * (1.0 + TOLERANCE) - cost.epsilon
    }

    /// Largest spent delta at which `cost` still fits.
    pub fn max_spent_delta_for(&self, cost: Cost) -> f64 {
        self.total_delta * (1.0 + TOLERANCE) - cost.delta
    }

    /// `Ok` if `cost` fits in what is left, otherwise [`PrivacyError::BudgetExceeded`].
    pub fn check(&self, pipeline: &str, what: &str, cost: Cost) -> Result<(), PrivacyError> {
        if self.spent_epsilon <= self.max_spent_epsilon_for(cost)
            && self.spent_delta <= self.max_spent_delta_for(cost)
        {
            Ok(())
        } else {
            Err(PrivacyError::BudgetExceeded {
                pipeline: pipeline.to_string(),
                what: what.to_string(),
                epsilon: cost.epsilon,
                delta: cost.delta,
                remaining_epsilon: self.remaining().epsilon,
                remaining_delta: self.remaining().delta,
                total_epsilon: self.total_epsilon,
                total_delta: self.total_delta,
            })
        }
    }

    /// Checks and records the spend in memory.
    pub fn spend(&mut self, pipeline: &str, what: &str, cost: Cost) -> Result<(), PrivacyError> {
        self.check(pipeline, what, cost)?;
        self.spent_epsilon += cost.epsilon;
        self.spent_delta += cost.delta;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_until_exhausted_then_refuses_with_a_clear_message() {
        let mut b = Budget::new(3.0, 1e-4).unwrap();
        let c = Cost::new(1.0, 1e-5).unwrap();
        for _ in 0..3 {
            b.spend("p", "mlp", c).unwrap();
        }
        assert!((b.remaining().epsilon).abs() < 1e-12);
        let err = b.spend("p", "mlp-dp", c).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mlp-dp") && msg.contains("remaining"), "{msg}");
        assert_eq!(b.spent_epsilon, 3.0, "a refused spend changes nothing");
    }

    #[test]
    fn delta_is_budgeted_too() {
        let mut b = Budget::new(100.0, 2e-5).unwrap();
        b.spend("p", "a", Cost::new(1.0, 1e-5).unwrap()).unwrap();
        b.spend("p", "b", Cost::new(1.0, 1e-5).unwrap()).unwrap();
        assert!(matches!(
            b.spend("p", "c", Cost::new(1.0, 1e-5).unwrap()),
            Err(PrivacyError::BudgetExceeded { .. })
        ));
        // A pure-epsilon release still fits.
        b.spend("p", "laplace count", Cost::new(0.5, 0.0).unwrap()).unwrap();
    }

    #[test]
    fn float_sums_do_not_refuse_an_exact_fit() {
        let mut b = Budget::new(1.0, 1e-5).unwrap();
        for _ in 0..10 {
            b.spend("p", "tenth", Cost::new(0.1, 0.0).unwrap()).unwrap();
        }
        assert!(b.spend("p", "more", Cost::new(1e-6, 0.0).unwrap()).is_err());
    }

    #[test]
    fn composition_sums_costs() {
        let c = Cost::sum([Cost::new(0.5, 1e-6).unwrap(), Cost::new(1.5, 2e-6).unwrap()]);
        assert_eq!(c.epsilon, 2.0);
        assert!((c.delta - 3e-6).abs() < 1e-18);
        assert!(Cost::new(-1.0, 0.0).is_err());
        assert!(Budget::new(0.0, 1e-5).is_err());
    }
}
