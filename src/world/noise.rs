//! Deterministic hash-based noise for procedural textures.
//!
//! Textures are functions of world (or object) coordinates, never of the pixel, so every view of
//! a scene sees the same surface colours — the property multi-view ground truth needs.

use glam::Vec2;

/// Scrambles the bits of a 32-bit integer (an avalanche mix: xor-shifts and odd multipliers).
pub(crate) fn hash_u32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x21f0_aaad);
    x ^= x >> 15;
    x = x.wrapping_mul(0x735a_2d97);
    x ^= x >> 15;
    x
}

/// A uniform value in `[0, 1)` for an integer lattice point and a seed.
pub(crate) fn hash2(i: i32, j: i32, seed: u32) -> f32 {
    let h = hash_u32((i as u32) ^ hash_u32((j as u32).wrapping_add(hash_u32(seed))));
    (h >> 8) as f32 / (1u32 << 24) as f32
}

/// Smoothly interpolated lattice noise in `[0, 1)`, one lattice cell per unit of `p`.
pub(crate) fn value_noise(p: Vec2, seed: u32) -> f32 {
    let cell = p.floor();
    let (i, j) = (cell.x as i32, cell.y as i32);
    let f = p - cell;
    let s = f * f * (Vec2::splat(3.0) - 2.0 * f);
    let a = hash2(i, j, seed);
    let b = hash2(i + 1, j, seed);
    let c = hash2(i, j + 1, seed);
    let d = hash2(i + 1, j + 1, seed);
    let bottom = a + (b - a) * s.x;
    let top = c + (d - c) * s.x;
    bottom + (top - bottom) * s.y
}

/// Fractal sum of `octaves` layers of [`value_noise`], each at twice the frequency and half
/// the amplitude of the previous one, normalised to `[0, 1)`.
pub(crate) fn fbm(p: Vec2, seed: u32, octaves: u32) -> f32 {
    let mut sum = 0.0;
    let mut norm = 0.0;
    let mut amplitude = 1.0;
    let mut q = p;
    for octave in 0..octaves {
        sum += amplitude * value_noise(q, seed.wrapping_add(octave.wrapping_mul(0x9e37_79b9)));
        norm += amplitude;
        amplitude *= 0.5;
        q *= 2.0;
    }
    if norm > 0.0 { sum / norm } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_bounded_and_seed_dependent() {
        let mut differs = false;
        for k in 0..200 {
            let p = Vec2::new(k as f32 * 0.37 - 20.0, k as f32 * -0.21 + 3.0);
            let a = fbm(p, 7, 3);
            assert_eq!(a, fbm(p, 7, 3));
            assert!((0.0..1.0).contains(&a), "{a}");
            differs |= (a - fbm(p, 8, 3)).abs() > 1e-3;
        }
        assert!(differs);
    }

    #[test]
    fn value_noise_is_continuous_across_cells() {
        for k in 0..50 {
            let x = k as f32;
            let left = value_noise(Vec2::new(x - 1e-4, 0.3), 1);
            let right = value_noise(Vec2::new(x + 1e-4, 0.3), 1);
            assert!((left - right).abs() < 1e-2, "jump at x = {x}");
            assert!((value_noise(Vec2::new(x, 0.0), 1) - hash2(k, 0, 1)).abs() < 1e-6);
        }
    }
}
