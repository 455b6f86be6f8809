// The results as CSV, made in the browser from the JSON the page shows (so
// the download is exactly what is on screen): one row per metric and arm,
// control first with the comparison columns empty; the columns of the API's
// `?format=csv`.
import type { Results } from "./data";

export const CSV_COLUMNS = [
  "metric",
  "kind",
  "role",
  "variant",
  "users",
  "value",
  "total",
  "variance",
  "absolute_lift",
  "absolute_ci_low",
  "absolute_ci_high",
  "relative_lift",
  "relative_ci_low",
  "relative_ci_high",
  "p_value",
  "p_value_holm",
  "sequential_p_value",
  "sequential_ci_low",
  "sequential_ci_high",
  "chance_to_beat_control",
  "expected_loss",
  "cuped_absolute_lift",
  "cuped_p_value",
  "srm_p_value",
  "untrustworthy",
] as const;

function num(v: number | null | undefined): string {
  return v == null || !Number.isFinite(v) ? "" : String(v);
}

/** A CSV field: quoted when it holds a comma, a quote or a line break. */
export function field(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The results as CSV text (header line first, `\n` line ends). */
export function resultsCsv(r: Results): string {
  const lines = [CSV_COLUMNS.join(",")];
  const srm = num(r.srm?.pValue);
  for (const m of r.metrics) {
    for (const a of m.arms) {
      const c = a.comparison ?? undefined;
      const seq = c?.sequential ?? undefined;
      lines.push(
        [
          field(m.key),
          m.kind,
          m.role,
          field(a.variant),
          String(a.users),
          num(a.value),
          num(a.total),
          num(a.variance),
          num(c?.absolute.estimate),
          num(c?.absolute.ciLow),
          num(c?.absolute.ciHigh),
          num(c?.relative?.estimate),
          num(c?.relative?.ciLow),
          num(c?.relative?.ciHigh),
          num(c?.pValue),
          num(c?.pValueHolm),
          num(seq?.pValue),
          num(seq?.absolute?.ciLow),
          num(seq?.absolute?.ciHigh),
          num(c?.chanceToBeatControl),
          num(c?.expectedLoss),
          num(c?.cuped?.absolute.estimate),
          num(c?.cuped?.pValue),
          srm,
          String(r.untrustworthy),
        ].join(","),
      );
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Offers `text` as a file download named `name`. */
export function download(name: string, text: string, type = "text/csv;charset=utf-8") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
