//! AdamW (Loshchilov & Hutter) over named variables, with its moment estimates saveable so an
//! interrupted training run resumes exactly where it stopped.

use std::collections::HashMap;

use candle_core::{DType, Result, Tensor, Var};
use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters (PyTorch's defaults except the learning rate).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdamWConfig {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first-moment estimate.
    pub beta1: f64,
    /// Decay of the second-moment estimate.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-2,
        }
    }
}

/// One trained variable and its moment estimates.
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// AdamW over a fixed, named set of variables.
pub struct AdamW {
    config: AdamWConfig,
    slots: Vec<Slot>,
    step: u64,
}

/// Prefix of the first-moment tensors in a saved state.
const M_PREFIX: &str = "adamw.m.";
/// Prefix of the second-moment tensors in a saved state.
const V_PREFIX: &str = "adamw.v.";
/// Name of the step counter in a saved state.
const STEP: &str = "adamw.step";

impl AdamW {
    /// An optimiser for `vars` (name → variable); moments start at zero.
    pub fn new(vars: Vec<(String, Var)>, config: AdamWConfig) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = var.as_tensor().to_dtype(DType::F32)?.zeros_like()?;
                Ok(Slot {
                    name,
                    var,
                    m: zeros.clone(),
                    v: zeros,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config,
            slots,
            step: 0,
        })
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Changes the learning rate (schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// Back-propagates `loss` and updates every variable that received a gradient.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - c.beta1.powi(t);
        let bias2 = 1.0 - c.beta2.powi(t);
        for slot in &mut self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            // A weight's gradient can still carry the op graph of the forward pass that made
            // it (candle detaches only accumulated gradients); the moments must not keep that
            // graph alive, or every step's activations would be retained by the next.
            let grad = grad.detach().to_dtype(DType::F32)?;
            slot.m = ((&slot.m * c.beta1)? + (&grad * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (grad.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&slot.m / bias1)?;
            let v_hat = (&slot.v / bias2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let theta = slot.var.as_tensor().to_dtype(DType::F32)?;
            let decayed = (&theta * (1.0 - c.lr * c.weight_decay))?;
            let next = (decayed - (update * c.lr)?)?;
            slot.var.set(&next.to_dtype(slot.var.dtype())?)?;
        }
        Ok(())
    }

    /// The optimiser state as named tensors, for a checkpoint.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut state = HashMap::new();
        for slot in &self.slots {
            state.insert(format!("{M_PREFIX}{}", slot.name), slot.m.clone());
            state.insert(format!("{V_PREFIX}{}", slot.name), slot.v.clone());
        }
        let device = self
            .slots
            .first()
            .map(|s| s.m.device().clone())
            .unwrap_or(candle_core::Device::Cpu);
        state.insert(STEP.to_string(), Tensor::new(&[self.step as f64], &device)?);
        Ok(state)
    }

    /// Restores a state saved by [`AdamW::state`]; every variable's moments must be present
    /// with matching shapes.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        let step = state
            .get(STEP)
            .ok_or_else(|| candle_core::Error::CannotFindTensor { path: STEP.into() })?;
        let step = step.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let step = step.first().copied().unwrap_or(0.0);
        for slot in &mut self.slots {
            for (prefix, target) in [(M_PREFIX, &mut slot.m), (V_PREFIX, &mut slot.v)] {
                let name = format!("{prefix}{}", slot.name);
                let tensor = state
                    .get(&name)
                    .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.clone() })?;
                if tensor.dims() != target.dims() {
                    return Err(candle_core::Error::UnexpectedShape {
                        msg: format!("shape mismatch for {name}"),
                        expected: target.shape().clone(),
                        got: tensor.shape().clone(),
                    });
                }
                *target = tensor.to_dtype(DType::F32)?.to_device(target.device())?;
            }
        }
        self.step = step as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn moments_do_not_keep_the_forward_graph_alive() -> Result<()> {
        // loss = Σ conv(x², K)²: candle returns a convolution kernel's gradient with the op
        // graph of its computation attached. The moments must hold plain values, or every
        // step's forward pass would stay reachable from the optimiser (a leak per step).
        let kernel = Var::from_tensor(&Tensor::ones((2, 1, 3, 3), DType::F32, &Device::Cpu)?)?;
        let input =
            Var::from_tensor(&Tensor::arange(0f32, 16.0, &Device::Cpu)?.reshape((1, 1, 4, 4))?)?;
        let vars = vec![("k".into(), kernel.clone()), ("x".into(), input.clone())];
        let mut opt = AdamW::new(vars, AdamWConfig::default())?;
        for _ in 0..2 {
            // The convolution's input is an activation (derived from a trained variable).
            let x = input.as_tensor().sqr()?;
            let loss = x.conv2d(kernel.as_tensor(), 1, 1, 1, 1)?.sqr()?.sum_all()?;
            opt.backward_step(&loss)?;
        }
        for (name, tensor) in opt.state()? {
            assert!(!tensor.track_op(), "{name} carries an op graph");
        }
        Ok(())
    }

    #[test]
    fn two_steps_match_the_hand_computed_update() -> Result<()> {
        // θ = 1, loss = θ² (gradient 2θ); lr 0.1, wd 0.01, β = (0.9, 0.999), ε = 1e-8.
        let var = Var::new(&[1.0f32], &Device::Cpu)?;
        let config = AdamWConfig {
            lr: 0.1,
            ..Default::default()
        };
        let mut opt = AdamW::new(vec![("theta".into(), var.clone())], config)?;
        let (mut theta, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
        for t in 1..=2 {
            let loss = var.as_tensor().sqr()?.sum_all()?;
            opt.backward_step(&loss)?;
            let g = 2.0 * theta;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            let m_hat = m / (1.0 - 0.9f64.powi(t));
            let v_hat = v / (1.0 - 0.999f64.powi(t));
            theta = theta * (1.0 - 0.1 * 0.01) - 0.1 * m_hat / (v_hat.sqrt() + 1e-8);
            let got = var.as_tensor().to_vec1::<f32>()?[0] as f64;
            assert!((got - theta).abs() < 1e-6, "step {t}: {got} vs {theta}");
        }
        Ok(())
    }

    #[test]
    fn state_round_trips_and_resumes_identically() -> Result<()> {
        let steps = |opt: &mut AdamW, var: &Var, n: usize| -> Result<()> {
            for _ in 0..n {
                let loss = var.as_tensor().sqr()?.sum_all()?;
                opt.backward_step(&loss)?;
            }
            Ok(())
        };
        let init = [0.5f32, -2.0];
        let straight = Var::new(&init, &Device::Cpu)?;
        let mut opt = AdamW::new(vec![("w".into(), straight.clone())], AdamWConfig::default())?;
        steps(&mut opt, &straight, 4)?;

        let first = Var::new(&init, &Device::Cpu)?;
        let mut opt = AdamW::new(vec![("w".into(), first.clone())], AdamWConfig::default())?;
        steps(&mut opt, &first, 2)?;
        let (state, weights) = (opt.state()?, first.as_tensor().copy()?);
        // A new process: fresh variable from the saved weights, fresh optimiser from the state.
        let resumed = Var::from_tensor(&weights)?;
        let mut opt = AdamW::new(vec![("w".into(), resumed.clone())], AdamWConfig::default())?;
        opt.load_state(&state)?;
        assert_eq!(opt.step_count(), 2);
        steps(&mut opt, &resumed, 2)?;
        assert_eq!(
            straight.as_tensor().to_vec1::<f32>()?,
            resumed.as_tensor().to_vec1::<f32>()?
        );
        Ok(())
    }
}
