//! Interleaved timing: every engine of a scenario runs one batch per round
//! (A, B, C, A, B, C, …), so a change of machine load affects all engines
//! alike, and the median over the rounds is reported.

use std::time::{Duration, Instant};

/// One engine's work in a scenario: runs the operation `n` times and
/// returns the time it took (what is excluded, e.g. dropping loaded
/// engines, happens outside that time).
pub type Batch<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

/// Wraps an operation whose result is dropped at once (evaluations,
/// contexts) into a [`Batch`].
pub fn each<'a, R>(mut op: impl FnMut() -> R + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(op());
        }
        start.elapsed()
    })
}

/// Wraps an operation whose result is kept until the batch is timed and
/// dropped after it (loads: freeing a loaded engine is not loading it).
pub fn keep<'a, R>(mut op: impl FnMut() -> R + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let mut kept = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for _ in 0..n {
            kept.push(op());
        }
        let elapsed = start.elapsed();
        drop(std::hint::black_box(kept));
        elapsed
    })
}

/// How long and how often to measure.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Rounds per scenario (each engine runs one batch per round).
    pub rounds: usize,
    /// The time a batch should take.
    pub batch: Duration,
}

/// Times `engines` in interleaved rounds and returns each one's median
/// time per operation, in nanoseconds.
pub fn interleaved(engines: &mut [Batch<'_>], settings: Settings) -> Vec<f64> {
    // Calibrate: the iterations that make one batch last `settings.batch`
    // (after a warm-up run).
    let sizes: Vec<u64> = engines
        .iter_mut()
        .map(|run| {
            run(1);
            let mut n = 1u64;
            loop {
                let took = run(n);
                if took >= settings.batch || n >= 1 << 30 {
                    break n;
                }
                let factor = settings.batch.as_secs_f64() / took.as_secs_f64().max(1e-9);
                n = ((n as f64 * factor.min(100.0)).ceil() as u64).max(n + 1);
            }
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(settings.rounds); engines.len()];
    for _ in 0..settings.rounds {
        for ((run, n), samples) in engines.iter_mut().zip(&sizes).zip(&mut samples) {
            samples.push(run(*n).as_nanos() as f64 / *n as f64);
        }
    }
    samples.into_iter().map(median).collect()
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

/// `ns` nanoseconds as a short human figure (`42.1 ns`, `3.20 µs`, `1.05 ms`).
pub fn human(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn human_units() {
        assert_eq!(human(42.14), "42.1 ns");
        assert_eq!(human(3_204.0), "3.20 µs");
        assert_eq!(human(1_050_000.0), "1.05 ms");
    }

    #[test]
    fn interleaved_reports_one_median_per_engine() {
        let settings = Settings {
            rounds: 3,
            batch: Duration::from_micros(200),
        };
        let mut engines = vec![
            each(|| std::hint::black_box(1u64) + 1),
            keep(|| vec![0u8; 64]),
        ];
        let medians = interleaved(&mut engines, settings);
        assert_eq!(medians.len(), 2);
        assert!(
            medians.iter().all(|m| m.is_finite() && *m > 0.0),
            "{medians:?}"
        );
    }
}
