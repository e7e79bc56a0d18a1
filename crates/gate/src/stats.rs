//! The statistics of the latency rule: medians and the one-sided Mann-Whitney U test.
//!
//! Hand-written rather than taken from a statistics crate: the test is forty lines, the crates
//! that have it pull in far more than we use, and owning it lets the tests pin it to reference
//! values (computed with SciPy, quoted in the tests).

/// The median of `values` (the mean of the two middle values for an even count), as criterion
/// computes it; `None` for an empty slice or if a value is NaN.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Some(if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    })
}

/// Which way the alternative hypothesis of a one-sided test points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alternative {
    /// `x` tends to be greater than `y`.
    Greater,
    /// `x` tends to be less than `y`.
    Less,
}

/// The outcome of a Mann-Whitney U test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// The U statistic of `x`: the number of pairs `(x_i, y_j)` with `x_i > y_j`, ties counting ½.
    pub u: f64,
    /// The standardised statistic, with continuity and tie corrections.
    pub z: f64,
    /// The one-sided p-value for the chosen alternative.
    pub p: f64,
}

/// The one-sided Mann-Whitney U test of `x` against `y`, with the normal approximation, the
/// tie correction of the variance and a continuity correction of ½ — the same as SciPy's
/// `mannwhitneyu(x, y, alternative=..., method="asymptotic", use_continuity=True)`.
///
/// Returns `None` if either sample is empty or holds a NaN. If every value is tied the variance
/// is zero and nothing can be concluded: the p-value is 1.
pub fn mann_whitney_u(x: &[f64], y: &[f64], alternative: Alternative) -> Option<MannWhitney> {
    if x.is_empty() || y.is_empty() || x.iter().chain(y).any(|v| v.is_nan()) {
        return None;
    }
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let n = n1 + n2;

    // Rank the pooled sample, giving tied values the average of their ranks.
    let mut pooled: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    pooled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_x = 0.0;
    let mut tie_term = 0.0; // Σ (t³ − t) over groups of t tied values
    let mut start = 0;
    while start < pooled.len() {
        let mut end = start + 1;
        while end < pooled.len() && pooled[end].0 == pooled[start].0 {
            end += 1;
        }
        // Ranks are 1-based: positions start..end hold ranks start+1..=end.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let in_x = pooled[start..end]
            .iter()
            .filter(|(_, from_x)| *from_x)
            .count() as f64;
        rank_sum_x += average_rank * in_x;
        let t = (end - start) as f64;
        tie_term += t * t * t - t;
        start = end;
    }

    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)));
    if variance <= 0.0 {
        return Some(MannWhitney { u, z: 0.0, p: 1.0 });
    }
    let sd = variance.sqrt();
    let (z, p) = match alternative {
        Alternative::Greater => {
            let z = (u - mean - 0.5) / sd;
            (z, normal_sf(z))
        }
        Alternative::Less => {
            let z = (u - mean + 0.5) / sd;
            (z, normal_sf(-z))
        }
    };
    Some(MannWhitney { u, z, p })
}

/// The survival function of the standard normal distribution, `P(Z > z)`, accurate in the far
/// tail too (through `erfc`, not `1 − cdf`).
pub fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1e-300)
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn normal_tail_matches_reference_values() {
        // scipy.stats.norm.sf(z) for z = 0, 1.959963984540054, 2.326347874040841, 8.
        assert!(close(normal_sf(0.0), 0.5));
        assert!(close(normal_sf(1.959963984540054), 0.025));
        assert!(close(normal_sf(2.326347874040841), 0.01));
        assert!(close(normal_sf(8.0), 6.22096057427174e-16));
    }

    // Reference values from SciPy 1.17.1:
    //   from scipy.stats import mannwhitneyu
    //   mannwhitneyu(x, y, alternative=..., method="asymptotic", use_continuity=True)

    #[test]
    fn mann_whitney_with_a_few_ties_matches_scipy() {
        let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.15, 1.29];
        let greater = mann_whitney_u(&x, &y, Alternative::Greater).unwrap();
        assert_eq!(greater.u, 58.0);
        assert!(close(greater.p, 0.066_459_729_092_659_46), "{greater:?}");
        let less = mann_whitney_u(&x, &y, Alternative::Less).unwrap();
        assert!(close(less.p, 0.944_204_400_289_712_8), "{less:?}");
    }

    #[test]
    fn mann_whitney_with_many_ties_matches_scipy() {
        let x = [1.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 5.0];
        let y = [2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0, 7.0];
        let greater = mann_whitney_u(&x, &y, Alternative::Greater).unwrap();
        assert_eq!(greater.u, 17.0);
        assert!(close(greater.p, 0.983_186_622_864_930_9), "{greater:?}");
        let less = mann_whitney_u(&x, &y, Alternative::Less).unwrap();
        assert!(close(less.p, 0.020_970_046_075_914_146), "{less:?}");
    }

    #[test]
    fn mann_whitney_of_separated_samples_matches_scipy() {
        let x: Vec<f64> = (0..50).map(|i| 130.0 + f64::from(i) * 0.1).collect();
        let y: Vec<f64> = (0..50).map(|i| 100.0 + f64::from(i) * 0.1).collect();
        let greater = mann_whitney_u(&x, &y, Alternative::Greater).unwrap();
        assert_eq!(greater.u, 2500.0);
        assert!(close(greater.p, 3.533_035_965_194_466e-18), "{greater:?}");
    }

    #[test]
    fn all_tied_means_no_evidence() {
        let r = mann_whitney_u(&[1.0; 5], &[1.0; 7], Alternative::Greater).unwrap();
        assert_eq!(r.p, 1.0);
        assert!(mann_whitney_u(&[], &[1.0], Alternative::Less).is_none());
        assert!(mann_whitney_u(&[f64::NAN], &[1.0], Alternative::Less).is_none());
    }
}
