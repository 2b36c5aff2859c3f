//! The network: dense layers with ReLU, one logit output, sigmoid probability.

use candle_core::{D, DType, Device, Tensor, Var};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::MlpError;

/// Data-independent min-max scaling of the inputs: `x' = (clamp(x, lo, hi) - lo) / (hi - lo)`.
///
/// The bounds must be *public* (from the schema / feature definitions), never fitted on the
/// data: fitting them would be an unaccounted release for the DP models. Clamping also bounds
/// every input, which keeps per-example gradients finite before clipping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Lower bound per column.
    pub lo: Vec<f64>,
    /// Upper bound per column.
    pub hi: Vec<f64>,
}

impl Scaling {
    /// From per-column `(lo, hi)` ranges; a degenerate range maps the column to 0.
    pub fn from_ranges(ranges: &[(f64, f64)]) -> Self {
        Self { lo: ranges.iter().map(|r| r.0).collect(), hi: ranges.iter().map(|r| r.1).collect() }
    }

    /// Identity scaling bounds `[0, 1]` for `width` columns.
    pub fn unit(width: usize) -> Self {
        Self { lo: vec![0.0; width], hi: vec![1.0; width] }
    }

    /// Number of columns.
    pub fn width(&self) -> usize {
        self.lo.len()
    }

    /// Scales one value of column `j`.
    pub fn apply(&self, j: usize, v: f64) -> f32 {
        let (lo, hi) = (self.lo[j], self.hi[j]);
        if hi > lo { ((v.clamp(lo, hi) - lo) / (hi - lo)) as f32 } else { 0.0 }
    }

    /// Scales a matrix into a row-major f32 buffer.
    pub fn apply_matrix(&self, x: &Array2<f64>) -> Result<Vec<f32>, MlpError> {
        if x.ncols() != self.width() {
            return Err(MlpError::Shape(format!(
                "input has {} columns, the model expects {}",
                x.ncols(),
                self.width()
            )));
        }
        let mut out = Vec::with_capacity(x.len());
        for row in x.rows() {
            for (j, &v) in row.iter().enumerate() {
                out.push(self.apply(j, v));
            }
        }
        Ok(out)
    }
}

/// Serialisable weights of a trained network (row-major `f32`), with its input scaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlpModel {
    /// Layer widths including input and output: `[d, h1, ..., 1]`.
    pub sizes: Vec<usize>,
    /// Per layer, the `sizes[l] x sizes[l+1]` weight matrix, row-major.
    pub weights: Vec<Vec<f32>>,
    /// Per layer, the `sizes[l+1]` biases.
    pub biases: Vec<Vec<f32>>,
    /// Input scaling applied before the first layer.
    pub scaling: Scaling,
}

impl MlpModel {
    /// Serialises to JSON.
    pub fn to_json(&self) -> Result<String, MlpError> {
        serde_json::to_string(self).map_err(|e| MlpError::Serde(e.to_string()))
    }

    /// Deserialises from JSON and checks the shapes agree.
    pub fn from_json(s: &str) -> Result<Self, MlpError> {
        let m: MlpModel = serde_json::from_str(s).map_err(|e| MlpError::Serde(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Checks internal consistency of the shapes.
    pub fn validate(&self) -> Result<(), MlpError> {
        let layers = self.sizes.len().saturating_sub(1);
        if layers == 0 || self.weights.len() != layers || self.biases.len() != layers {
            return Err(MlpError::Shape("layer count mismatch".into()));
        }
        for l in 0..layers {
            if self.weights[l].len() != self.sizes[l] * self.sizes[l + 1]
                || self.biases[l].len() != self.sizes[l + 1]
            {
                return Err(MlpError::Shape(format!("layer {l} has wrong weight/bias sizes")));
            }
        }
        if self.sizes[layers] != 1 || self.scaling.width() != self.sizes[0] {
            return Err(MlpError::Shape(
                "output must be 1 logit and scaling must match input".into(),
            ));
        }
        Ok(())
    }

    /// Purchase probabilities for raw (unscaled) feature rows.
    pub fn predict_proba(&self, x: &Array2<f64>) -> Result<Vec<f64>, MlpError> {
        if x.nrows() == 0 {
            return Ok(Vec::new());
        }
        let net = Network::from_model(self)?;
        let xs =
            Tensor::from_vec(self.scaling.apply_matrix(x)?, (x.nrows(), x.ncols()), &Device::Cpu)?;
        let logits = net.forward(&xs, None)?.0;
        let p = candle_core::Tensor::ones_like(&logits)?
            .broadcast_div(&(logits.neg()?.exp()? + 1.0)?)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Ok(p.into_iter().map(f64::from).collect())
    }
}

/// Trainable parameters as candle variables.
pub(crate) struct Network {
    pub(crate) sizes: Vec<usize>,
    pub(crate) weights: Vec<Var>,
    pub(crate) biases: Vec<Var>,
}

impl Network {
    /// He-uniform initialisation from a seed (data-independent).
    pub(crate) fn init(sizes: &[usize], seed: u64) -> Result<Self, MlpError> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for l in 0..sizes.len() - 1 {
            let (fan_in, fan_out) = (sizes[l], sizes[l + 1]);
            let bound = (6.0 / fan_in as f64).sqrt() as f32;
            let w: Vec<f32> =
                (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            weights.push(Var::from_tensor(&Tensor::from_vec(w, (fan_in, fan_out), &Device::Cpu)?)?);
            biases.push(Var::zeros(fan_out, DType::F32, &Device::Cpu)?);
        }
        Ok(Self { sizes: sizes.to_vec(), weights, biases })
    }

    pub(crate) fn from_model(m: &MlpModel) -> Result<Self, MlpError> {
        m.validate()?;
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for l in 0..m.sizes.len() - 1 {
            weights.push(Var::from_tensor(&Tensor::from_vec(
                m.weights[l].clone(),
                (m.sizes[l], m.sizes[l + 1]),
                &Device::Cpu,
            )?)?);
            biases.push(Var::from_tensor(&Tensor::from_vec(
                m.biases[l].clone(),
                m.sizes[l + 1],
                &Device::Cpu,
            )?)?);
        }
        Ok(Self { sizes: m.sizes.clone(), weights, biases })
    }

    pub(crate) fn to_model(&self, scaling: Scaling) -> Result<MlpModel, MlpError> {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for (w, b) in self.weights.iter().zip(&self.biases) {
            weights.push(w.as_tensor().flatten_all()?.to_vec1::<f32>()?);
            biases.push(b.to_vec1::<f32>()?);
        }
        let m = MlpModel { sizes: self.sizes.clone(), weights, biases, scaling };
        m.validate()?;
        Ok(m)
    }

    /// All parameters in a fixed order: w0, b0, w1, b1, ...
    pub(crate) fn params(&self) -> Vec<&Var> {
        self.weights.iter().zip(&self.biases).flat_map(|(w, b)| [w, b]).collect()
    }

    /// Forward pass on scaled inputs. With `probes` (one zero variable per layer, shaped like
    /// that layer's pre-activations) the gradient of a per-example-summed loss with respect to
    /// each probe is the matrix of per-example pre-activation gradients. Returns the logits
    /// `(B, 1)` and the input of every layer.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        probes: Option<&[Var]>,
    ) -> Result<(Tensor, Vec<Tensor>), MlpError> {
        let layers = self.weights.len();
        let mut a = x.clone();
        let mut inputs = Vec::with_capacity(layers);
        for l in 0..layers {
            inputs.push(a.clone());
            let mut z =
                a.matmul(self.weights[l].as_tensor())?.broadcast_add(self.biases[l].as_tensor())?;
            if let Some(p) = probes {
                z = (z + p[l].as_tensor())?;
            }
            a = if l + 1 < layers { z.relu()? } else { z };
        }
        Ok((a, inputs))
    }
}

/// Sum over examples of the binary cross-entropy with logits, numerically stable:
/// `max(z, 0) - z y + ln(1 + e^{-|z|})`.
pub(crate) fn bce_with_logits_sum(logits: &Tensor, y: &Tensor) -> Result<Tensor, MlpError> {
    let z = logits.flatten_all()?;
    let y = y.flatten_all()?;
    let softplus_tail = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per = ((z.relu()? - (&z * &y)?)? + softplus_tail)?;
    Ok(per.sum_all()?)
}

/// Per-row sum of squares of a `(B, n)` tensor, as `(B,)`.
pub(crate) fn row_sq_norms(t: &Tensor) -> Result<Tensor, MlpError> {
    Ok(t.sqr()?.sum(D::Minus1)?)
}
