//! Sinusoidal positional encodings of points, camera centres and Plücker rays — the
//! geometric inputs of FeatureNeRF's per-view MLP and view weights.

/// Appends `sin(2^k · v)` for every value and octave `k < frequencies`, then the cosines
/// likewise: `values.len() · 2 · frequencies` numbers.
pub fn sinusoids_into(values: &[f32], frequencies: usize, out: &mut Vec<f32>) {
    for trig in [f32::sin, f32::cos] {
        for k in 0..frequencies {
            let scale = (1u64 << k) as f32;
            out.extend(values.iter().map(|v| trig(scale * v)));
        }
    }
}

/// Appends the sinusoids of `values` followed by the raw values: the encoding of a point.
pub fn point_encoding_into(point: [f32; 3], frequencies: usize, out: &mut Vec<f32>) {
    sinusoids_into(&point, frequencies, out);
    out.extend_from_slice(&point);
}

/// Length of [`point_encoding_into`]'s output.
pub const fn point_encoding_len(frequencies: usize) -> usize {
    3 * (2 * frequencies + 1)
}

/// Appends the sinusoids of a ray's six Plücker coordinates followed by its raw unit
/// direction: the encoding of a target ray.
pub fn ray_encoding_into(plucker: [f32; 6], frequencies: usize, out: &mut Vec<f32>) {
    sinusoids_into(&plucker, frequencies, out);
    out.extend_from_slice(&plucker[3..]);
}

/// Length of [`ray_encoding_into`]'s output.
pub const fn ray_encoding_len(frequencies: usize) -> usize {
    6 * 2 * frequencies + 3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_sines_then_cosines_per_octave() {
        let mut out = Vec::new();
        sinusoids_into(&[0.5, -1.0], 2, &mut out);
        let expected = [
            0.5f32.sin(),
            (-1.0f32).sin(),
            1.0f32.sin(),
            (-2.0f32).sin(),
            0.5f32.cos(),
            (-1.0f32).cos(),
            1.0f32.cos(),
            (-2.0f32).cos(),
        ];
        assert_eq!(out.len(), expected.len());
        for (a, b) in out.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn method_dimensions_add_up_to_198() {
        // Point PE with 16 octaves + raw point, ray Plücker PE with 8 octaves + raw direction.
        assert_eq!(point_encoding_len(16) + ray_encoding_len(8), 198);
        let mut out = Vec::new();
        point_encoding_into([1.0, 2.0, 3.0], 16, &mut out);
        ray_encoding_into([0.0, 0.0, 0.0, 0.0, 0.0, 1.0], 8, &mut out);
        assert_eq!(out.len(), 198);
        assert_eq!(&out[96..99], &[1.0, 2.0, 3.0]);
        assert_eq!(&out[195..], &[0.0, 0.0, 1.0]);
    }
}
