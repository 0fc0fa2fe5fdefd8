//! An exponential moving average of trained weights. Diffusion models trained with small,
//! noisy batches sample far better from the average of their recent weights than from the
//! last step's: the average smooths out the step-to-step jitter the optimiser leaves behind.

use std::collections::HashMap;

use candle_core::{Result, Tensor, Var};

/// Checkpoint name prefix of the averaged weights.
const PREFIX: &str = "ema/";

/// The moving average of a set of variables, updated after each optimiser step.
pub struct Ema {
    decay: f64,
    slots: Vec<EmaSlot>,
}

/// One variable and its average.
struct EmaSlot {
    name: String,
    var: Var,
    average: Tensor,
}

impl Ema {
    /// Starts the average at the variables' current values; `decay` is the weight the old
    /// average keeps at each update (0.999 averages over about the last thousand steps).
    pub fn new(vars: Vec<(String, Var)>, decay: f64) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let average = var.as_tensor().detach().copy()?;
                Ok(EmaSlot { name, var, average })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { decay, slots })
    }

    /// The decay used after optimiser step `step` (1-based): the configured decay, lowered
    /// early in training so the average is not dominated by the random initialisation.
    pub fn decay_at(&self, step: u64) -> f64 {
        let step = step as f64;
        self.decay.min((1.0 + step) / (10.0 + step))
    }

    /// Folds the variables' current values into the average after optimiser step `step`.
    pub fn update(&mut self, step: u64) -> Result<()> {
        let decay = self.decay_at(step);
        for slot in &mut self.slots {
            let current = slot.var.as_tensor().detach();
            slot.average = ((&slot.average * decay)? + (current * (1.0 - decay))?)?;
        }
        Ok(())
    }

    /// The averaged value of the variable called `name`.
    pub fn average(&self, name: &str) -> Option<&Tensor> {
        self.slots
            .iter()
            .find(|slot| slot.name == name)
            .map(|slot| &slot.average)
    }

    /// The averages as named tensors, for a checkpoint.
    pub fn state(&self) -> HashMap<String, Tensor> {
        self.slots
            .iter()
            .map(|slot| (format!("{PREFIX}{}", slot.name), slot.average.clone()))
            .collect()
    }

    /// Restores averages saved by [`Ema::state`]. A checkpoint written without an average
    /// leaves the average at the current weights and returns `false`; one holding averages
    /// for only some variables, or of the wrong shape, is an error.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<bool> {
        if !state.keys().any(|name| name.starts_with(PREFIX)) {
            return Ok(false);
        }
        for slot in &mut self.slots {
            let name = format!("{PREFIX}{}", slot.name);
            let tensor = state
                .get(&name)
                .ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.clone() })?;
            if tensor.dims() != slot.average.dims() {
                return Err(candle_core::Error::UnexpectedShape {
                    msg: format!("shape mismatch for {name}"),
                    expected: slot.average.shape().clone(),
                    got: tensor.shape().clone(),
                });
            }
            slot.average = tensor
                .to_dtype(slot.average.dtype())?
                .to_device(slot.average.device())?;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(tensor: &Tensor) -> Vec<f32> {
        tensor.to_vec1::<f32>().unwrap()
    }

    #[test]
    fn the_average_follows_the_recurrence_with_warm_up() -> Result<()> {
        let var = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut ema = Ema::new(vec![("w".into(), var.clone())], 0.9)?;
        // Step 1: warm-up decay (1 + 1) / (10 + 1) = 2/11 is below 0.9.
        var.set(&Tensor::new(&[3.0f32, 0.0], &Device::Cpu)?)?;
        ema.update(1)?;
        let d1 = 2.0 / 11.0;
        let after_one = [d1 + 3.0 * (1.0 - d1), -2.0 * d1];
        // Step 100: (101 / 110) > 0.9, so the configured decay applies.
        var.set(&Tensor::new(&[5.0f32, 1.0], &Device::Cpu)?)?;
        ema.update(100)?;
        let expected = [
            0.9 * after_one[0] + 0.1 * 5.0,
            0.9 * after_one[1] + 0.1 * 1.0,
        ];
        let got = values(ema.average("w").expect("average of w"));
        for (g, e) in got.iter().zip(expected) {
            assert!((*g as f64 - e).abs() < 1e-5, "{got:?} vs {expected:?}");
        }
        assert_eq!(values(var.as_tensor()), vec![5.0, 1.0], "weights untouched");
        Ok(())
    }

    #[test]
    fn state_round_trips_and_a_checkpoint_without_one_keeps_the_weights() -> Result<()> {
        let var = Var::new(&[1.0f32, 2.0], &Device::Cpu)?;
        let mut ema = Ema::new(vec![("w".into(), var.clone())], 0.5)?;
        var.set(&Tensor::new(&[3.0f32, 4.0], &Device::Cpu)?)?;
        ema.update(1000)?;
        let state = ema.state();

        let mut restored = Ema::new(vec![("w".into(), var.clone())], 0.5)?;
        assert!(restored.load_state(&state)?);
        assert_eq!(values(restored.average("w").unwrap()), vec![2.0, 3.0]);

        let mut fresh = Ema::new(vec![("w".into(), var.clone())], 0.5)?;
        assert!(!fresh.load_state(&HashMap::new())?);
        assert_eq!(values(fresh.average("w").unwrap()), vec![3.0, 4.0]);

        let mut partial = Ema::new(
            vec![("w".into(), var.clone()), ("b".into(), var.clone())],
            0.5,
        )?;
        let error = partial.load_state(&state).unwrap_err().to_string();
        assert!(error.contains("ema/b"), "{error}");
        Ok(())
    }
}
