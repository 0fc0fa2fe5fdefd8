//! Sinusoidal positional encodings of points, camera centres and Plücker rays — the
//! geometric inputs of FeatureNeRF's per-view MLP and view weights. Computed on tensors in
//! f32 whatever the networks' dtype: the highest octave multiplies coordinates by 2^15.

use candle_core::{D, DType, Result, Tensor};

/// `[.., n]` → `[.., 2 · frequencies · n]`: `sin(2^k · v)` for every octave `k < frequencies`
/// (octave-major, the values inner), then the cosines likewise.
pub fn sinusoids(values: &Tensor, frequencies: usize) -> Result<Tensor> {
    let values = values.to_dtype(DType::F32)?;
    let mut dims = values.dims().to_vec();
    let n = dims.pop().unwrap_or(1);
    let scales: Vec<f32> = (0..frequencies).map(|k| (1u64 << k) as f32).collect();
    let mut scale_shape = vec![1; dims.len()];
    scale_shape.extend([frequencies, 1]);
    let scales = Tensor::from_vec(scales, scale_shape, values.device())?;
    let scaled = values.unsqueeze(D::Minus2)?.broadcast_mul(&scales)?;
    let mut flat = dims;
    flat.push(frequencies * n);
    Tensor::cat(
        &[
            scaled.sin()?.reshape(flat.as_slice())?,
            scaled.cos()?.reshape(flat.as_slice())?,
        ],
        D::Minus1,
    )
}

/// The encoding of points `[.., 3]`: their sinusoids followed by the raw coordinates,
/// `[.., point_encoding_len]`.
pub fn point_encoding(points: &Tensor, frequencies: usize) -> Result<Tensor> {
    let points = points.to_dtype(DType::F32)?;
    Tensor::cat(&[sinusoids(&points, frequencies)?, points], D::Minus1)
}

/// Length of [`point_encoding`]'s last dimension.
pub const fn point_encoding_len(frequencies: usize) -> usize {
    3 * (2 * frequencies + 1)
}

/// The encoding of rays given by their six Plücker coordinates `[.., 6]` (moment, then unit
/// direction): the sinusoids of all six followed by the raw direction, `[.., ray_encoding_len]`.
pub fn ray_encoding(plucker: &Tensor, frequencies: usize) -> Result<Tensor> {
    let plucker = plucker.to_dtype(DType::F32)?;
    let direction = plucker.narrow(D::Minus1, 3, 3)?;
    Tensor::cat(&[sinusoids(&plucker, frequencies)?, direction], D::Minus1)
}

/// Length of [`ray_encoding`]'s last dimension.
pub const fn ray_encoding_len(frequencies: usize) -> usize {
    6 * 2 * frequencies + 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn values(t: &Tensor) -> Vec<f32> {
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn encodes_sines_then_cosines_per_octave() {
        let x = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &Device::Cpu).unwrap();
        let out = sinusoids(&x, 2).unwrap();
        assert_eq!(out.dims(), &[2, 8]);
        let expected = |a: f32, b: f32| {
            [
                a.sin(),
                b.sin(),
                (2.0 * a).sin(),
                (2.0 * b).sin(),
                a.cos(),
                b.cos(),
                (2.0 * a).cos(),
                (2.0 * b).cos(),
            ]
        };
        let want: Vec<f32> = [expected(0.5, -1.0), expected(2.0, 0.25)].concat();
        for (a, b) in values(&out).iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{out}");
        }
    }

    #[test]
    fn method_dimensions_add_up_to_198() {
        // Point PE with 16 octaves + raw point, ray Plücker PE with 8 octaves + raw direction.
        assert_eq!(point_encoding_len(16) + ray_encoding_len(8), 198);
        let point = Tensor::new(&[[1.0f32, 2.0, 3.0]], &Device::Cpu).unwrap();
        let ray = Tensor::new(&[[0.1f32, 0.2, 0.3, 0.0, 0.0, 1.0]], &Device::Cpu).unwrap();
        let p = values(&point_encoding(&point, 16).unwrap());
        let r = values(&ray_encoding(&ray, 8).unwrap());
        assert_eq!((p.len(), r.len()), (99, 99));
        assert_eq!(&p[96..], &[1.0, 2.0, 3.0]);
        assert_eq!(&r[96..], &[0.0, 0.0, 1.0]);
        // The highest octave of the point's z: sin(2^15 · 3) in f32.
        assert!((p[15 * 3 + 2] - (32768.0f32 * 3.0).sin()).abs() < 1e-6);
    }

    #[test]
    fn encodings_are_f32_whatever_the_input_dtype() {
        let point = Tensor::new(&[[0.3f32, -0.7, 0.9]], &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap();
        assert_eq!(point_encoding(&point, 4).unwrap().dtype(), DType::F32);
        assert_eq!(
            ray_encoding(
                &Tensor::zeros((2, 6), DType::BF16, &Device::Cpu).unwrap(),
                4
            )
            .unwrap()
            .dims(),
            &[2, ray_encoding_len(4)]
        );
    }
}
