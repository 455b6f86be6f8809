//! The results as CSV ([`to_csv`]) and as a text table ([`to_table`]).

use std::fmt::Write as _;

use super::{Estimate, ExperimentResults};
use crate::model::metric::MetricKind;

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The CSV header of [`to_csv`].
pub const CSV_HEADER: &str = "metric,kind,role,variant,users,value,total,variance,\
absolute_lift,absolute_ci_low,absolute_ci_high,relative_lift,relative_ci_low,relative_ci_high,\
p_value,p_value_holm,sequential_p_value,sequential_ci_low,sequential_ci_high,\
chance_to_beat_control,expected_loss,cuped_absolute_lift,cuped_p_value,\
srm_p_value,untrustworthy";

/// The results as CSV: [`CSV_HEADER`], then one row per (metric, arm),
/// control first; comparison columns are empty for control.
pub fn to_csv(r: &ExperimentResults) -> String {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let srm = num(r.srm.as_ref().map(|s| s.p_value));
    for m in &r.metrics {
        let kind = serde_json::to_value(m.kind).unwrap_or_default();
        let role = serde_json::to_value(m.role).unwrap_or_default();
        for a in &m.arms {
            let c = a.comparison.as_ref();
            let seq = c.and_then(|c| c.sequential.as_ref());
            let fields = [
                csv_field(&m.key),
                kind.as_str().unwrap_or_default().to_string(),
                role.as_str().unwrap_or_default().to_string(),
                csv_field(&a.variant),
                a.users.to_string(),
                num(a.value),
                a.total.to_string(),
                num(a.variance),
                num(c.map(|c| c.absolute.estimate)),
                num(c.and_then(|c| c.absolute.ci_low)),
                num(c.and_then(|c| c.absolute.ci_high)),
                num(c.and_then(|c| c.relative.map(|r| r.estimate))),
                num(c.and_then(|c| c.relative.and_then(|r| r.ci_low))),
                num(c.and_then(|c| c.relative.and_then(|r| r.ci_high))),
                num(c.map(|c| c.p_value)),
                num(c.and_then(|c| c.p_value_holm)),
                num(seq.map(|s| s.p_value)),
                num(seq.and_then(|s| s.absolute.and_then(|a| a.ci_low))),
                num(seq.and_then(|s| s.absolute.and_then(|a| a.ci_high))),
                num(c.and_then(|c| c.chance_to_beat_control)),
                num(c.and_then(|c| c.expected_loss)),
                num(c.and_then(|c| c.cuped.as_ref().map(|k| k.absolute.estimate))),
                num(c.and_then(|c| c.cuped.as_ref().map(|k| k.p_value))),
                srm.clone(),
                r.untrustworthy.to_string(),
            ];
            out.push_str(&fields.join(","));
            out.push('\n');
        }
    }
    out
}

fn pct(v: f64) -> String {
    format!("{:+.2}%", 100.0 * v)
}

fn value_text(kind: MetricKind, v: Option<f64>) -> String {
    match (kind, v) {
        (_, None) => "-".into(),
        (MetricKind::Conversion, Some(v)) => format!("{:.2}%", 100.0 * v),
        (_, Some(v)) => format!("{v:.4}"),
    }
}

/// The results as a terminal table: per metric, one line per arm (users,
/// value, relative lift with its interval, fixed and sequential p-values,
/// chance to beat control), then the SRM line and the warnings.
pub fn to_table(r: &ExperimentResults) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "experiment {} (flag {}, control {}, {})",
        r.experiment, r.flag, r.control, r.status
    );
    if r.untrustworthy {
        let _ = writeln!(out, "!!! UNTRUSTWORTHY: do not draw conclusions !!!");
    }
    for m in &r.metrics {
        let role = serde_json::to_value(m.role).unwrap_or_default();
        let kind = serde_json::to_value(m.kind).unwrap_or_default();
        let _ = writeln!(
            out,
            "\nmetric {} ({}, {})",
            m.key,
            kind.as_str().unwrap_or_default(),
            role.as_str().unwrap_or_default()
        );
        let rows: Vec<[String; 7]> = std::iter::once(
            [
                "arm",
                "users",
                "value",
                "lift [95% CI]",
                "p (fixed)",
                "p (sequential)",
                "P(beat control)",
            ]
            .map(String::from),
        )
        .chain(m.arms.iter().map(|a| {
            let c = a.comparison.as_ref();
            let lift = match c.and_then(|c| c.relative) {
                Some(Estimate {
                    estimate,
                    ci_low: Some(lo),
                    ci_high: Some(hi),
                }) => format!("{} [{}, {}]", pct(estimate), pct(lo), pct(hi)),
                _ => match c {
                    Some(c) => format!("{:+.4} (absolute)", c.absolute.estimate),
                    None if a.variant == r.control => "(control)".into(),
                    None => a.note.clone().unwrap_or_else(|| "-".into()),
                },
            };
            let p = match c {
                Some(c) => match c.p_value_holm {
                    Some(h) => format!("{:.4} (Holm {h:.4})", c.p_value),
                    None => format!("{:.4}", c.p_value),
                },
                None => "-".into(),
            };
            [
                a.variant.clone(),
                a.users.to_string(),
                value_text(m.kind, a.value),
                lift,
                p,
                c.and_then(|c| c.sequential.as_ref())
                    .map_or("-".into(), |s| format!("{:.4}", s.p_value)),
                c.and_then(|c| c.chance_to_beat_control)
                    .map_or("-".into(), |p| format!("{:.1}%", 100.0 * p)),
            ]
        }))
        .collect();
        let widths: Vec<usize> = (0..7)
            .map(|j| rows.iter().map(|r| r[j].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &rows {
            let line: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(j, (cell, w))| {
                    if j == 0 || j == 3 {
                        format!("{cell:<w$}")
                    } else {
                        format!("{cell:>w$}")
                    }
                })
                .collect();
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
    }
    let _ = writeln!(out);
    match &r.srm {
        Some(s) => {
            let _ = writeln!(
                out,
                "SRM: chi-square {:.2}, df {}, p = {:.4} ({})",
                s.statistic,
                s.df,
                s.p_value,
                if s.untrustworthy { "MISMATCH" } else { "ok" }
            );
        }
        None => {
            let _ = writeln!(out, "SRM: not checked (no users)");
        }
    }
    if r.multi_arm_users > 0 {
        let _ = writeln!(out, "users in several arms: {}", r.multi_arm_users);
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}
