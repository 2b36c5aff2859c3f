//! Training: non-private minibatch Adam, and DP-SGD (Abadi et al. 2016) with Adam updates.
//!
//! # DP-SGD as implemented
//! Each step `t = 1..T`:
//! 1. **Poisson sampling**: every training example joins the batch independently with
//!    probability `q` (so the batch size is random, as the RDP accountant assumes).
//! 2. **Per-example gradients, clipped**: for example `i`, `g_i` is the gradient of its loss
//!    w.r.t. all parameters; it is scaled by `min(1, C / ||g_i||_2)`. We compute the
//!    per-example norms exactly without materialising `g_i`: for a dense layer
//!    `z = a W + b`, `dL_i/dW = a_i^T δ_i` and `dL_i/db = δ_i`, so
//!    `||g_i||² = Σ_layers (||a_i||² + 1) ||δ_i||²` (Goodfellow 2015), where the
//!    per-example `δ_i` come from one backward pass of the summed loss through zero "probe"
//!    variables added to each layer's pre-activations. The clipped sum is then
//!    `A^T (c ⊙ Δ)` per layer. A test checks this against per-example backward passes.
//! 3. **Noise**: `N(0, σ² C²)` independently on every coordinate of the summed clipped
//!    gradient, drawn from the ChaCha20 CSPRNG ([`shopstream_privacy::DpRng`]).
//! 4. Divide by the *expected* batch size `q N` and take an Adam step (post-processing).
//!
//! The L2 sensitivity of the summed clipped gradient to adding/removing one example is `C`,
//! so each step is the subsampled Gaussian mechanism with noise multiplier `σ`; `T` steps are
//! accounted by [`shopstream_privacy::rdp`]. `σ`, `q`, `T` and `C` are read from ONE
//! [`DpSgdConfig`] by both the trainer and the accountant ([`DpSgdConfig::cost`]). The
//! training set size `N` (used only in `q N`) is treated as public, as in Opacus/TF-Privacy.

use candle_core::{DType, Device, Tensor, Var};
use ndarray::Array2;
use rand::Rng;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use shopstream_privacy::{Cost, DpRng, SubsampledGaussian, solve_noise_multiplier};

use crate::MlpError;
use crate::model::{MlpModel, Network, Scaling, bce_with_logits_sum, row_sq_norms};

/// Architecture and optimiser settings shared by both trainers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpConfig {
    /// Hidden layer widths, e.g. `[64, 32]`.
    pub hidden: Vec<usize>,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Epochs (non-private trainer only; DP-SGD uses `steps`).
    pub epochs: usize,
    /// Minibatch size (non-private trainer only).
    pub batch_size: usize,
    /// Seed of the (data-independent) weight initialisation and of the non-private shuffling.
    pub seed: u64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: vec![64, 32], learning_rate: 2e-3, epochs: 12, batch_size: 128, seed: 7 }
    }
}

impl MlpConfig {
    /// Rejects empty or zero-width settings.
    pub fn validate(&self) -> Result<(), MlpError> {
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(MlpError::Config("hidden layers must be non-empty with widths > 0".into()));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(MlpError::Config(format!(
                "learning rate must be > 0, got {}",
                self.learning_rate
            )));
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(MlpError::Config("epochs and batch size must be > 0".into()));
        }
        Ok(())
    }
}

/// The DP-SGD parameters. The SAME struct drives the noise in training and the accountant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpSgdConfig {
    /// Per-example L2 clipping norm `C`.
    pub clip_norm: f64,
    /// Noise multiplier `σ` (noise std = `σ C`).
    pub noise_multiplier: f64,
    /// Poisson sampling rate `q`.
    pub sampling_rate: f64,
    /// Number of steps `T`.
    pub steps: u64,
    /// Target delta.
    pub delta: f64,
}

impl DpSgdConfig {
    /// Solves the smallest `σ` reaching `epsilon` at `delta` for the given `q` and `T`.
    pub fn for_target_epsilon(
        epsilon: f64,
        delta: f64,
        sampling_rate: f64,
        steps: u64,
        clip_norm: f64,
    ) -> Result<Self, MlpError> {
        let noise_multiplier = solve_noise_multiplier(epsilon, delta, sampling_rate, steps)?;
        let cfg = Self { clip_norm, noise_multiplier, sampling_rate, steps, delta };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Range checks.
    pub fn validate(&self) -> Result<(), MlpError> {
        if !(self.clip_norm > 0.0 && self.clip_norm.is_finite()) {
            return Err(MlpError::Config(format!("clip norm must be > 0, got {}", self.clip_norm)));
        }
        if !(self.sampling_rate > 0.0 && self.sampling_rate <= 1.0) {
            return Err(MlpError::Config(format!(
                "sampling rate must be in (0, 1], got {}",
                self.sampling_rate
            )));
        }
        if !(self.noise_multiplier > 0.0 && self.noise_multiplier.is_finite()) {
            return Err(MlpError::Config(format!(
                "noise multiplier must be > 0, got {}",
                self.noise_multiplier
            )));
        }
        if self.steps == 0 || !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(MlpError::Config("steps must be > 0 and delta in (0, 1)".into()));
        }
        Ok(())
    }

    /// The mechanism the accountant composes (from this very struct).
    pub fn accounting(&self) -> SubsampledGaussian {
        SubsampledGaussian {
            sampling_rate: self.sampling_rate,
            noise_multiplier: self.noise_multiplier,
            steps: self.steps,
        }
    }

    /// The `(ε, δ)` this configuration costs, computable before touching data.
    pub fn cost(&self) -> Result<Cost, MlpError> {
        let eps = self.accounting().epsilon(self.delta)?;
        Ok(Cost::new(eps, self.delta)?)
    }

    /// Standard deviation of the noise added to the summed clipped gradient: `σ C`.
    pub fn noise_std(&self) -> f64 {
        self.noise_multiplier * self.clip_norm
    }
}

/// What one DP-SGD step did (for monitoring and for the noise-equals-accounting test).
#[derive(Debug, Clone, PartialEq)]
pub struct DpStepInfo {
    /// Step index, from 0.
    pub step: u64,
    /// Poisson batch size this step.
    pub batch_size: usize,
    /// Std of the Gaussian the noise was drawn from (`σ C` from the config).
    pub noise_std: f64,
    /// Empirical std of the noise vector actually added this step.
    pub noise_sample_std: f64,
    /// Number of noise coordinates drawn (= number of parameters).
    pub noise_len: usize,
    /// Fraction of examples whose gradient was clipped.
    pub clipped_fraction: f64,
}

struct Adam {
    lr: f64,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl Adam {
    const B1: f64 = 0.9;
    const B2: f64 = 0.999;
    const EPS: f64 = 1e-8;

    fn new(params: &[&Var], lr: f64) -> Result<Self, MlpError> {
        let m = params.iter().map(|p| p.zeros_like()).collect::<Result<Vec<_>, _>>()?;
        let v = params.iter().map(|p| p.zeros_like()).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { lr, m, v, t: 0 })
    }

    fn step(&mut self, params: &[&Var], grads: &[Tensor]) -> Result<(), MlpError> {
        self.t += 1;
        let bc1 = 1.0 - Self::B1.powi(self.t);
        let bc2 = 1.0 - Self::B2.powi(self.t);
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            self.m[i] = ((&self.m[i] * Self::B1)? + (g * (1.0 - Self::B1))?)?;
            self.v[i] = ((&self.v[i] * Self::B2)? + (g.sqr()? * (1.0 - Self::B2))?)?;
            let mhat = (&self.m[i] / bc1)?;
            let vhat = (&self.v[i] / bc2)?;
            let update = (mhat / (vhat.sqrt()? + Self::EPS)?)?;
            p.set(&(p.as_tensor() - (update * self.lr)?)?)?;
        }
        Ok(())
    }
}

fn check_data(x: &Array2<f64>, y: &[f64], scaling: &Scaling) -> Result<(), MlpError> {
    if x.nrows() != y.len() {
        return Err(MlpError::Shape(format!("{} rows but {} labels", x.nrows(), y.len())));
    }
    if x.nrows() == 0 {
        return Err(MlpError::Shape("no training rows".into()));
    }
    if scaling.width() != x.ncols() {
        return Err(MlpError::Shape(format!(
            "scaling has {} columns, data has {}",
            scaling.width(),
            x.ncols()
        )));
    }
    if y.iter().any(|&v| v != 0.0 && v != 1.0) {
        return Err(MlpError::Shape("labels must be 0 or 1".into()));
    }
    Ok(())
}

fn sizes(cfg: &MlpConfig, width: usize) -> Vec<usize> {
    let mut s = vec![width];
    s.extend(&cfg.hidden);
    s.push(1);
    s
}

fn to_tensors(x: &Array2<f64>, y: &[f64], scaling: &Scaling) -> Result<(Tensor, Tensor), MlpError> {
    let xs = Tensor::from_vec(scaling.apply_matrix(x)?, (x.nrows(), x.ncols()), &Device::Cpu)?;
    let ys = Tensor::from_vec(
        y.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        (y.len(), 1),
        &Device::Cpu,
    )?;
    Ok((xs, ys))
}

/// Non-private training: shuffled minibatches, mean BCE loss, Adam.
pub fn train(
    x: &Array2<f64>,
    y: &[f64],
    cfg: &MlpConfig,
    scaling: Scaling,
) -> Result<MlpModel, MlpError> {
    cfg.validate()?;
    check_data(x, y, &scaling)?;
    let net = Network::init(&sizes(cfg, x.ncols()), cfg.seed)?;
    let (xs, ys) = to_tensors(x, y, &scaling)?;
    let params = net.params();
    let mut adam = Adam::new(&params, cfg.learning_rate)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    let mut order: Vec<u32> = (0..x.nrows() as u32).collect();
    for epoch in 0..cfg.epochs {
        order.shuffle(&mut rng);
        let mut total = 0.0;
        for chunk in order.chunks(cfg.batch_size) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &Device::Cpu)?;
            let xb = xs.index_select(&idx, 0)?;
            let yb = ys.index_select(&idx, 0)?;
            let (logits, _) = net.forward(&xb, None)?;
            let loss = (bce_with_logits_sum(&logits, &yb)? / chunk.len() as f64)?;
            total += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
            let grads = loss.backward()?;
            let g = params
                .iter()
                .map(|p| grads.get(p.as_tensor()).cloned().map_or_else(|| p.zeros_like(), Ok))
                .collect::<Result<Vec<_>, _>>()?;
            adam.step(&params, &g)?;
        }
        tracing::debug!(epoch, loss = total / x.nrows() as f64, "mlp epoch");
    }
    net.to_model(scaling)
}

/// Summed clipped per-example gradients of a batch (in parameter order w0, b0, w1, b1, ...),
/// and the number of clipped examples.
pub(crate) fn clipped_gradient_sum(
    net: &Network,
    xb: &Tensor,
    yb: &Tensor,
    clip: f64,
) -> Result<(Vec<Tensor>, usize), MlpError> {
    let b = xb.dim(0)?;
    let layers = net.weights.len();
    let probes = (0..layers)
        .map(|l| Var::zeros((b, net.sizes[l + 1]), DType::F32, &Device::Cpu))
        .collect::<Result<Vec<_>, _>>()?;
    let (logits, inputs) = net.forward(xb, Some(&probes))?;
    let loss = bce_with_logits_sum(&logits, yb)?;
    let grads = loss.backward()?;
    let mut deltas = Vec::with_capacity(layers);
    let mut norm2 = Tensor::zeros(b, DType::F32, &Device::Cpu)?;
    for l in 0..layers {
        let delta =
            grads.get(probes[l].as_tensor()).cloned().map_or_else(|| probes[l].zeros_like(), Ok)?;
        let a_norm = (row_sq_norms(&inputs[l].detach())? + 1.0)?;
        norm2 = (norm2 + (row_sq_norms(&delta)? * a_norm)?)?;
        deltas.push(delta);
    }
    let norms = norm2.sqrt()?.to_vec1::<f32>()?;
    let mut clipped = 0;
    let factors: Vec<f32> = norms
        .iter()
        .map(|&n| {
            let n = f64::from(n);
            if n > clip {
                clipped += 1;
                (clip / n) as f32
            } else {
                1.0
            }
        })
        .collect();
    let c = Tensor::from_vec(factors, (b, 1), &Device::Cpu)?;
    let mut out = Vec::with_capacity(2 * layers);
    for l in 0..layers {
        let scaled = deltas[l].broadcast_mul(&c)?;
        out.push(inputs[l].detach().t()?.matmul(&scaled)?);
        out.push(scaled.sum(0)?);
    }
    Ok((out, clipped))
}

/// DP-SGD training (see the module docs). `rng` supplies the Poisson sampling and the noise:
/// use [`DpRng::from_os`] for real releases. `on_step` is called after every step.
pub fn train_dp(
    x: &Array2<f64>,
    y: &[f64],
    cfg: &MlpConfig,
    dp: &DpSgdConfig,
    scaling: Scaling,
    rng: &mut DpRng,
    on_step: &mut dyn FnMut(&DpStepInfo),
) -> Result<MlpModel, MlpError> {
    cfg.validate()?;
    dp.validate()?;
    check_data(x, y, &scaling)?;
    let n = x.nrows();
    let net = Network::init(&sizes(cfg, x.ncols()), cfg.seed)?;
    let (xs, ys) = to_tensors(x, y, &scaling)?;
    let params = net.params();
    let shapes: Vec<Vec<usize>> = params.iter().map(|p| p.dims().to_vec()).collect();
    let mut adam = Adam::new(&params, cfg.learning_rate)?;
    let expected_batch = dp.sampling_rate * n as f64;
    let noise_std = dp.noise_std();
    for step in 0..dp.steps {
        let batch: Vec<u32> =
            (0..n as u32).filter(|_| rng.inner().random::<f64>() < dp.sampling_rate).collect();
        let (sums, clipped) = if batch.is_empty() {
            let zeros = params.iter().map(|p| p.zeros_like()).collect::<Result<Vec<_>, _>>()?;
            (zeros, 0)
        } else {
            let idx = Tensor::from_slice(&batch, batch.len(), &Device::Cpu)?;
            clipped_gradient_sum(
                &net,
                &xs.index_select(&idx, 0)?,
                &ys.index_select(&idx, 0)?,
                dp.clip_norm,
            )?
        };
        let mut grads = Vec::with_capacity(sums.len());
        let mut sq = 0.0;
        let mut count = 0usize;
        for (sum, shape) in sums.iter().zip(&shapes) {
            let len: usize = shape.iter().product();
            let noise: Vec<f32> = (0..len)
                .map(|_| {
                    let z = noise_std * rng.standard_normal();
                    sq += z * z;
                    z as f32
                })
                .collect();
            count += len;
            let noise = Tensor::from_vec(noise, shape.as_slice(), &Device::Cpu)?;
            grads.push(((sum + noise)? / expected_batch)?);
        }
        on_step(&DpStepInfo {
            step,
            batch_size: batch.len(),
            noise_std,
            noise_sample_std: (sq / count as f64).sqrt(),
            noise_len: count,
            clipped_fraction: if batch.is_empty() {
                0.0
            } else {
                clipped as f64 / batch.len() as f64
            },
        });
        adam.step(&params, &grads)?;
    }
    net.to_model(scaling)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize, seed: u64) -> (Array2<f64>, Vec<f64>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut x = Array2::zeros((n, 4));
        let mut y = Vec::with_capacity(n);
        for i in 0..n {
            for j in 0..4 {
                x[[i, j]] = rng.random::<f64>();
            }
            let score = 3.0 * x[[i, 0]] - 2.0 * x[[i, 1]] + 1.5 * x[[i, 2]] * x[[i, 3]] - 0.8;
            let p = 1.0 / (1.0 + (-4.0 * score).exp());
            y.push(if rng.random::<f64>() < p { 1.0 } else { 0.0 });
        }
        (x, y)
    }

    #[test]
    fn ghost_clipping_equals_per_example_backward() {
        let (x, y) = toy(16, 3);
        let cfg = MlpConfig { hidden: vec![8, 5], ..Default::default() };
        let net = Network::init(&sizes(&cfg, 4), 11).unwrap();
        let (xs, ys) = to_tensors(&x, &y, &Scaling::unit(4)).unwrap();
        let mut partially_clipped = false;
        for clip in [0.01, 0.05, 0.1, 0.3, 1.0, 10.0] {
            let (fast, clipped) = clipped_gradient_sum(&net, &xs, &ys, clip).unwrap();
            partially_clipped |= clipped > 0 && clipped < 16;

            // Reference: one backward pass per example, explicit norm and clipping.
            let params = net.params();
            let mut sums: Vec<Vec<f32>> =
                params.iter().map(|p| vec![0.0; p.elem_count()]).collect();
            let mut ref_clipped = 0;
            for i in 0..16 {
                let xi = xs.narrow(0, i, 1).unwrap();
                let yi = ys.narrow(0, i, 1).unwrap();
                let (logit, _) = net.forward(&xi, None).unwrap();
                let g = bce_with_logits_sum(&logit, &yi).unwrap().backward().unwrap();
                let gi: Vec<Vec<f32>> = params
                    .iter()
                    .map(|p| {
                        g.get(p.as_tensor())
                            .unwrap()
                            .flatten_all()
                            .unwrap()
                            .to_vec1::<f32>()
                            .unwrap()
                    })
                    .collect();
                let norm = gi.iter().flatten().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
                if norm > clip {
                    ref_clipped += 1;
                }
                let c = (clip / norm).min(1.0) as f32;
                for (s, g) in sums.iter_mut().zip(&gi) {
                    for (a, b) in s.iter_mut().zip(g) {
                        *a += c * b;
                    }
                }
            }
            assert_eq!(clipped, ref_clipped, "clip {clip}");
            for (f, s) in fast.iter().zip(&sums) {
                let f = f.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (a, b) in f.iter().zip(s) {
                    assert!((a - b).abs() < 1e-5 * (1.0 + b.abs()), "clip {clip}: {a} vs {b}");
                }
            }
        }
        assert!(partially_clipped, "no clip value bound for only some examples");
    }

    #[test]
    fn non_private_training_learns_a_toy_problem() {
        let (x, y) = toy(3000, 5);
        let cfg = MlpConfig { epochs: 30, ..Default::default() };
        let m = train(&x, &y, &cfg, Scaling::unit(4)).unwrap();
        let p = m.predict_proba(&x).unwrap();
        let acc =
            p.iter().zip(&y).filter(|(p, y)| (**p > 0.5) == (**y > 0.5)).count() as f64 / 3000.0;
        assert!(acc > 0.75, "accuracy {acc}");
        // Save / load round trip gives identical predictions.
        let back = MlpModel::from_json(&m.to_json().unwrap()).unwrap();
        assert_eq!(back.predict_proba(&x).unwrap(), p);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        let (x, y) = toy(10, 1);
        assert!(train(&x, &y[..5], &MlpConfig::default(), Scaling::unit(4)).is_err());
        assert!(train(&x, &y, &MlpConfig::default(), Scaling::unit(3)).is_err());
        assert!(
            train(&x, &y, &MlpConfig { hidden: vec![], ..Default::default() }, Scaling::unit(4))
                .is_err()
        );
        let bad = DpSgdConfig {
            clip_norm: 0.0,
            noise_multiplier: 1.0,
            sampling_rate: 0.1,
            steps: 1,
            delta: 1e-5,
        };
        assert!(bad.validate().is_err());
        assert!(MlpModel::from_json("{}").is_err());
    }
}
