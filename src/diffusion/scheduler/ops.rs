//! Tensor arithmetic shared by the schedulers, with float32 scalars applied the way PyTorch
//! applies a float32 0-d tensor (one rounding per operation), plus input checks.

use candle_core::{DType, Tensor};

use super::config::PredictionType;
use crate::diffusion::error::{DiffusionError, Result};

/// `tensor · s` elementwise.
pub(crate) fn mul(tensor: &Tensor, s: f32) -> Result<Tensor> {
    Ok(tensor.affine(f64::from(s), 0.0)?)
}

/// `tensor / s` elementwise (a true division, not a multiplication by 1/s).
pub(crate) fn div(tensor: &Tensor, s: f32) -> Result<Tensor> {
    let divisor = Tensor::new(s, tensor.device())?;
    Ok(tensor.broadcast_div(&divisor)?)
}

/// The schedulers compute in float32 whatever the network's dtype: `name` converted to F32.
pub(crate) fn to_f32(tensor: &Tensor) -> Result<Tensor> {
    Ok(tensor.to_dtype(DType::F32)?)
}

/// Fails unless `a` (named `name`) has the shape of `b` (named `other`).
pub(crate) fn check_same_shape(name: &str, a: &Tensor, other: &str, b: &Tensor) -> Result<()> {
    if a.dims() == b.dims() {
        Ok(())
    } else {
        Err(DiffusionError::argument(
            name,
            format!("shape {:?} differs from `{other}` {:?}", a.dims(), b.dims()),
        ))
    }
}

/// x̂₀ from a network output for a sample x_t = α·x₀ + σ·ε of the variance-preserving process.
pub(crate) fn predict_x0(
    prediction: PredictionType,
    model_output: &Tensor,
    sample: &Tensor,
    alpha: f32,
    sigma: f32,
) -> Result<Tensor> {
    match prediction {
        PredictionType::Epsilon => div(&(sample - mul(model_output, sigma)?)?, alpha),
        PredictionType::VPrediction => Ok((mul(sample, alpha)? - mul(model_output, sigma)?)?),
        PredictionType::Sample => Ok(model_output.clone()),
    }
}

/// α·x₀ + σ·ε: the forward process at one noise level.
pub(crate) fn mix(x0: &Tensor, alpha: f32, noise: &Tensor, sigma: f32) -> Result<Tensor> {
    Ok((mul(x0, alpha)? + mul(noise, sigma)?)?)
}
