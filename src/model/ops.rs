//! Small numerical building blocks that take candle's fused kernels at inference and fall back
//! to differentiable compositions when a tensor takes part in autograd (candle's fused softmax
//! and layer-norm kernels have no backward pass; customization training back-propagates through
//! the frozen UNet).

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;

/// Softmax over the last dimension.
pub fn softmax_last_dim(xs: &Tensor) -> Result<Tensor> {
    if xs.track_op() {
        candle_nn::ops::softmax(xs, D::Minus1)
    } else {
        candle_nn::ops::softmax_last_dim(&xs.contiguous()?)
    }
}

/// `nn.LayerNorm` with affine weight and bias over the last dimension.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    /// Loads `weight` and `bias` of size `dim`.
    pub fn new(dim: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get(dim, "weight")?;
        let bias = vb.get(dim, "bias")?;
        Ok(Self {
            inner: candle_nn::LayerNorm::new(weight.clone(), bias.clone(), eps),
            weight,
            bias,
            eps,
        })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if !xs.track_op() && !self.weight.track_op() {
            return self.inner.forward(&xs.contiguous()?);
        }
        let dtype = xs.dtype();
        let internal = match dtype {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        };
        let x = xs.to_dtype(internal)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&(var + self.eps)?.sqrt()?)?;
        normed
            .to_dtype(dtype)?
            .broadcast_mul(&self.weight)?
            .broadcast_add(&self.bias)
    }
}

/// A linear layer applied to the last dimension of a tensor of any rank, as one matrix product
/// over all leading dimensions (candle's `Linear` batches 3-D inputs per leading index).
#[derive(Clone, Debug)]
pub struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `weight` [out, in] and, if `bias`, `bias` [out].
    pub fn new(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        Ok(Self {
            weight_t: weight.t()?,
            bias,
        })
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims();
        let in_dim = dims[dims.len() - 1];
        let rows = xs.elem_count() / in_dim.max(1);
        let ys = xs.reshape((rows, in_dim))?.matmul(&self.weight_t)?;
        let ys = match &self.bias {
            Some(bias) => ys.broadcast_add(bias)?,
            None => ys,
        };
        let mut out_dims = dims.to_vec();
        let last = out_dims.len() - 1;
        out_dims[last] = ys.dim(1)?;
        ys.reshape(out_dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};
    use std::collections::HashMap;

    #[test]
    fn layer_norm_paths_agree() -> Result<()> {
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert(
            "weight".to_string(),
            Tensor::new(&[1.5f32, -0.5, 2.0], &dev)?,
        );
        ts.insert("bias".to_string(), Tensor::new(&[0.1f32, 0.2, 0.3], &dev)?);
        let ln = LayerNorm::new(3, 1e-5, VarBuilder::from_tensors(ts, DType::F32, &dev))?;
        let x = Tensor::new(&[[1f32, 2., 4.], [-3., 0.5, 0.0]], &dev)?;
        let fused = ln.forward(&x)?;
        let var = Var::from_tensor(&x)?;
        let composed = ln.forward(var.as_tensor())?;
        let diff = (&fused - &composed)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "{diff}");
        // The composed path is differentiable.
        let grads = composed.sum_all()?.backward()?;
        assert!(grads.get(var.as_tensor()).is_some());
        // Analytic value of the first row: mean 7/3, population variance 14/9.
        let (m, v) = (7.0f32 / 3.0, 14.0f32 / 9.0);
        let expect0 = (1.0 - m) / (v + 1e-5).sqrt() * 1.5 + 0.1;
        let got0 = fused.get(0)?.get(0)?.to_scalar::<f32>()?;
        assert!((got0 - expect0).abs() < 1e-5);
        Ok(())
    }

    #[test]
    fn softmax_paths_agree() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2., 3.], [0., f32::NEG_INFINITY, 1.]], &dev)?;
        let fused = softmax_last_dim(&x)?;
        let var = Var::from_tensor(&x)?;
        let composed = softmax_last_dim(var.as_tensor())?;
        let diff = (fused.clone() - composed)?
            .abs()?
            .max_all()?
            .to_scalar::<f32>()?;
        assert!(diff < 1e-6);
        let row1 = fused.get(1)?.to_vec1::<f32>()?;
        let e = std::f32::consts::E;
        assert!((row1[0] - 1.0 / (1.0 + e)).abs() < 1e-6 && row1[1] == 0.0);
        Ok(())
    }

    #[test]
    fn linear_on_any_rank() -> Result<()> {
        let dev = Device::Cpu;
        let mut ts = HashMap::new();
        ts.insert(
            "weight".to_string(),
            Tensor::new(&[[1f32, 2.], [0., -1.], [3., 0.5]], &dev)?,
        );
        ts.insert("bias".to_string(), Tensor::new(&[1f32, 0., -1.], &dev)?);
        let lin = Linear::new(2, 3, true, VarBuilder::from_tensors(ts, DType::F32, &dev))?;
        let x = Tensor::new(&[[[1f32, 1.]], [[2., -1.]]], &dev)?;
        let y = lin.forward(&x)?;
        assert_eq!(y.dims(), &[2, 1, 3]);
        assert_eq!(
            y.flatten_all()?.to_vec1::<f32>()?,
            vec![4., -1., 2.5, 1., 1., 4.5]
        );
        Ok(())
    }
}
