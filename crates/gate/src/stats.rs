//! The statistics of the latency rules: medians, the one-sided Mann-Whitney U test (stored
//! mode: two independent samples), and the Wilcoxon signed-rank test with the Hodges-Lehmann
//! estimate and its confidence interval (paired mode: one sample of paired log-ratios).
//!
//! Hand-written rather than taken from a statistics crate: each test is a few dozen lines, the
//! crates that have them pull in far more than we use, and owning them lets the tests pin them
//! to reference values (computed with SciPy, quoted in the tests).

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

/// The outcome of a Wilcoxon signed-rank test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SignedRank {
    /// `W+`: the sum of the ranks of the positive differences (ties averaged).
    pub w_plus: f64,
    /// The number of non-zero differences that were ranked.
    pub n: usize,
    /// The one-sided p-value for the chosen alternative.
    pub p: f64,
    /// Whether `p` comes from the exact null distribution (no ties, `n` ≤ [`EXACT_MAX`]) or
    /// from the normal approximation (tie and continuity corrections).
    pub exact: bool,
}

/// Up to this many differences without ties, the signed-rank test uses the exact null
/// distribution, as SciPy does.
pub const EXACT_MAX: usize = 50;

/// The one-sided Wilcoxon signed-rank test of `x − shift`: with [`Alternative::Greater`], of
/// "the differences are centred at or below zero" against "above"; with [`Alternative::Less`]
/// the mirror. Zero differences are dropped (Wilcoxon's method). The same as SciPy's
/// `wilcoxon(x - shift, alternative=..., method="exact")` without ties and for up to
/// [`EXACT_MAX`] differences, and `method="approx", correction=True` otherwise.
///
/// Returns `None` if a value is NaN or no difference is left.
pub fn wilcoxon_signed_rank(x: &[f64], shift: f64, alternative: Alternative) -> Option<SignedRank> {
    if x.iter().any(|v| v.is_nan()) || shift.is_nan() {
        return None;
    }
    let mut differences: Vec<f64> = x.iter().map(|v| v - shift).filter(|d| *d != 0.0).collect();
    if differences.is_empty() {
        return None;
    }
    differences.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    let n = differences.len();
    let mut w_plus = 0.0;
    let mut tie_term = 0.0; // Σ (t³ − t) over groups of t tied absolute values
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && differences[end].abs() == differences[start].abs() {
            end += 1;
        }
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let positive = differences[start..end].iter().filter(|d| **d > 0.0).count();
        w_plus += average_rank * positive as f64;
        let t = (end - start) as f64;
        tie_term += t * t * t - t;
        start = end;
    }
    let nf = n as f64;
    let (p, exact) = if tie_term == 0.0 && n <= EXACT_MAX {
        // W+ takes integer values here; P(W+ >= w) for Greater, P(W+ <= w) for Less.
        let distribution = signed_rank_distribution(n);
        let w = w_plus.round() as usize;
        let p = match alternative {
            Alternative::Greater => distribution[w..].iter().sum::<f64>(),
            Alternative::Less => distribution[..=w].iter().sum::<f64>(),
        };
        (p.min(1.0), true)
    } else {
        let mean = nf * (nf + 1.0) / 4.0;
        let variance = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0 - tie_term / 48.0;
        if variance <= 0.0 {
            return Some(SignedRank {
                w_plus,
                n,
                p: 1.0,
                exact: false,
            });
        }
        let sd = variance.sqrt();
        let p = match alternative {
            Alternative::Greater => normal_sf((w_plus - mean - 0.5) / sd),
            Alternative::Less => normal_sf(-(w_plus - mean + 0.5) / sd),
        };
        (p, false)
    };
    Some(SignedRank {
        w_plus,
        n,
        p,
        exact,
    })
}

/// The null distribution of `W+` for `n` differences: `P(W+ = w)` for `w` in
/// `0..=n(n+1)/2`, each rank positive with probability ½ independently.
pub fn signed_rank_distribution(n: usize) -> Vec<f64> {
    let max = n * (n + 1) / 2;
    let mut probabilities = vec![0.0; max + 1];
    probabilities[0] = 1.0;
    let mut reached = 0;
    for rank in 1..=n {
        reached += rank;
        for w in (0..=reached).rev() {
            let with = if w >= rank {
                probabilities[w - rank]
            } else {
                0.0
            };
            probabilities[w] = 0.5 * (probabilities[w] + with);
        }
    }
    probabilities
}

/// The Walsh averages `(x_i + x_j) / 2` for `i <= j`, sorted.
fn walsh_averages(x: &[f64]) -> Vec<f64> {
    let mut averages = Vec::with_capacity(x.len() * (x.len() + 1) / 2);
    for (i, a) in x.iter().enumerate() {
        for b in &x[i..] {
            averages.push((a + b) / 2.0);
        }
    }
    averages.sort_by(f64::total_cmp);
    averages
}

/// The Hodges-Lehmann estimate of the centre of `x`: the median of its Walsh averages, the
/// point estimate that goes with the signed-rank test. `None` for an empty slice or a NaN.
pub fn hodges_lehmann(x: &[f64]) -> Option<f64> {
    if x.iter().any(|v| v.is_nan()) {
        return None;
    }
    median(&walsh_averages(x))
}

/// The distribution-free confidence interval of the Hodges-Lehmann estimate at `confidence`
/// (two-sided, e.g. 0.98 for one-sided bounds at α = 1% each): the `k`-th smallest and `k`-th
/// largest Walsh averages, with `k` the largest count such that the signed-rank statistic falls
/// below `k` with probability at most `(1 − confidence) / 2` (exact distribution; for more than
/// [`EXACT_MAX`] values, its normal approximation) — the shifts the two one-sided tests do not
/// reject (Hollander & Wolfe). With too few values for that confidence it is the whole range of
/// the Walsh averages. `None` for an empty slice or a NaN.
pub fn hodges_lehmann_interval(x: &[f64], confidence: f64) -> Option<(f64, f64)> {
    if x.is_empty() || x.iter().any(|v| v.is_nan()) {
        return None;
    }
    let averages = walsh_averages(x);
    let m = averages.len();
    let tail = (1.0 - confidence) / 2.0;
    let n = x.len();
    // k = the number of Walsh averages cut from each end: the largest k with P(W+ < k) ≤ tail.
    let k = if n <= EXACT_MAX {
        let distribution = signed_rank_distribution(n);
        let mut cumulative = 0.0;
        let mut k = 0;
        for (w, p) in distribution.iter().enumerate() {
            if cumulative + p > tail {
                break;
            }
            cumulative += p;
            k = w + 1;
        }
        k
    } else {
        let nf = n as f64;
        let mean = nf * (nf + 1.0) / 4.0;
        let sd = (nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0).sqrt();
        let z = normal_quantile(1.0 - tail);
        (mean - z * sd).floor().max(0.0) as usize
    };
    // 1-based: the k-th smallest is averages[k - 1]; k = 0 leaves the whole range.
    let cut = k.saturating_sub(1).min((m - 1) / 2);
    Some((averages[cut], averages[m - 1 - cut]))
}

/// The quantile function of the standard normal distribution (Acklam's rational
/// approximation, relative error below 1.2e-9, refined by one Newton step on `normal_sf`).
pub fn normal_quantile(p: f64) -> f64 {
    if p <= 0.0 {
        return f64::NEG_INFINITY;
    }
    if p >= 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let low = 0.024_25;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Newton step: the density is exp(-x²/2)/√(2π), and cdf(x) = 1 − sf(x).
    let error = (1.0 - normal_sf(x)) - p;
    let density = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    x - error / density
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

    // Reference values from SciPy 1.17.1:
    //   from scipy.stats import wilcoxon
    //   wilcoxon(x - shift, alternative=..., method="exact")      (no ties)
    //   wilcoxon(y, alternative=..., method="approx", correction=True)

    const PAIRED: [f64; 10] = [0.12, -0.03, 0.25, 0.08, 0.19, 0.31, 0.05, 0.22, 0.15, -0.01];

    #[test]
    fn signed_rank_exact_matches_scipy() {
        let up = wilcoxon_signed_rank(&PAIRED, 0.0, Alternative::Greater).unwrap();
        assert!(up.exact);
        assert_eq!(up.w_plus, 52.0);
        assert!(close(up.p, 0.004_882_812_5), "{up:?}");
        let down = wilcoxon_signed_rank(&PAIRED, 0.0, Alternative::Less).unwrap();
        assert!(close(down.p, 0.997_070_312_5), "{down:?}");
        let shift = 1.2_f64.ln();
        let above = wilcoxon_signed_rank(&PAIRED, shift, Alternative::Greater).unwrap();
        assert_eq!(above.w_plus, 16.0);
        assert!(close(above.p, 0.883_789_062_5), "{above:?}");
        let below = wilcoxon_signed_rank(&PAIRED, shift, Alternative::Less).unwrap();
        assert!(close(below.p, 0.137_695_312_5), "{below:?}");
    }

    #[test]
    fn signed_rank_with_ties_matches_scipy_approx() {
        let y = [
            0.1, 0.1, 0.2, -0.05, 0.3, 0.2, 0.15, 0.1, -0.1, 0.25, 0.05, 0.2,
        ];
        let up = wilcoxon_signed_rank(&y, 0.0, Alternative::Greater).unwrap();
        assert!(!up.exact);
        assert_eq!(up.w_plus, 72.0);
        assert!(close(up.p, 0.005_168_507_266_704_338), "{up:?}");
        let down = wilcoxon_signed_rank(&y, 0.0, Alternative::Less).unwrap();
        assert!(close(down.p, 0.995_894_280_670_211_4), "{down:?}");
    }

    #[test]
    fn signed_rank_of_many_differences_matches_scipy_approx() {
        let z = [
            0.0501, 0.0799, 0.0226, -0.0391, 0.0045, -0.0492, 0.056, 0.184, 0.0008, -0.012, 0.099,
            0.0857, 0.0605, -0.043, 0.0471, 0.1195, -0.0844, 0.0042, -0.1401, -0.079, -0.1342,
            0.0265, -0.0767, 0.0771, 0.0657, 0.0313, -0.2017, -0.0039, 0.0451, 0.0613, -0.103,
            0.0022, -0.0479, -0.0309, 0.1561, -0.0308, 0.0467, 0.1384, -0.0084, 0.0388, 0.061,
            0.0564, -0.0725, 0.0576, 0.1859, -0.1047, 0.1359, 0.0619, -0.0141, 0.25, 0.1262,
            -0.0699, 0.0575, 0.1077, 0.0311, 0.1183, 0.0433, 0.1167, 0.1939, -0.0176,
        ];
        let up = wilcoxon_signed_rank(&z, 0.0, Alternative::Greater).unwrap();
        assert!(!up.exact);
        assert_eq!(up.w_plus, 1249.0);
        assert!(close(up.p, 0.007_042_375_871_221_062), "{up:?}");
        let down = wilcoxon_signed_rank(&z, 0.0, Alternative::Less).unwrap();
        assert!(close(down.p, 0.993_100_548_784_303_8), "{down:?}");
    }

    #[test]
    fn the_exact_distribution_sums_to_one_and_is_symmetric() {
        for n in [1, 2, 7, 30, 50] {
            let d = signed_rank_distribution(n);
            assert!((d.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{n}");
            for w in 0..d.len() {
                assert!((d[w] - d[d.len() - 1 - w]).abs() < 1e-15, "{n} {w}");
            }
        }
        // n = 3: W+ in 0..=6 with counts 1 1 1 2 1 1 1 (of 8).
        let d = signed_rank_distribution(3);
        let counts: Vec<f64> = d.iter().map(|p| p * 8.0).collect();
        assert_eq!(counts, [1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]);
    }

    #[test]
    fn hodges_lehmann_and_its_interval() {
        // numpy: median of the 55 Walsh averages of PAIRED.
        assert!(close(hodges_lehmann(&PAIRED).unwrap(), 0.135));
        // n = 10, 98%: P(W+ <= 5) = 10/1024 <= 1% < P(W+ <= 6) = 14/1024, so k = 6: from the
        // 6th smallest to the 6th largest of the 55 Walsh averages.
        let (lo, hi) = hodges_lehmann_interval(&PAIRED, 0.98).unwrap();
        let mut walsh = Vec::new();
        for (i, a) in PAIRED.iter().enumerate() {
            for b in &PAIRED[i..] {
                walsh.push((a + b) / 2.0);
            }
        }
        walsh.sort_by(f64::total_cmp);
        assert_eq!((lo, hi), (walsh[5], walsh[49]));
        // Too few values for the confidence asked: the whole range.
        assert_eq!(hodges_lehmann_interval(&[0.1, 0.3], 0.98), Some((0.1, 0.3)));
        assert_eq!(hodges_lehmann(&[]), None);
    }

    #[test]
    fn normal_quantiles_invert_the_tail() {
        for p in [1e-9, 0.001, 0.01, 0.025, 0.3, 0.5, 0.9, 0.99, 0.999_999] {
            let z = normal_quantile(p);
            assert!(
                ((1.0 - normal_sf(z)) - p).abs() < 1e-12 * p.max(1e-3),
                "{p}: {z}"
            );
        }
        assert!(close(normal_quantile(0.975), 1.959_963_984_540_054));
    }

    #[test]
    fn all_tied_means_no_evidence() {
        let r = mann_whitney_u(&[1.0; 5], &[1.0; 7], Alternative::Greater).unwrap();
        assert_eq!(r.p, 1.0);
        assert!(mann_whitney_u(&[], &[1.0], Alternative::Less).is_none());
        assert!(mann_whitney_u(&[f64::NAN], &[1.0], Alternative::Less).is_none());
    }
}
