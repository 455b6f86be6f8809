// The results of an experiment: the sample-ratio check (a banner when it
// fails), users per arm, the primary metric's verdict, the cumulative-lift
// chart, every metric's values and lifts with their intervals, and the
// guardrails' health.
import type { Schema } from "../../api";
import type { Experiment, Results as ResultsData } from "./data";
import * as f from "./format";
import { LiftChart } from "./LiftChart";
import { Scroll } from "./Scroll";

type MetricResult = Schema<"MetricResult">;
type ArmMetric = Schema<"ArmMetric">;
type Comparison = Schema<"Comparison">;

const ACTION: Record<string, string> = {
  serveControl: "serve control",
  rolloutToZero: "roll out to 0%",
  disableFlag: "turn the flag off",
  alert: "alert",
};

export function Results({ results, experiment }: { results: ResultsData; experiment: Experiment }) {
  const primary = results.metrics.find((m) => m.role === "primary");
  const srmFailed = results.untrustworthy || !!results.srm?.untrustworthy;
  const others = results.warnings.filter((w) => !(srmFailed && /^SAMPLE RATIO MISMATCH/i.test(w)));
  const srmWarning = results.warnings.find((w) => /^SAMPLE RATIO MISMATCH/i.test(w));
  return (
    <div class="results">
      {srmFailed && (
        <div class="note error srm" role="alert">
          <strong>Sample ratio mismatch: do not trust these results.</strong> The arms did not get the users the allocation plans
          {results.srm && ` (χ² = ${results.srm.statistic.toFixed(2)}, p = ${f.p(results.srm.pValue)})`}: the assignment or the
          exposure logging is broken, so no conclusion is shown. {srmWarning && <span class="small">{srmWarning}</span>}
        </div>
      )}
      {others.length > 0 && (
        <div class="note" role="status">
          <strong>Warnings</strong>
          <ul>
            {others.map((w) => (
              <li key={w}>{w}</li>
            ))}
          </ul>
        </div>
      )}

      <section aria-labelledby="users-heading">
        <h2 id="users-heading">Users</h2>
        <Scroll label="Users per arm">
          <table class="users-table">
            <thead>
              <tr>
                <th scope="col">Arm</th>
                <th scope="col" class="num">
                  Users (exposed)
                </th>
                <th scope="col" class="num">
                  Planned share
                </th>
                <th scope="col" class="num">
                  Observed share
                </th>
              </tr>
            </thead>
            <tbody>
              {results.arms.map((a) => (
                <tr key={a.variant} data-arm={a.variant}>
                  <th scope="row">
                    {a.variant}
                    {a.variant === results.control && <span class="muted"> (control)</span>}
                  </th>
                  <td class="num" data-col="users">
                    {f.users(a.users)}
                  </td>
                  <td class="num">{f.share(a.plannedShare)}</td>
                  <td class="num">{f.share(a.observedShare)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
        <p class="muted small">
          {results.srm
            ? `Sample-ratio check: χ² = ${results.srm.statistic.toFixed(2)}, ${results.srm.df} df, p = ${f.p(results.srm.pValue)} (${results.srm.untrustworthy ? "mismatch" : "ok"}).`
            : "Sample-ratio check: not enough users yet."}
          {results.multiArmUsers > 0 && ` ${f.users(results.multiArmUsers)} users saw more than one arm (counted in their first).`}
        </p>
      </section>

      {primary && <Verdict metric={primary} control={results.control} untrustworthy={srmFailed} />}

      {primary && <LiftChart series={results.series} control={results.control} metric={primary} />}

      <section aria-labelledby="metrics-heading">
        <h2 id="metrics-heading">Metrics</h2>
        <p class="muted small">
          Lifts are over control ({results.control}) with {Math.round(100 * (1 - results.alpha))}% intervals; the sequential columns are
          always valid, however often you look.
        </p>
        {results.metrics.map((m) => (
          <MetricTable key={m.key} metric={m} untrustworthy={srmFailed} />
        ))}
      </section>

      <Guardrails results={results} experiment={experiment} />
    </div>
  );
}

function sequentialText(c: Comparison | null | undefined, untrustworthy: boolean): string {
  if (untrustworthy) return "no conclusion";
  return c?.sequential ? f.verdict(c.sequential.decision) : f.NONE;
}

/** The primary metric's conclusion per treatment. */
function Verdict({ metric, control, untrustworthy }: { metric: MetricResult; control: string; untrustworthy: boolean }) {
  const treatments = metric.arms.filter((a) => a.variant !== control);
  return (
    <section aria-labelledby="verdict-heading">
      <h2 id="verdict-heading">Verdict on {metric.key}</h2>
      <div class="verdicts">
        {treatments.map((a) => {
          const c = a.comparison;
          const decision = c?.sequential?.decision;
          const tone = untrustworthy ? "bad" : decision === "treatmentBetter" ? "ok" : decision === "treatmentWorse" ? "bad" : "";
          return (
            <div class={`verdict ${tone}`} key={a.variant} data-arm={a.variant}>
              <h3>
                {a.variant} vs {control}
              </h3>
              <p class="big" data-col="verdict">
                {sequentialText(c, untrustworthy)}
              </p>
              <dl>
                <dt>Lift</dt>
                <dd>
                  <span data-col="relative">{f.relative(c?.relative?.estimate)}</span>{" "}
                  <span class="muted" data-col="relative-ci">
                    {f.interval(c?.relative, f.relative)}
                  </span>
                </dd>
                <dt>Always-valid interval</dt>
                <dd data-col="seq-ci">{f.interval(c?.sequential?.absolute, (v) => f.absolute(metric.kind, v))}</dd>
                <dt>Always-valid p</dt>
                <dd data-col="seq-p">{f.p(c?.sequential?.pValue)}</dd>
                <dt>Chance to beat control</dt>
                <dd data-col="chance">{f.chance(c?.chanceToBeatControl)}</dd>
              </dl>
            </div>
          );
        })}
      </div>
    </section>
  );
}

/** Where an interval sits: good, bad (entirely on one side of 0) or unclear. */
function tone(e: Schema<"Estimate"> | null | undefined, higherIsBetter: boolean): string {
  if (!e) return "unclear";
  const lo = e.ciLow ?? -Infinity;
  const hi = e.ciHigh ?? Infinity;
  if (lo > 0) return higherIsBetter ? "good" : "bad";
  if (hi < 0) return higherIsBetter ? "bad" : "good";
  return "unclear";
}

/** A forest-plot row: the relative lift's interval on the metric's shared scale, 0 marked. */
function IntervalBar({ e, scale, higherIsBetter }: { e: Schema<"Estimate"> | null | undefined; scale: [number, number]; higherIsBetter: boolean }) {
  if (!e) return null;
  const [min, max] = scale;
  const W = 160;
  const x = (v: number) => 4 + ((Math.min(max, Math.max(min, v)) - min) / (max - min)) * (W - 8);
  const lo = x(e.ciLow ?? min);
  const hi = x(e.ciHigh ?? max);
  return (
    <svg class={`interval ${tone(e, higherIsBetter)}`} width={W} height="18" viewBox={`0 0 ${W} 18`} aria-hidden="true">
      <line class="zero" x1={x(0)} x2={x(0)} y1="1" y2="17" />
      <line class="ci" x1={lo} x2={hi} y1="9" y2="9" />
      <line class="ci" x1={lo} x2={lo} y1="5" y2="13" />
      <line class="ci" x1={hi} x2={hi} y1="5" y2="13" />
      <circle class="point" cx={x(e.estimate)} cy="9" r="3.5" />
    </svg>
  );
}

function scaleOf(arms: ArmMetric[]): [number, number] {
  let lo = 0;
  let hi = 0;
  for (const a of arms) {
    const r = a.comparison?.relative;
    if (!r) continue;
    for (const v of [r.ciLow, r.ciHigh, r.estimate]) {
      if (v != null && Number.isFinite(v)) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  }
  const pad = (hi - lo) * 0.08 || 0.01;
  return [lo - pad, hi + pad];
}

function MetricTable({ metric, untrustworthy }: { metric: MetricResult; untrustworthy: boolean }) {
  const scale = scaleOf(metric.arms);
  const id = `metric-${metric.key.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  const holm = metric.arms.some((a) => a.comparison?.pValueHolm != null);
  return (
    <section class="metric" aria-labelledby={id} data-metric={metric.key}>
      <h3 id={id}>
        {metric.key} <span class="badge">{metric.role}</span>{" "}
        <span class="muted small">
          {metric.kind}, {metric.higherIsBetter ? "higher" : "lower"} is better
        </span>
      </h3>
      <Scroll label={`${metric.key} by arm`}>
        <table class="metric-table">
          <thead>
            <tr>
              <th scope="col">Arm</th>
              <th scope="col" class="num">
                Users
              </th>
              <th scope="col" class="num">
                {metric.kind === "conversion" ? "Conversion" : metric.kind === "ratio" ? "Ratio" : metric.kind === "sum" ? "Sum per user" : "Mean per user"}
              </th>
              <th scope="col">Relative lift (95% CI)</th>
              <th scope="col">
                <span class="sr-only">Interval</span>
              </th>
              <th scope="col">Absolute lift (95% CI)</th>
              <th scope="col" class="num">
                p&#8209;value{holm && " (Holm)"}
              </th>
              <th scope="col">Sequential (always valid)</th>
              <th scope="col" class="num">
                Chance to beat control
              </th>
              <th scope="col" class="num">
                Expected loss
              </th>
            </tr>
          </thead>
          <tbody>
            {metric.arms.map((a) => {
              const c = a.comparison;
              return (
                <tr key={a.variant} data-arm={a.variant}>
                  <th scope="row">{a.variant}</th>
                  <td class="num" data-col="users">
                    {f.users(a.users)}
                  </td>
                  <td class="num" data-col="value">
                    {f.value(metric.kind, a.value)}
                    {a.note && <div class="muted small">{a.note}</div>}
                  </td>
                  {c ? (
                    <>
                      <td>
                        <span data-col="relative">{f.relative(c.relative?.estimate)}</span>
                        <div class="muted small" data-col="relative-ci">
                          {f.interval(c.relative, f.relative)}
                        </div>
                      </td>
                      <td>
                        <IntervalBar e={c.relative} scale={scale} higherIsBetter={metric.higherIsBetter} />
                      </td>
                      <td>
                        <span data-col="absolute">{f.absolute(metric.kind, c.absolute.estimate)}</span>
                        <div class="muted small" data-col="absolute-ci">
                          {f.interval(c.absolute, (v) => f.absolute(metric.kind, v))}
                        </div>
                        {c.cuped && (
                          <div class="small" data-col="cuped">
                            CUPED: {f.absolute(metric.kind, c.cuped.absolute.estimate)} (p {f.p(c.cuped.pValue)}, variance −
                            {(100 * c.cuped.varianceReduction).toFixed(0)}%)
                          </div>
                        )}
                      </td>
                      <td class="num">
                        <span data-col="p">{f.p(c.pValue)}</span>
                        {c.pValueHolm != null && (
                          <div class="muted small" data-col="p-holm">
                            Holm {f.p(c.pValueHolm)}
                          </div>
                        )}
                      </td>
                      <td>
                        {c.sequential ? (
                          <>
                            <span data-col="verdict" class={`verdict-text ${untrustworthy ? "" : c.sequential.decision}`}>
                              {sequentialText(c, untrustworthy)}
                            </span>
                            <div class="muted small">
                              p <span data-col="seq-p">{f.p(c.sequential.pValue)}</span>{" "}
                              <span data-col="seq-ci">{f.interval(c.sequential.absolute, (v) => f.absolute(metric.kind, v))}</span>
                            </div>
                          </>
                        ) : (
                          <span class="muted">not enough data</span>
                        )}
                      </td>
                      <td class="num" data-col="chance">
                        {f.chance(c.chanceToBeatControl)}
                      </td>
                      <td class="num" data-col="loss">
                        {metric.kind === "conversion" ? f.absolute("conversion", c.expectedLoss).replace(/^\+/, "") : c.expectedLoss == null ? f.NONE : c.expectedLoss.toFixed(4)}
                      </td>
                    </>
                  ) : (
                    <td colSpan={7} class="muted">
                      control
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </Scroll>
    </section>
  );
}

/** Each guardrail × treatment: its harm test and whether it tripped. */
function Guardrails({ results, experiment }: { results: ResultsData; experiment: Experiment }) {
  const rows: { key: string; metric: MetricResult; arm: ArmMetric; g: Schema<"GuardrailTest"> }[] = [];
  for (const m of results.metrics) {
    for (const a of m.arms) {
      for (const g of a.comparison?.guardrails ?? []) rows.push({ key: `${g.guardrail}-${a.variant}`, metric: m, arm: a, g });
    }
  }
  if ((experiment.guardrails ?? []).length === 0) return null;
  return (
    <section aria-labelledby="guardrails-heading">
      <h2 id="guardrails-heading">Guardrails</h2>
      {rows.length === 0 ? (
        <p class="muted">No data for the guardrails yet.</p>
      ) : (
        <Scroll label="Guardrails">
          <table class="guardrail-table">
            <thead>
              <tr>
                <th scope="col">Guardrail</th>
                <th scope="col">Arm</th>
                <th scope="col">Health</th>
                <th scope="col">Change</th>
                <th scope="col">Tolerance</th>
                <th scope="col">Harm bound</th>
                <th scope="col" class="num">
                  Harm p (always valid)
                </th>
                <th scope="col">When it trips</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(({ key, metric, arm, g }) => {
                const s = g.sequential;
                const health = !s ? "not enough data" : s.decision === "treatmentWorse" ? "harmed" : "healthy";
                const bound = s?.absolute ? (metric.higherIsBetter ? s.absolute.ciHigh : s.absolute.ciLow) : null;
                return (
                  <tr key={key} data-guardrail={g.guardrail} data-arm={arm.variant}>
                    <th scope="row">
                      {metric.key} <span class="muted small">(#{g.guardrail + 1})</span>
                    </th>
                    <td>{arm.variant}</td>
                    <td data-col="health">
                      <span class={`badge ${health === "harmed" ? "bad" : health === "healthy" ? "ok" : ""}`}>{health}</span>
                    </td>
                    <td>{f.absolute(metric.kind, arm.comparison?.absolute.estimate)}</td>
                    <td>{f.absolute(metric.kind, g.tolerance).replace(/^\+/, "")}</td>
                    <td>
                      {bound == null ? f.NONE : `${metric.higherIsBetter ? "≤" : "≥"} ${f.absolute(metric.kind, bound)}`}
                    </td>
                    <td class="num" data-col="harm-p">
                      {f.p(s?.pValue)}
                    </td>
                    <td>{ACTION[g.action] ?? g.action}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </Scroll>
      )}
    </section>
  );
}
