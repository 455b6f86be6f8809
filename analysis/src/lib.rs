//! # bunting-analysis
//!
//! The statistics of bunting's experiments and guardrails, as pure
//! functions over per-arm summaries (no I/O): the origin aggregates
//! exposures and metric events and calls these.
//!
//! - [`frequentist`]: fixed-horizon two-proportion z-test and Welch's t-test,
//!   confidence intervals for absolute and relative lift (delta method).
//! - [`sequential`]: always-valid inference for results watched
//!   continuously.
//! - [`bayesian`]: chance to beat control, expected loss, credible intervals.
//! - [`srm`]: the sample-ratio-mismatch check.
//! - [`cuped`]: variance reduction with a pre-exposure covariate.
//! - [`multiple`]: Holm's correction across comparisons.

pub mod bayesian;
pub mod cuped;
pub mod frequentist;
mod integrate;
pub mod multiple;
pub mod sequential;
pub mod srm;
pub mod summary;

pub use summary::AnalysisError;
