//! Sample-ratio mismatch (SRM): are the arms' user counts consistent with the
//! planned allocation?
//!
//! A Pearson chi-square goodness-of-fit test of the observed counts against
//! the counts the allocation weights predict, with `k − 1` degrees of freedom
//! for `k` arms (as `scipy.stats.chisquare(observed, expected)`). An SRM
//! means assignment or logging is broken, so every other number of the
//! experiment is suspect: results with `p < SRM_P_THRESHOLD` are marked
//! [`SrmResult::untrustworthy`] and must be shown as such.

use serde::{Deserialize, Serialize};
use statrs::function::gamma::gamma_ur;

use crate::summary::AnalysisError;

/// Below this p-value the allocation is considered broken and the
/// experiment's results untrustworthy.
pub const SRM_P_THRESHOLD: f64 = 0.001;

/// The sample-ratio-mismatch check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SrmResult {
    /// Pearson's chi-square statistic `Σ (o − e)² / e`.
    pub statistic: f64,
    /// Degrees of freedom, `k − 1`.
    pub df: u64,
    /// `P(χ²_{k−1} ≥ statistic)`.
    pub p_value: f64,
    /// The counts the planned allocation predicts, in arm order.
    pub expected: Vec<f64>,
    /// `p_value < SRM_P_THRESHOLD`: the experiment's results must not be
    /// trusted.
    pub untrustworthy: bool,
}

/// Chi-square test of observed per-arm user counts against planned
/// allocation `weights` (any positive scale: `[50, 50]`, `[0.2, 0.8]` and
/// `[1, 4]` all work).
///
/// Fails with fewer than two arms, mismatched lengths, a weight that is not
/// finite and positive, or no users at all.
///
/// ```
/// use bunting_analysis::srm::srm_check;
/// let ok = srm_check(&[5021, 4979], &[0.5, 0.5]).unwrap();
/// assert!(!ok.untrustworthy);
/// let broken = srm_check(&[5300, 4700], &[0.5, 0.5]).unwrap();
/// assert!(broken.untrustworthy && broken.p_value < 1e-8); // χ² = 36 on 1 df
/// ```
pub fn srm_check(observed: &[u64], weights: &[f64]) -> Result<SrmResult, AnalysisError> {
    if observed.len() != weights.len() {
        return Err(AnalysisError::LengthMismatch(
            "one allocation weight per arm",
        ));
    }
    if observed.len() < 2 {
        return Err(AnalysisError::TooFewObservations {
            what: "a sample-ratio check (arms)",
            min: 2,
            n: observed.len() as u64,
        });
    }
    for &w in weights {
        if !(w.is_finite() && w > 0.0) {
            return Err(AnalysisError::OutOfRange {
                name: "allocation weight",
                value: w,
                expected: "finite and > 0",
            });
        }
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return Err(AnalysisError::Empty("no users in any arm"));
    }
    let weight_sum: f64 = weights.iter().sum();
    let expected: Vec<f64> = weights
        .iter()
        .map(|w| total as f64 * w / weight_sum)
        .collect();
    let statistic: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(&o, &e)| {
            let d = o as f64 - e;
            d * d / e
        })
        .sum();
    let df = observed.len() as u64 - 1;
    // Survival function of χ²_df: Q(df/2, x/2), the upper regularized gamma.
    let p_value = if statistic > 0.0 {
        gamma_ur(df as f64 / 2.0, statistic / 2.0)
    } else {
        1.0
    };
    Ok(SrmResult {
        statistic,
        df,
        p_value,
        expected,
        untrustworthy: p_value < SRM_P_THRESHOLD,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_match_has_p_one() {
        let r = srm_check(&[100, 300], &[1.0, 3.0]).unwrap();
        assert_eq!(r.statistic, 0.0);
        assert_eq!(r.p_value, 1.0);
        assert!(!r.untrustworthy);
    }

    #[test]
    fn weights_are_scale_free() {
        let a = srm_check(&[480, 520, 1010], &[1.0, 1.0, 2.0]).unwrap();
        let b = srm_check(&[480, 520, 1010], &[25.0, 25.0, 50.0]).unwrap();
        assert!((a.statistic - b.statistic).abs() < 1e-12);
        assert!((a.p_value - b.p_value).abs() < 1e-15);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            srm_check(&[1, 2], &[1.0]),
            Err(AnalysisError::LengthMismatch(_))
        ));
        assert!(matches!(
            srm_check(&[1], &[1.0]),
            Err(AnalysisError::TooFewObservations { .. })
        ));
        assert!(matches!(
            srm_check(&[1, 2], &[1.0, 0.0]),
            Err(AnalysisError::OutOfRange { .. })
        ));
        assert!(matches!(
            srm_check(&[1, 2], &[1.0, f64::NAN]),
            Err(AnalysisError::OutOfRange { .. })
        ));
        assert!(matches!(
            srm_check(&[0, 0], &[1.0, 1.0]),
            Err(AnalysisError::Empty(_))
        ));
    }

    #[test]
    fn clear_mismatch_is_flagged() {
        // Expected 5000 each: χ² = 2 · 300² / 5000 = 36 on 1 df, p ≈ 2e-9.
        let r = srm_check(&[5300, 4700], &[1.0, 1.0]).unwrap();
        assert!((r.statistic - 36.0).abs() < 1e-12);
        assert!(r.p_value > 1e-9 && r.p_value < 1e-8, "{}", r.p_value);
        assert!(r.untrustworthy);
        // A mild imbalance is not.
        let r = srm_check(&[5100, 4900], &[1.0, 1.0]).unwrap();
        assert!(r.p_value > SRM_P_THRESHOLD && !r.untrustworthy);
    }
}
