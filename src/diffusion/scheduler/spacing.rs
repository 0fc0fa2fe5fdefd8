//! Inference timestep layouts shared by the schedulers (`leading` and `trailing` spacing), as
//! diffusers computes them with numpy.

use super::numpy;

/// `leading` spacing: `i · step_ratio + offset` for each `i` of `multiples`, largest first.
pub(crate) fn leading(
    step_ratio: usize,
    multiples: std::ops::Range<usize>,
    offset: usize,
) -> Vec<f64> {
    multiples
        .rev()
        .map(|i| (i * step_ratio + offset) as f64)
        .collect()
}

/// `trailing` spacing: `round(arange(start, 0, −T/n)) − 1`, counting back from `start`.
pub(crate) fn trailing(start: usize, num_train_timesteps: usize, n: usize) -> Vec<f64> {
    let step_ratio = num_train_timesteps as f64 / n as f64;
    numpy::round(&numpy::arange(start as f64, 0.0, -step_ratio))
        .into_iter()
        .map(|t| t - 1.0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_counts_down_in_whole_ratios() {
        assert_eq!(leading(40, 0..25, 1)[..3], [961.0, 921.0, 881.0]);
        assert_eq!(*leading(40, 0..25, 1).last().unwrap(), 1.0);
        assert_eq!(leading(50, 1..4, 0), vec![150.0, 100.0, 50.0]);
    }

    #[test]
    fn trailing_ends_before_zero() {
        assert_eq!(trailing(1000, 1000, 4), vec![999.0, 749.0, 499.0, 249.0]);
        assert_eq!(trailing(1000, 1000, 3), vec![999.0, 666.0, 332.0]);
    }
}
