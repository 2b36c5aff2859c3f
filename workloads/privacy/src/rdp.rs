//! Rényi-DP accountant for the Poisson-subsampled Gaussian mechanism (DP-SGD).
//!
//! This is a line-by-line port of the `RdpAccountant` of Google's `dp-accounting` package
//! (version 0.6, `dp_accounting/rdp/rdp_privacy_accountant.py`), restricted to the event DP-SGD
//! produces: `SelfComposed(PoissonSampled(q, Gaussian(sigma)), steps)` under the
//! add-or-remove-one neighbouring relation.
//!
//! * RDP of one step at order `alpha` is `log(A_alpha) / (alpha - 1)` where `A_alpha` is the
//!   binomial expansion of Mironov, Talwar & Zhang, "Rényi Differential Privacy of the Sampled
//!   Gaussian Mechanism" (2019), Section 3.3: a finite sum for integer orders and the
//!   two-sided erfc series for fractional orders.
//! * RDP composes additively over steps: `rdp_T(alpha) = T * rdp_1(alpha)`.
//! * Conversion to `(epsilon, delta)` uses the improved bound that `dp-accounting` uses
//!   (Canonne, Kamath & Steinke 2020, Proposition 12 / Asoodeh et al. 2020, Eq. 20):
//!   `eps = rdp + ln(1 - 1/alpha) - ln(delta * alpha) / (alpha - 1)` for `alpha > 1.01`,
//!   with the KL shortcut `eps = 0` when `delta^2 + expm1(-rdp) > 0`, minimised over the
//!   orders.
//!
//! The orders are `dp-accounting`'s `DEFAULT_RDP_ORDERS`: `1.1, 1.2, ..., 10.9`, `11..=63`,
//! `128, 256, 512, 1024`.

use crate::PrivacyError;

/// Upper bound of the fractional-order series (same constant as `dp-accounting`).
const MAX_STEPS_LOG_A_FRAC: usize = 1000;

/// The RDP orders used by `dp-accounting`'s `RdpAccountant` by default.
pub fn default_orders() -> Vec<f64> {
    let mut orders: Vec<f64> = (1..100).map(|x| 1.0 + f64::from(x) / 10.0).collect();
    orders.extend((11..64).map(f64::from));
    orders.extend([128.0, 256.0, 512.0, 1024.0]);
    orders
}

/// DP-SGD parameters that determine the privacy cost: Poisson sampling rate, noise multiplier
/// (noise std divided by the clipping norm) and number of steps.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubsampledGaussian {
    /// Probability that each example is included in a step's batch (Poisson sampling).
    pub sampling_rate: f64,
    /// Ratio of the Gaussian noise standard deviation to the L2 sensitivity (clipping norm).
    pub noise_multiplier: f64,
    /// Number of noisy gradient steps.
    pub steps: u64,
}

impl SubsampledGaussian {
    /// Checks that the parameters are in range (q in [0, 1], sigma >= 0).
    pub fn validate(&self) -> Result<(), PrivacyError> {
        if !(0.0..=1.0).contains(&self.sampling_rate) || !self.sampling_rate.is_finite() {
            return Err(PrivacyError::InvalidParameter(format!(
                "sampling rate must be in [0, 1], got {}",
                self.sampling_rate
            )));
        }
        if !(self.noise_multiplier.is_finite() && self.noise_multiplier >= 0.0) {
            return Err(PrivacyError::InvalidParameter(format!(
                "noise multiplier must be finite and >= 0, got {}",
                self.noise_multiplier
            )));
        }
        Ok(())
    }

    /// `(epsilon, delta)` after all steps, using the default orders.
    pub fn epsilon(&self, delta: f64) -> Result<f64, PrivacyError> {
        let mut acc = RdpAccountant::new();
        acc.compose_subsampled_gaussian(*self)?;
        acc.epsilon(delta)
    }
}

/// Accumulates RDP over events and converts to `(epsilon, delta)`.
#[derive(Debug, Clone)]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl RdpAccountant {
    /// An empty accountant over [`default_orders`].
    pub fn new() -> Self {
        Self::with_orders(default_orders())
    }

    /// An empty accountant over custom orders (each must be > 1).
    pub fn with_orders(orders: Vec<f64>) -> Self {
        let rdp = vec![0.0; orders.len()];
        Self { orders, rdp }
    }

    /// The orders this accountant tracks.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// Accumulated RDP at each order.
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Adds `steps` compositions of the Poisson-subsampled Gaussian mechanism.
    pub fn compose_subsampled_gaussian(
        &mut self,
        event: SubsampledGaussian,
    ) -> Result<(), PrivacyError> {
        event.validate()?;
        let steps = event.steps as f64;
        for (r, &alpha) in self.rdp.iter_mut().zip(&self.orders) {
            *r += steps
                * rdp_poisson_subsampled_gaussian(
                    event.sampling_rate,
                    event.noise_multiplier,
                    alpha,
                );
        }
        Ok(())
    }

    /// Smallest epsilon over the orders for the given delta, as `dp-accounting` computes it.
    pub fn epsilon(&self, delta: f64) -> Result<f64, PrivacyError> {
        Ok(compute_epsilon(&self.orders, &self.rdp, delta)?.0)
    }
}

/// RDP at order `alpha` of one step of the Poisson-subsampled Gaussian mechanism.
pub fn rdp_poisson_subsampled_gaussian(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    if alpha.is_infinite() || sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * sigma * sigma);
    }
    let log_a = if alpha.fract() == 0.0 {
        log_a_int(q, sigma, alpha as u64)
    } else {
        log_a_frac(q, sigma, alpha)
    };
    log_a / (alpha - 1.0)
}

/// Converts RDP to `(epsilon, optimal order)` for a target delta (dp-accounting's
/// `compute_epsilon`).
pub fn compute_epsilon(
    orders: &[f64],
    rdp: &[f64],
    delta: f64,
) -> Result<(f64, f64), PrivacyError> {
    if delta.is_nan() || delta < 0.0 {
        return Err(PrivacyError::InvalidParameter(format!("delta must be >= 0, got {delta}")));
    }
    if delta == 0.0 {
        return Ok(if rdp.iter().all(|&r| r == 0.0) { (0.0, 0.0) } else { (f64::INFINITY, 0.0) });
    }
    if orders.len() != rdp.len() || orders.is_empty() {
        return Err(PrivacyError::InvalidParameter(
            "orders and rdp must be non-empty and of the same length".into(),
        ));
    }
    let mut best = (f64::INFINITY, orders[0]);
    for (&a, &r) in orders.iter().zip(rdp) {
        if a < 1.0 {
            return Err(PrivacyError::InvalidParameter(format!(
                "Rényi order must be at least 1, got {a}"
            )));
        }
        // Negative RDP (numerical noise) or the KL shortcut: epsilon 0.
        let eps = if r < 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        // np.argmin keeps the first minimum; so does a strict comparison. NaN never wins.
        if eps < best.0 {
            best = (eps, a);
        }
    }
    Ok((best.0.max(0.0), best.1))
}

/// Smallest noise multiplier whose epsilon after `steps` steps at rate `q` is at most
/// `target_epsilon` for `delta`, to a relative precision of 1e-6 on sigma.
pub fn solve_noise_multiplier(
    target_epsilon: f64,
    delta: f64,
    sampling_rate: f64,
    steps: u64,
) -> Result<f64, PrivacyError> {
    if !(target_epsilon.is_finite() && target_epsilon > 0.0) {
        return Err(PrivacyError::InvalidParameter(format!(
            "target epsilon must be finite and > 0, got {target_epsilon}"
        )));
    }
    if !(delta > 0.0 && delta < 1.0) {
        return Err(PrivacyError::InvalidParameter(format!(
            "delta must be in (0, 1), got {delta}"
        )));
    }
    let eps_at = |sigma: f64| {
        SubsampledGaussian { sampling_rate, noise_multiplier: sigma, steps }.epsilon(delta)
    };
    // Bracket: eps is non-increasing in sigma.
    let mut hi = 1.0;
    let mut guard = 0;
    while eps_at(hi)? > target_epsilon {
        hi *= 2.0;
        guard += 1;
        if guard > 40 {
            return Err(PrivacyError::InvalidParameter(format!(
                "no noise multiplier reaches epsilon {target_epsilon} (delta {delta}, q {sampling_rate}, steps {steps})"
            )));
        }
    }
    let mut lo = 0.0;
    while hi - lo > 1e-6 * hi {
        let mid = 0.5 * (lo + hi);
        if eps_at(mid)? > target_epsilon {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(hi)
}

fn log_add(logx: f64, logy: f64) -> f64 {
    let (a, b) = if logx < logy { (logx, logy) } else { (logy, logx) };
    if a == f64::NEG_INFINITY {
        return b;
    }
    (a - b).exp().ln_1p() + b
}

/// `ln |Gamma(x)|`, as scipy's `gammaln`.
fn gammaln(x: f64) -> f64 {
    libm::lgamma_r(x).0
}

fn log_comb(n: f64, k: f64) -> f64 {
    gammaln(n + 1.0) - gammaln(k + 1.0) - gammaln(n - k + 1.0)
}

fn log_a_int(q: f64, sigma: f64, alpha: u64) -> f64 {
    let mut log_a = f64::NEG_INFINITY;
    let log1mq = (-q).ln_1p();
    let logq = q.ln();
    let a = alpha as f64;
    for i in 0..=alpha {
        let fi = i as f64;
        let log_coef_i = log_comb(a, fi) + fi * logq + (a - fi) * log1mq;
        let s = log_coef_i + (fi * fi - fi) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
    }
    log_a
}

fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    let logq = q.ln();
    let sqrt2 = std::f64::consts::SQRT_2;
    let mut last_s0 = f64::NEG_INFINITY;
    let mut last_s1 = f64::NEG_INFINITY;
    for i in 0..MAX_STEPS_LOG_A_FRAC {
        let fi = i as f64;
        let log_coef = log_comb(alpha, fi);
        let j = alpha - fi;
        let log_t0 = log_coef + fi * logq + j * log1mq;
        let log_t1 = log_coef + j * logq + fi * log1mq;
        let log_e0 = 0.5f64.ln() + log_erfc((fi - z0) / (sqrt2 * sigma));
        let log_e1 = 0.5f64.ln() + log_erfc((z0 - j) / (sqrt2 * sigma));
        let log_s0 = log_t0 + (fi * fi - fi) / (2.0 * sigma * sigma) + log_e0;
        let log_s1 = log_t1 + (j * j - j) / (2.0 * sigma * sigma) + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    tracing::warn!(q, sigma, alpha, "fractional RDP series did not converge; excluding this order");
    f64::INFINITY
}

/// `ln(erfc(x))`, accurate in the far tail (Laurent series once erfc underflows).
fn log_erfc(x: f64) -> f64 {
    let r = libm::erfc(x);
    if r > 0.0 {
        r.ln()
    } else {
        let pi = std::f64::consts::PI;
        -pi.ln() / 2.0 - x.ln() - x * x - 0.5 * x.powi(-2) + 0.625 * x.powi(-4)
            - 37.0 / 24.0 * x.powi(-6)
            + 353.0 / 64.0 * x.powi(-8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_match_dp_accounting() {
        let o = default_orders();
        assert_eq!(o.len(), 99 + 53 + 4);
        assert_eq!(o[0], 1.1);
        assert_eq!(o[9], 2.0);
        assert_eq!(o[98], 10.9);
        assert_eq!(o[99], 11.0);
        assert_eq!(o[151], 63.0);
        assert_eq!(&o[152..], &[128.0, 256.0, 512.0, 1024.0]);
    }

    #[test]
    fn full_batch_gaussian_has_closed_form_rdp() {
        // q = 1: RDP(alpha) = alpha / (2 sigma^2).
        assert!((rdp_poisson_subsampled_gaussian(1.0, 2.0, 3.0) - 3.0 / 8.0).abs() < 1e-15);
        assert_eq!(rdp_poisson_subsampled_gaussian(0.0, 2.0, 3.0), 0.0);
    }

    #[test]
    fn integer_and_fractional_series_agree_near_integer_orders() {
        // The fractional series evaluated at alpha close to an integer must approach the
        // integer sum (continuity of A_alpha in alpha).
        for &(q, s) in &[(0.01, 1.0), (0.05, 2.0), (0.001, 0.7)] {
            let int = log_a_int(q, s, 4);
            let frac = log_a_frac(q, s, 4.0 + 1e-7);
            assert!((int - frac).abs() < 1e-5 * int.abs().max(1e-12), "{q} {s}: {int} vs {frac}");
        }
    }

    #[test]
    fn epsilon_decreases_with_noise_and_solver_inverts_it() {
        let e1 = SubsampledGaussian { sampling_rate: 0.01, noise_multiplier: 1.0, steps: 1000 }
            .epsilon(1e-5)
            .unwrap();
        let e2 = SubsampledGaussian { sampling_rate: 0.01, noise_multiplier: 2.0, steps: 1000 }
            .epsilon(1e-5)
            .unwrap();
        assert!(e2 < e1);
        let sigma = solve_noise_multiplier(1.0, 1e-5, 0.01, 1000).unwrap();
        let e = SubsampledGaussian { sampling_rate: 0.01, noise_multiplier: sigma, steps: 1000 }
            .epsilon(1e-5)
            .unwrap();
        assert!(e <= 1.0 && e > 0.99, "sigma {sigma} gives eps {e}");
        let e_less =
            SubsampledGaussian { sampling_rate: 0.01, noise_multiplier: sigma * 0.99, steps: 1000 }
                .epsilon(1e-5)
                .unwrap();
        assert!(e_less > 1.0);
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(
            SubsampledGaussian { sampling_rate: 1.5, noise_multiplier: 1.0, steps: 1 }
                .epsilon(1e-5)
                .is_err()
        );
        assert!(
            SubsampledGaussian { sampling_rate: 0.1, noise_multiplier: -1.0, steps: 1 }
                .epsilon(1e-5)
                .is_err()
        );
        assert!(solve_noise_multiplier(0.0, 1e-5, 0.01, 10).is_err());
        assert!(solve_noise_multiplier(1.0, 0.0, 0.01, 10).is_err());
    }
}
