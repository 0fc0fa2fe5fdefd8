//! Tools of the σ-parametrised schedulers (Euler, DPM-Solver): the σ ↔ (α, σ_t) conversion, the
//! Karras σ ramp, mapping a σ back to a fractional training timestep, and finding a timestep's
//! position in the inference schedule — each as diffusers computes it.

/// σ (variance-exploding noise level) → (α_t, σ_t) of the variance-preserving process:
/// α_t = 1/√(σ² + 1), σ_t = σ·α_t, in float32 as diffusers computes them.
pub(crate) fn alpha_sigma(sigma: f32) -> (f32, f32) {
    let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
    (alpha, sigma * alpha)
}

/// Karras et al. (2022) σ ramp with ρ = 7: n values from `sigma_max` down to `sigma_min`,
/// evenly spaced in σ^(1/ρ).
pub(crate) fn karras(sigma_min: f64, sigma_max: f64, n: usize) -> Vec<f64> {
    const RHO: f64 = 7.0;
    let min_inv_rho = sigma_min.powf(1.0 / RHO);
    let max_inv_rho = sigma_max.powf(1.0 / RHO);
    super::numpy::linspace(0.0, 1.0, n)
        .into_iter()
        .map(|ramp| (max_inv_rho + ramp * (min_inv_rho - max_inv_rho)).powf(RHO))
        .collect()
}

/// The fractional training timestep whose σ is `sigma`: linear interpolation in log σ between
/// the two training steps around it (`log_sigmas` ascending in t), clamped to the table.
pub(crate) fn sigma_to_t(sigma: f64, log_sigmas: &[f32]) -> f64 {
    let log_sigma = sigma.max(1e-10).ln();
    let last_at_or_below = log_sigmas
        .iter()
        .rposition(|&l| log_sigma - f64::from(l) >= 0.0)
        .unwrap_or(0);
    let low_idx = last_at_or_below.min(log_sigmas.len().saturating_sub(2));
    let high_idx = low_idx + 1;
    let (low, high) = (
        f64::from(log_sigmas[low_idx]),
        f64::from(log_sigmas[high_idx]),
    );
    let w = ((low - log_sigma) / (low - high)).clamp(0.0, 1.0);
    (1.0 - w) * low_idx as f64 + w * high_idx as f64
}

/// The position of `timestep` in `schedule` as diffusers' `index_for_timestep` picks it: the
/// only match, or the second of several (so that a schedule starting in the middle, as in
/// image-to-image, does not skip a σ); `None` when absent.
pub(crate) fn position(schedule: &[f64], timestep: f64) -> Option<usize> {
    let mut matches = schedule
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == timestep)
        .map(|(i, _)| i);
    let first = matches.next()?;
    Some(matches.next().unwrap_or(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpha_sigma_is_variance_preserving() {
        let (a, s) = alpha_sigma(3.0);
        assert!((a * a + s * s - 1.0).abs() < 1e-6);
        assert!((s / a - 3.0).abs() < 1e-6);
        assert_eq!(alpha_sigma(0.0), (1.0, 0.0));
    }

    #[test]
    fn karras_ramp_spans_the_range() {
        let s = karras(0.1, 10.0, 5);
        assert!((s[0] - 10.0).abs() < 1e-12 && (s[4] - 0.1).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[1] < w[0]));
        let mid = (10f64.powf(1.0 / 7.0) + 0.5 * (0.1f64.powf(1.0 / 7.0) - 10f64.powf(1.0 / 7.0)))
            .powf(7.0);
        assert!((s[2] - mid).abs() < 1e-12);
    }

    #[test]
    fn sigma_to_t_inverts_the_table() {
        let sigmas = [0.1f32, 0.2, 0.4, 0.8];
        let logs: Vec<f32> = sigmas.iter().map(|s| s.ln()).collect();
        assert!((sigma_to_t(0.4, &logs) - 2.0).abs() < 1e-6);
        // Halfway in log σ between steps 1 and 2.
        assert!((sigma_to_t((0.2f64 * 0.4).sqrt(), &logs) - 1.5).abs() < 1e-6);
        assert_eq!(sigma_to_t(0.01, &logs), 0.0);
        assert_eq!(sigma_to_t(5.0, &logs), 3.0);
    }

    #[test]
    fn position_prefers_the_second_duplicate() {
        assert_eq!(position(&[9.0, 5.0, 1.0], 5.0), Some(1));
        assert_eq!(position(&[9.0, 5.0, 5.0, 1.0], 5.0), Some(2));
        assert_eq!(position(&[9.0, 5.0], 4.0), None);
    }
}
