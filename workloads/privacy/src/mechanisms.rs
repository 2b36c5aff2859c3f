//! Additive-noise mechanisms with explicit sensitivity calibration.
//!
//! * [`Laplace`]: for a query `f` with L1 sensitivity `Δ1 = max |f(D) - f(D')|_1` over
//!   neighbouring datasets (one user's records added or removed), releasing
//!   `f(D) + Lap(Δ1 / ε)` is `ε`-DP (Dwork, McSherry, Nissim & Smith 2006).
//! * [`Gaussian`]: for L2 sensitivity `Δ2`, releasing `f(D) + N(0, σ²)` is `(ε, δ)`-DP when
//!   `Φ(Δ2/(2σ) - εσ/Δ2) - e^ε Φ(-Δ2/(2σ) - εσ/Δ2) ≤ δ` (the analytic Gaussian mechanism,
//!   Balle & Wang 2018, Theorem 8). We solve for the smallest such `σ` by bisection; it is
//!   never larger than the classical `Δ2 √(2 ln(1.25/δ)) / ε` (which only holds for `ε < 1`).
//!
//! # Randomness
//! Noise is drawn from [`DpRng`], a ChaCha20 stream cipher RNG (cryptographically secure)
//! seeded from the operating system (`getrandom`) in production, or from a fixed seed in tests.
//! We use `rand`/`rand_distr` rather than OpenDP to keep the build light (OpenDP 0.16 needs
//! OpenSSL and a long compile on our 2-core CI).
//!
//! # Floating-point caveat
//! Like every textbook implementation over IEEE doubles, these samplers are vulnerable to the
//! attack of Mironov (2012, "On significance of the least significant bits for differential
//! privacy"): the set of representable outputs depends on the true value, which can leak it in
//! the low-order bits. OpenDP's discrete / snapping samplers close that gap. Our releases are
//! model parameters and aggregate statistics computed inside the pipeline, never an interactive
//! query interface an adversary can probe repeatedly, which limits the practical risk; the
//! guarantee we state is the idealised real-valued one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::PrivacyError;

/// Cryptographically secure RNG for DP noise (ChaCha20).
#[derive(Debug, Clone)]
pub struct DpRng(ChaCha20Rng);

impl DpRng {
    /// Seeded from the operating system's entropy source: use this for real releases.
    pub fn from_os() -> Self {
        Self(ChaCha20Rng::from_os_rng())
    }

    /// Deterministic stream for tests and reproducible experiments (NOT for real releases).
    pub fn seeded(seed: u64) -> Self {
        Self(ChaCha20Rng::seed_from_u64(seed))
    }

    /// A standard normal draw.
    pub fn standard_normal(&mut self) -> f64 {
        StandardNormal.sample(&mut self.0)
    }

    /// A standard Laplace draw (scale 1): the difference of two independent Exp(1) variables.
    pub fn standard_laplace(&mut self) -> f64 {
        // 1 - U with U in [0, 1) lies in (0, 1], so the logarithm is finite.
        let e1 = -(1.0 - self.0.random::<f64>()).ln();
        let e2 = -(1.0 - self.0.random::<f64>()).ln();
        e1 - e2
    }

    /// Uniform draw in `[0, 1)`.
    pub fn uniform(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// Access to the underlying RNG (for Poisson sampling in DP-SGD).
    pub fn inner(&mut self) -> &mut ChaCha20Rng {
        &mut self.0
    }
}

/// The Laplace mechanism: `ε`-DP for a query of L1 sensitivity `Δ1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Laplace {
    /// L1 sensitivity of the query.
    pub sensitivity: f64,
    /// Privacy parameter.
    pub epsilon: f64,
}

impl Laplace {
    /// Validates the parameters (both finite and positive).
    pub fn new(sensitivity: f64, epsilon: f64) -> Result<Self, PrivacyError> {
        positive("sensitivity", sensitivity)?;
        positive("epsilon", epsilon)?;
        Ok(Self { sensitivity, epsilon })
    }

    /// Noise scale `b = Δ1 / ε`.
    pub fn scale(&self) -> f64 {
        self.sensitivity / self.epsilon
    }

    /// `value + Lap(b)`.
    pub fn release(&self, value: f64, rng: &mut DpRng) -> f64 {
        value + self.scale() * rng.standard_laplace()
    }

    /// Adds independent noise to each coordinate (the sensitivity must be the L1 sensitivity
    /// of the whole vector).
    pub fn release_vec(&self, values: &mut [f64], rng: &mut DpRng) {
        let b = self.scale();
        for v in values {
            *v += b * rng.standard_laplace();
        }
    }
}

/// The analytic Gaussian mechanism: `(ε, δ)`-DP for a query of L2 sensitivity `Δ2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gaussian {
    /// L2 sensitivity of the query.
    pub sensitivity: f64,
    /// Privacy parameter epsilon.
    pub epsilon: f64,
    /// Privacy parameter delta.
    pub delta: f64,
    sigma: f64,
}

impl Gaussian {
    /// Calibrates the smallest noise standard deviation for `(ε, δ)` and `Δ2`.
    pub fn new(sensitivity: f64, epsilon: f64, delta: f64) -> Result<Self, PrivacyError> {
        positive("sensitivity", sensitivity)?;
        positive("epsilon", epsilon)?;
        if !(delta > 0.0 && delta < 1.0) {
            return Err(PrivacyError::InvalidParameter(format!(
                "delta must be in (0, 1), got {delta}"
            )));
        }
        let sigma = analytic_gaussian_sigma(sensitivity, epsilon, delta);
        Ok(Self { sensitivity, epsilon, delta, sigma })
    }

    /// Noise standard deviation.
    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    /// `value + N(0, σ²)`.
    pub fn release(&self, value: f64, rng: &mut DpRng) -> f64 {
        value + self.sigma * rng.standard_normal()
    }

    /// Adds independent noise to each coordinate (L2 sensitivity of the whole vector).
    pub fn release_vec(&self, values: &mut [f64], rng: &mut DpRng) {
        for v in values {
            *v += self.sigma * rng.standard_normal();
        }
    }
}

/// Exact `δ(ε)` of the Gaussian mechanism with std `sigma` and sensitivity `sensitivity`
/// (Balle & Wang 2018, Theorem 8).
pub fn gaussian_delta(sensitivity: f64, sigma: f64, epsilon: f64) -> f64 {
    let a = sensitivity / (2.0 * sigma);
    let b = epsilon * sigma / sensitivity;
    // Second term computed in log space to avoid overflow of e^ε for large ε.
    let t2 = (epsilon + log_phi(-a - b)).exp();
    (phi(a - b) - t2).max(0.0)
}

fn analytic_gaussian_sigma(sensitivity: f64, epsilon: f64, delta: f64) -> f64 {
    // delta(sigma) is decreasing in sigma; bracket then bisect.
    let mut hi = sensitivity;
    while gaussian_delta(sensitivity, hi, epsilon) > delta {
        hi *= 2.0;
    }
    let mut lo = 0.0;
    while hi - lo > 1e-10 * hi {
        let mid = 0.5 * (lo + hi);
        if mid == 0.0 || gaussian_delta(sensitivity, mid, epsilon) > delta {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

fn phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn log_phi(x: f64) -> f64 {
    let p = phi(x);
    if p > 0.0 {
        p.ln()
    } else {
        // Asymptotic tail: Phi(x) ~ phi(x)/|x| (1 - 1/x^2 + 3/x^4) for x -> -inf.
        let ax = -x;
        -0.5 * ax * ax - ax.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln()
            + (1.0 - ax.powi(-2) + 3.0 * ax.powi(-4)).ln()
    }
}

fn positive(name: &str, v: f64) -> Result<(), PrivacyError> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(PrivacyError::InvalidParameter(format!("{name} must be finite and > 0, got {v}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    #[test]
    fn laplace_noise_has_the_calibrated_scale() {
        let m = Laplace::new(2.0, 0.5).unwrap();
        assert_eq!(m.scale(), 4.0);
        let mut rng = DpRng::seeded(1);
        let xs: Vec<f64> = (0..200_000).map(|_| m.release(10.0, &mut rng)).collect();
        let (mean, var) = moments(&xs);
        // Var(Lap(b)) = 2 b^2 = 32; std error of the mean ~ sqrt(32/2e5) = 0.013.
        assert!((mean - 10.0).abs() < 0.06, "mean {mean}");
        assert!((var / 32.0 - 1.0).abs() < 0.03, "var {var}");
        // Mean absolute deviation of Lap(b) is b.
        let mad = xs.iter().map(|x| (x - 10.0).abs()).sum::<f64>() / xs.len() as f64;
        assert!((mad / 4.0 - 1.0).abs() < 0.02, "mad {mad}");
    }

    #[test]
    fn gaussian_sigma_is_the_smallest_meeting_delta() {
        for &(eps, delta) in &[(0.1, 1e-5), (1.0, 1e-5), (4.0, 1e-6), (10.0, 1e-5)] {
            let g = Gaussian::new(1.0, eps, delta).unwrap();
            let s = g.sigma();
            assert!(gaussian_delta(1.0, s, eps) <= delta * (1.0 + 1e-9));
            assert!(gaussian_delta(1.0, s * 0.999, eps) > delta, "eps {eps}: sigma {s} not tight");
            if eps < 1.0 {
                let classical = (2.0 * (1.25f64 / delta).ln()).sqrt() / eps;
                assert!(s <= classical, "analytic {s} > classical {classical}");
            }
        }
        // Linear in the sensitivity.
        let a = Gaussian::new(1.0, 1.0, 1e-5).unwrap().sigma();
        let b = Gaussian::new(3.0, 1.0, 1e-5).unwrap().sigma();
        assert!((b / a - 3.0).abs() < 1e-7);
    }

    #[test]
    fn gaussian_noise_has_the_calibrated_std() {
        let g = Gaussian::new(1.0, 1.0, 1e-5).unwrap();
        let mut rng = DpRng::seeded(2);
        let xs: Vec<f64> = (0..200_000).map(|_| g.release(0.0, &mut rng)).collect();
        let (mean, var) = moments(&xs);
        assert!(mean.abs() < 0.05);
        assert!((var.sqrt() / g.sigma() - 1.0).abs() < 0.01);
    }

    #[test]
    fn seeded_rng_is_reproducible_and_os_rng_is_not_constant() {
        let mut a = DpRng::seeded(9);
        let mut b = DpRng::seeded(9);
        assert_eq!(a.standard_normal(), b.standard_normal());
        let mut o1 = DpRng::from_os();
        let mut o2 = DpRng::from_os();
        assert_ne!(o1.uniform(), o2.uniform());
    }

    #[test]
    fn invalid_parameters_are_rejected() {
        assert!(Laplace::new(0.0, 1.0).is_err());
        assert!(Laplace::new(1.0, f64::NAN).is_err());
        assert!(Gaussian::new(1.0, 1.0, 0.0).is_err());
        assert!(Gaussian::new(1.0, -1.0, 1e-5).is_err());
    }
}
