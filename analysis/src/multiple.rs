//! Multiple-comparison correction across treatment-versus-control
//! comparisons: Holm's step-down procedure, which controls the family-wise
//! error rate under any dependence between the tests and is uniformly more
//! powerful than Bonferroni.

use crate::summary::AnalysisError;

/// Holm-adjusted p-values, in the order given.
///
/// With the `m` p-values sorted ascending, `p_(1) ≤ … ≤ p_(m)`, the adjusted
/// value of the `i`-th is `min(1, max_{j ≤ i} (m − j + 1) p_(j))`; rejecting
/// the hypotheses whose adjusted p-value is `≤ alpha` is Holm's procedure at
/// level `alpha`. Matches `statsmodels.stats.multitest.multipletests(p,
/// method="holm")`. Ties keep their input order. An empty input gives an
/// empty output.
///
/// ```
/// use bunting_analysis::multiple::holm;
/// let adjusted = holm(&[0.01, 0.04, 0.03]).unwrap();
/// assert_eq!(adjusted, vec![0.03, 0.06, 0.06]);
/// assert!(holm(&[0.5, 1.5]).is_err());
/// ```
pub fn holm(p_values: &[f64]) -> Result<Vec<f64>, AnalysisError> {
    for &p in p_values {
        if !(0.0..=1.0).contains(&p) {
            return Err(AnalysisError::OutOfRange {
                name: "p-value",
                value: p,
                expected: "0 <= p <= 1",
            });
        }
    }
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running_max: f64 = 0.0;
    for (rank, &index) in order.iter().enumerate() {
        let scaled = ((m - rank) as f64 * p_values[index]).min(1.0);
        running_max = running_max.max(scaled);
        adjusted[index] = running_max;
    }
    Ok(adjusted)
}

/// Which hypotheses Holm's procedure rejects at family-wise level `alpha`
/// (adjusted p-value `≤ alpha`), in the order given.
///
/// ```
/// use bunting_analysis::multiple::holm_reject;
/// assert_eq!(holm_reject(&[0.01, 0.04, 0.03], 0.05).unwrap(), vec![true, false, false]);
/// ```
pub fn holm_reject(p_values: &[f64], alpha: f64) -> Result<Vec<bool>, AnalysisError> {
    crate::summary::check_alpha(alpha)?;
    Ok(holm(p_values)?.into_iter().map(|p| p <= alpha).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_p_value_is_unchanged() {
        assert_eq!(holm(&[0.2]).unwrap(), vec![0.2]);
        assert!(holm(&[]).unwrap().is_empty());
    }

    #[test]
    fn adjusted_values_are_monotone_in_the_raw_order_and_bounded() {
        let raw = [0.2, 0.001, 0.04, 0.5, 0.011, 0.9];
        let adj = holm(&raw).unwrap();
        for (i, &a) in adj.iter().enumerate() {
            assert!(a >= raw[i] && a <= 1.0);
            for (j, &b) in adj.iter().enumerate() {
                if raw[i] < raw[j] {
                    assert!(a <= b);
                }
            }
        }
        // Never stricter than the single test, never looser than Bonferroni.
        for (a, r) in adj.iter().zip(raw) {
            assert!(*a <= (raw.len() as f64 * r).min(1.0));
        }
    }

    #[test]
    fn rejects_nan() {
        assert!(holm(&[f64::NAN]).is_err());
        assert!(holm_reject(&[0.1], 0.0).is_err());
    }
}
