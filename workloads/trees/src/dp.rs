//! Differential-privacy building blocks shared by the private tree models.
//!
//! # Randomness
//! Every mechanism takes its randomness from a caller-supplied generator bounded by
//! [`rand::CryptoRng`]: noise drawn from a predictable generator can be subtracted by anyone who
//! can reproduce the stream, which voids the guarantee. Production code passes [`secure_rng`]
//! (ChaCha20 seeded from the operating system's entropy); tests pass
//! `ChaCha20Rng::seed_from_u64(seed)` to be reproducible. A seeded generator must never be used
//! for a real release.
//!
//! # Unit of privacy
//! Neighbouring datasets differ by adding or removing one session record. A user with several
//! sessions is protected for each session separately (group privacy: `k` sessions get `k * eps`).
//!
//! # Accounting
//! The tree trainers account in zero-concentrated DP (zCDP, Bun and Steinke 2016): the Gaussian
//! mechanism with L2 sensitivity `s` and noise `sigma` is `s^2 / (2 sigma^2)`-zCDP; the
//! exponential mechanism with parameter `eps` is `eps`-bounded-range and hence
//! `eps^2 / 8`-zCDP (Cesar and Rogers 2021, Lemma 3.2); zCDP adds up under (adaptive)
//! composition, and mechanisms on disjoint rows compose in parallel (the maximum). A total
//! `rho` gives `(rho + 2 sqrt(rho ln(1/delta)), delta)`-DP (Bun and Steinke, Prop. 1.3);
//! [`zcdp_rho`] inverts that to calibrate a target `(epsilon, delta)`.
//!
//! # Floating point
//! The Laplace, Gaussian and Gumbel samplers use floating-point transforms of 53-bit uniforms.
//! Like most libraries (and unlike snapping or discrete samplers), this does not defend against
//! the floating-point attacks of Mironov (2012); [`discrete_laplace`] is integer-valued.

use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};

/// The privacy a release spends, computable from its configuration alone (before any data is
/// read), so a budget can be charged first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrivacyCost {
    /// Epsilon of the whole release.
    pub epsilon: f64,
    /// Delta of the whole release (0 for pure epsilon-DP).
    pub delta: f64,
    /// Name of the mechanism, e.g. [`crate::dp_forest::MECHANISM`].
    pub mechanism: String,
}

/// A cryptographically secure generator seeded from the operating system: the one to use for
/// real releases.
pub fn secure_rng() -> ChaCha20Rng {
    ChaCha20Rng::from_os_rng()
}

/// A uniform draw in the open interval `(0, 1)`.
fn open01<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    loop {
        let u: f64 = rng.random();
        if u > 0.0 {
            return u;
        }
    }
}

/// A Laplace(0, `scale`) draw: density `exp(-|x|/scale) / (2 scale)`. Adding it to a statistic
/// of L1 sensitivity `s` with `scale = s / eps` is eps-DP.
pub fn laplace<R: Rng + CryptoRng + ?Sized>(rng: &mut R, scale: f64) -> f64 {
    // Exponential(1) with a random sign.
    let e = -open01(rng).ln();
    if rng.random::<bool>() { scale * e } else { -scale * e }
}

/// A two-sided geometric (discrete Laplace) draw with `P(k) ∝ exp(-eps |k|)`. Adding it to an
/// integer count of sensitivity 1 is eps-DP (Ghosh, Roughgarden, Sundararajan 2009).
pub fn discrete_laplace<R: Rng + CryptoRng + ?Sized>(rng: &mut R, epsilon: f64) -> i64 {
    // Difference of two i.i.d. geometric variables on {0, 1, ...} with P(k) = (1-a) a^k,
    // a = exp(-eps).
    let ln_a = -epsilon;
    let geo = |rng: &mut R| (open01(rng).ln() / ln_a).floor() as i64;
    geo(rng) - geo(rng)
}

/// A Normal(0, `sigma`^2) draw (Box-Muller on the secure generator).
pub fn gaussian<R: Rng + CryptoRng + ?Sized>(rng: &mut R, sigma: f64) -> f64 {
    let u1 = open01(rng);
    let u2: f64 = rng.random();
    sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The zCDP budget `rho` whose conversion `rho + 2 sqrt(rho ln(1/delta))` equals `epsilon`:
/// `rho = (sqrt(ln(1/delta) + epsilon) - sqrt(ln(1/delta)))^2`.
pub fn zcdp_rho(epsilon: f64, delta: f64) -> f64 {
    let l = (1.0 / delta).ln();
    let r = (l + epsilon).sqrt() - l.sqrt();
    r * r
}

/// The epsilon of `rho`-zCDP at `delta`: `rho + 2 sqrt(rho ln(1/delta))`.
pub fn zcdp_epsilon(rho: f64, delta: f64) -> f64 {
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// A standard Gumbel draw.
pub fn gumbel<R: Rng + CryptoRng + ?Sized>(rng: &mut R) -> f64 {
    -(-open01(rng).ln()).ln()
}

/// The exponential mechanism (McSherry and Talwar 2007): picks index `i` with probability
/// proportional to `exp(eps * u_i / (2 * sensitivity))`, which is eps-DP when each utility has
/// sensitivity `sensitivity`. Implemented exactly by the Gumbel-max trick. `None` when
/// `utilities` is empty.
pub fn exponential_mechanism<R: Rng + CryptoRng + ?Sized>(
    rng: &mut R,
    utilities: &[f64],
    epsilon: f64,
    sensitivity: f64,
) -> Option<usize> {
    let scale = epsilon / (2.0 * sensitivity);
    let mut best: Option<(usize, f64)> = None;
    for (i, &u) in utilities.iter().enumerate() {
        let score = scale * u + gumbel(rng);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

/// The exponential mechanism over a data-independent base measure: picks `i` with probability
/// proportional to `exp(log_prior_i + eps * u_i / (2 * sensitivity))`. The base measure does
/// not depend on the data, so the guarantee is that of [`exponential_mechanism`] (eps-DP).
pub fn exponential_mechanism_with_prior<R: Rng + CryptoRng + ?Sized>(
    rng: &mut R,
    utilities: &[f64],
    log_prior: &[f64],
    epsilon: f64,
    sensitivity: f64,
) -> Option<usize> {
    let scale = epsilon / (2.0 * sensitivity);
    let mut best: Option<(usize, f64)> = None;
    for (i, (&u, &lp)) in utilities.iter().zip(log_prior).enumerate() {
        let score = lp + scale * u + gumbel(rng);
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}
