//! Per-arm input summaries and the crate's error type.
//!
//! Every method of this crate works on summaries rather than raw events: a
//! [`Proportion`] (users exposed, users converted) for conversion metrics and
//! [`Moments`] (count, mean, sample variance) for continuous metrics. Both are
//! validated when built, including when deserialized, so a value of either
//! type always satisfies its invariants.

use serde::{Deserialize, Serialize};

/// Why an analysis could not be computed. No function of this crate panics
/// on bad input; each returns one of these instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// More conversions than users.
    #[error("conversions ({conversions}) exceed the number of users ({n})")]
    ConversionsExceedN {
        /// Users in the arm.
        n: u64,
        /// Conversions reported for the arm.
        conversions: u64,
    },
    /// Too few observations for the quantity asked for.
    #[error("{what} needs at least {min} observations, got {n}")]
    TooFewObservations {
        /// What needed them.
        what: &'static str,
        /// The minimum.
        min: u64,
        /// What was given.
        n: u64,
    },
    /// A NaN or infinite value where a finite one is required.
    #[error("{0} must be finite")]
    NonFinite(&'static str),
    /// A negative value where only non-negative ones make sense.
    #[error("{0} must not be negative")]
    Negative(&'static str),
    /// A parameter outside its domain (for example a level `alpha` outside
    /// `(0, 1)` or a prior parameter that is not positive).
    #[error("{name} = {value} is out of range: {expected}")]
    OutOfRange {
        /// The parameter.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },
    /// Both arms have zero variance (for example no conversions at all), so
    /// the test statistic is undefined.
    #[error("the standard error is zero: {0}")]
    ZeroVariance(&'static str),
    /// Inputs whose lengths must agree do not.
    #[error("length mismatch: {0}")]
    LengthMismatch(&'static str),
    /// An empty input where at least one element is needed.
    #[error("empty input: {0}")]
    Empty(&'static str),
}

/// The outcome of a conversion metric in one arm: `conversions` of `n` users
/// converted.
///
/// ```
/// use bunting_analysis::summary::Proportion;
/// let p = Proportion::new(1000, 120).unwrap();
/// assert_eq!(p.rate(), Some(0.12));
/// assert!(Proportion::new(10, 11).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawProportion")]
pub struct Proportion {
    n: u64,
    conversions: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawProportion {
    n: u64,
    conversions: u64,
}

impl TryFrom<RawProportion> for Proportion {
    type Error = AnalysisError;
    fn try_from(raw: RawProportion) -> Result<Self, Self::Error> {
        Proportion::new(raw.n, raw.conversions)
    }
}

impl Proportion {
    /// `conversions` of `n` users. Fails if `conversions > n`. `n = 0` is
    /// accepted (a Bayesian posterior is then the prior); the tests that need
    /// users check for them.
    pub fn new(n: u64, conversions: u64) -> Result<Self, AnalysisError> {
        if conversions > n {
            return Err(AnalysisError::ConversionsExceedN { n, conversions });
        }
        Ok(Self { n, conversions })
    }

    /// Users in the arm.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Users who converted.
    pub fn conversions(&self) -> u64 {
        self.conversions
    }

    /// The conversion rate `conversions / n`, `None` when `n = 0`.
    pub fn rate(&self) -> Option<f64> {
        (self.n > 0).then(|| self.conversions as f64 / self.n as f64)
    }
}

/// Count, mean and sample variance (`ddof = 1`) of a continuous metric in
/// one arm.
///
/// ```
/// use bunting_analysis::summary::Moments;
/// let m = Moments::from_values(&[1.0, 2.0, 3.0, 4.0]).unwrap();
/// assert_eq!(m.n(), 4);
/// assert_eq!(m.mean(), 2.5);
/// assert!((m.variance() - 5.0 / 3.0).abs() < 1e-15);
/// assert!(Moments::new(1, 0.0, 0.0).is_err()); // a variance needs n >= 2
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "RawMoments")]
pub struct Moments {
    n: u64,
    mean: f64,
    variance: f64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawMoments {
    n: u64,
    mean: f64,
    variance: f64,
}

impl TryFrom<RawMoments> for Moments {
    type Error = AnalysisError;
    fn try_from(raw: RawMoments) -> Result<Self, Self::Error> {
        Moments::new(raw.n, raw.mean, raw.variance)
    }
}

impl Moments {
    /// A summary from its parts. `variance` is the sample variance (divisor
    /// `n - 1`). Fails if `n < 2`, a value is not finite or the variance is
    /// negative.
    pub fn new(n: u64, mean: f64, variance: f64) -> Result<Self, AnalysisError> {
        if n < 2 {
            return Err(AnalysisError::TooFewObservations {
                what: "a sample variance",
                min: 2,
                n,
            });
        }
        if !mean.is_finite() {
            return Err(AnalysisError::NonFinite("mean"));
        }
        if !variance.is_finite() {
            return Err(AnalysisError::NonFinite("variance"));
        }
        if variance < 0.0 {
            return Err(AnalysisError::Negative("variance"));
        }
        Ok(Self { n, mean, variance })
    }

    /// The summary of raw values, computed in one pass with Welford's
    /// algorithm (numerically stable for large means).
    pub fn from_values(values: &[f64]) -> Result<Self, AnalysisError> {
        let mut acc = Welford::default();
        for &v in values {
            if !v.is_finite() {
                return Err(AnalysisError::NonFinite("value"));
            }
            acc.push(v);
        }
        acc.moments()
    }

    /// Number of observations.
    pub fn n(&self) -> u64 {
        self.n
    }

    /// Sample mean.
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// Sample variance (divisor `n - 1`).
    pub fn variance(&self) -> f64 {
        self.variance
    }

    /// Variance of the mean, `variance / n`.
    pub fn variance_of_mean(&self) -> f64 {
        self.variance / self.n as f64
    }
}

/// Welford's streaming mean and sum of squared deviations.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    pub(crate) fn push(&mut self, v: f64) {
        self.n += 1;
        let delta = v - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (v - self.mean);
    }

    pub(crate) fn moments(&self) -> Result<Moments, AnalysisError> {
        if self.n < 2 {
            return Err(AnalysisError::TooFewObservations {
                what: "a sample variance",
                min: 2,
                n: self.n,
            });
        }
        Moments::new(self.n, self.mean, self.m2 / (self.n - 1) as f64)
    }
}

/// Checks a significance level `alpha` (the interval level is `1 - alpha`).
pub(crate) fn check_alpha(alpha: f64) -> Result<(), AnalysisError> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(AnalysisError::OutOfRange {
            name: "alpha",
            value: alpha,
            expected: "0 < alpha < 1",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportion_validates() {
        assert_eq!(
            Proportion::new(3, 4),
            Err(AnalysisError::ConversionsExceedN {
                n: 3,
                conversions: 4
            })
        );
        assert_eq!(Proportion::new(0, 0).unwrap().rate(), None);
    }

    #[test]
    fn moments_validate() {
        assert!(matches!(
            Moments::new(1, 1.0, 1.0),
            Err(AnalysisError::TooFewObservations { .. })
        ));
        assert_eq!(
            Moments::new(5, f64::NAN, 1.0),
            Err(AnalysisError::NonFinite("mean"))
        );
        assert_eq!(
            Moments::new(5, 0.0, f64::INFINITY),
            Err(AnalysisError::NonFinite("variance"))
        );
        assert_eq!(
            Moments::new(5, 0.0, -1.0),
            Err(AnalysisError::Negative("variance"))
        );
        assert_eq!(
            Moments::from_values(&[1.0, f64::NAN]),
            Err(AnalysisError::NonFinite("value"))
        );
        assert!(Moments::from_values(&[1.0]).is_err());
    }

    #[test]
    fn welford_is_stable_for_large_offsets() {
        let base = 1e9;
        let m = Moments::from_values(&[base + 4.0, base + 7.0, base + 13.0, base + 16.0]).unwrap();
        assert_eq!(m.mean(), base + 10.0);
        assert!((m.variance() - 30.0).abs() < 1e-9, "{}", m.variance());
    }

    #[test]
    fn serde_camel_case_and_validation() {
        let p: Proportion = serde_json::from_str(r#"{"n":10,"conversions":3}"#).unwrap();
        assert_eq!(p, Proportion::new(10, 3).unwrap());
        assert!(serde_json::from_str::<Proportion>(r#"{"n":1,"conversions":3}"#).is_err());
        let m = Moments::new(4, 1.5, 2.0).unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"n":4,"mean":1.5,"variance":2.0}"#);
        assert_eq!(serde_json::from_str::<Moments>(&json).unwrap(), m);
        assert!(serde_json::from_str::<Moments>(r#"{"n":4,"mean":1.5,"variance":-2.0}"#).is_err());
    }
}
