//! Initialisation of a network that is trained from scratch. Networks are built from a
//! `VarMap`-backed `VarBuilder` (creating every variable the checkpoint layout names); this
//! then gives each variable PyTorch's default initialisation for its kind, decided from its
//! checkpoint name and shape, deterministically for a seed.

use candle_core::{DType, Result, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal, Uniform};

/// How one variable starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InitRule {
    /// Uniform in ±1/√fan_in (PyTorch's default for `Linear` / `Conv2d` weights and biases).
    FanInUniform {
        /// Inputs feeding each output.
        fan_in: usize,
    },
    /// Normal with this standard deviation (token and position embeddings: 0.02).
    Normal {
        /// Standard deviation.
        std: f64,
    },
    /// All ones (normalisation scales).
    Ones,
    /// All zeros (normalisation shifts).
    Zeros,
}

/// The rule for a variable, by its checkpoint name and shape: embedding tables are normal(0.02);
/// other tensors of rank ≥ 2 are layer weights (fan-in uniform); rank-1 tensors are biases of the
/// layer whose weight shares their prefix (fan-in uniform with that weight's fan-in), or, for
/// normalisation layers (no sibling weight of rank ≥ 2), scales (ones) and shifts (zeros).
pub fn rule_for(name: &str, shape: &[usize], sibling_weight: Option<&[usize]>) -> InitRule {
    if name.contains("embedding") && shape.len() == 2 {
        return InitRule::Normal { std: 0.02 };
    }
    if shape.len() >= 2 {
        return InitRule::FanInUniform {
            fan_in: shape[1..].iter().product::<usize>().max(1),
        };
    }
    match sibling_weight {
        Some(weight) if weight.len() >= 2 && name.ends_with("bias") => InitRule::FanInUniform {
            fan_in: weight[1..].iter().product::<usize>().max(1),
        },
        _ if name.ends_with("bias") => InitRule::Zeros,
        _ => InitRule::Ones,
    }
}

fn sample(rule: InitRule, len: usize, rng: &mut StdRng) -> Vec<f32> {
    match rule {
        InitRule::Ones => vec![1.0; len],
        InitRule::Zeros => vec![0.0; len],
        InitRule::FanInUniform { fan_in } => {
            let bound = 1.0 / (fan_in as f32).sqrt();
            match Uniform::new_inclusive(-bound, bound) {
                Ok(dist) => (0..len).map(|_| dist.sample(rng)).collect(),
                Err(_) => vec![0.0; len],
            }
        }
        InitRule::Normal { std } => match Normal::new(0.0, std as f32) {
            Ok(dist) => (0..len).map(|_| dist.sample(rng)).collect(),
            Err(_) => vec![0.0; len],
        },
    }
}

/// Re-initialises every variable of `varmap` by [`rule_for`], visiting names in sorted order
/// so a seed always gives the same network.
pub fn initialise_for_training(varmap: &VarMap, seed: u64) -> Result<()> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let mut rng = StdRng::seed_from_u64(seed);
    for name in names {
        let var = &data[name];
        let shape = var.dims().to_vec();
        let sibling = name
            .strip_suffix("bias")
            .and_then(|prefix| data.get(&format!("{prefix}weight")))
            .map(|w| w.dims().to_vec());
        let rule = rule_for(name, &shape, sibling.as_deref());
        let values = sample(rule, var.elem_count(), &mut rng);
        let tensor =
            Tensor::from_vec(values, shape.as_slice(), var.device())?.to_dtype(var.dtype())?;
        var.set(&tensor)?;
    }
    Ok(())
}

/// Every variable of `varmap` with its name, sorted by name: what an optimiser trains.
pub fn named_vars(varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(vars)
}

/// Total number of scalar parameters in `varmap`.
pub fn parameter_count(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v| v.elem_count()).sum()
}

/// Converts a variable map's contents to a plain name → tensor map (in `dtype`) for saving.
pub fn snapshot(
    varmap: &VarMap,
    dtype: DType,
) -> Result<std::collections::HashMap<String, Tensor>> {
    named_vars(varmap)?
        .into_iter()
        .map(|(name, var)| Ok((name, var.as_tensor().to_dtype(dtype)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use candle_nn::VarBuilder;

    #[test]
    fn rules_follow_names_and_shapes() {
        assert_eq!(
            rule_for("a.conv1.weight", &[8, 4, 3, 3], None),
            InitRule::FanInUniform { fan_in: 36 }
        );
        assert_eq!(
            rule_for("a.conv1.bias", &[8], Some(&[8, 4, 3, 3])),
            InitRule::FanInUniform { fan_in: 36 }
        );
        assert_eq!(rule_for("a.norm1.weight", &[8], None), InitRule::Ones);
        assert_eq!(rule_for("a.norm1.bias", &[8], Some(&[8])), InitRule::Zeros);
        assert_eq!(
            rule_for("embeddings.token_embedding.weight", &[100, 8], None),
            InitRule::Normal { std: 0.02 }
        );
    }

    #[test]
    fn initialisation_is_seeded_and_bounded() -> Result<()> {
        let build = |seed| -> Result<Vec<f32>> {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let _ = vb.pp("lin").get((3, 16), "weight")?;
            let _ = vb.pp("lin").get(3, "bias")?;
            let _ = vb.pp("norm").get(16, "weight")?;
            initialise_for_training(&varmap, seed)?;
            let data = varmap
                .data()
                .lock()
                .map_err(|_| candle_core::Error::Msg("lock".into()))?;
            let w = data["lin.weight"]
                .as_tensor()
                .flatten_all()?
                .to_vec1::<f32>()?;
            let n = data["norm.weight"].as_tensor().to_vec1::<f32>()?;
            assert!(
                w.iter().all(|x| x.abs() <= 0.25 + 1e-6),
                "fan-in 16 → bound 0.25"
            );
            assert!(w.iter().any(|x| *x != 0.0));
            assert!(n.iter().all(|x| *x == 1.0));
            Ok(w)
        };
        assert_eq!(build(7)?, build(7)?);
        assert_ne!(build(7)?, build(8)?);
        Ok(())
    }
}
