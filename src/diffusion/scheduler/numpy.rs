//! The numpy routines diffusers uses to lay out inference schedules (`linspace`, `arange` with a
//! float step, `interp`, `round`), reproduced with numpy's own float64 arithmetic so timesteps
//! and σ agree exactly with the reference, including its rounding quirks.

/// `np.linspace(start, stop, num)` (endpoint included): `i·step + start`, last value `stop`.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let delta = stop - start;
    let div = num.saturating_sub(1);
    let mut values: Vec<f64> = if div == 0 {
        (0..num).map(|i| i as f64 * delta + start).collect()
    } else {
        let step = delta / div as f64;
        if step == 0.0 {
            (0..num)
                .map(|i| i as f64 / div as f64 * delta + start)
                .collect()
        } else {
            (0..num).map(|i| i as f64 * step + start).collect()
        }
    };
    if let Some(last) = values.last_mut().filter(|_| num > 1) {
        *last = stop;
    }
    values
}

/// `np.arange(start, stop, step)` for float64: ⌈(stop − start)/step⌉ values; the second is
/// `start + step`, the others `start + i·(second − start)` as numpy's fill computes them.
pub(crate) fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len < 1.0 {
        return Vec::new();
    }
    let len = len as usize;
    let second = start + step;
    let delta = second - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * delta,
        })
        .collect()
}

/// `np.round` (half to even) applied to every value.
pub(crate) fn round(values: &[f64]) -> Vec<f64> {
    values.iter().map(|v| v.round_ties_even()).collect()
}

/// `np.interp(x, np.arange(len(fp)), fp)`: piecewise-linear interpolation over unit-spaced
/// nodes, clamped to the end values, computed as `slope·(x − x_j) + f_j` in float64.
pub(crate) fn interp_unit(x: f64, fp: &[f32]) -> f64 {
    let Some(&last) = fp.last() else {
        return f64::NAN;
    };
    let last_x = (fp.len() - 1) as f64;
    if x.is_nan() {
        return f64::NAN;
    }
    if x <= 0.0 {
        return f64::from(fp[0]);
    }
    if x >= last_x {
        return f64::from(last);
    }
    let j = x.floor() as usize;
    let (lo, hi) = (f64::from(fp[j]), f64::from(fp[j + 1]));
    if x == j as f64 {
        return lo;
    }
    let slope = hi - lo;
    let value = slope * (x - j as f64) + lo;
    if value.is_nan() {
        slope * (x - (j + 1) as f64) + hi
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(linspace(0.0, 999.0, 4), vec![0.0, 333.0, 666.0, 999.0]);
        assert_eq!(linspace(0.0, 999.0, 1), vec![0.0]);
        assert!(linspace(0.0, 1.0, 0).is_empty());
        // np.linspace(0, 999, 21)[1] = 49.95; round → 50, 499.5 → 500 (half to even).
        let v = round(&linspace(0.0, 999.0, 21));
        assert_eq!(v[1], 50.0);
        assert_eq!(v[10], 500.0);
        assert_eq!(v[11], 549.0);
    }

    #[test]
    fn arange_length_and_values_match_numpy() {
        assert_eq!(
            arange(1000.0, 0.0, -250.0),
            vec![1000.0, 750.0, 500.0, 250.0]
        );
        assert_eq!(arange(0.0, 1.0, 2.0), vec![0.0]);
        assert!(arange(0.0, -1.0, 1.0).is_empty());
        let v = arange(1000.0, 0.0, -1000.0 / 3.0);
        assert_eq!(v.len(), 3);
        assert_eq!(round(&v), vec![1000.0, 667.0, 333.0]);
    }

    #[test]
    fn interp_is_linear_between_nodes_and_clamped_outside() {
        let fp = [1.0f32, 3.0, 7.0];
        assert_eq!(interp_unit(0.5, &fp), 2.0);
        assert_eq!(interp_unit(1.25, &fp), 4.0);
        assert_eq!(interp_unit(1.0, &fp), 3.0);
        assert_eq!(interp_unit(-2.0, &fp), 1.0);
        assert_eq!(interp_unit(9.0, &fp), 7.0);
    }
}
