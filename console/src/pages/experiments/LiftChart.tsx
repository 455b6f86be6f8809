// The cumulative relative lift of the primary metric over time (uPlot): one
// line per treatment arm, its interval as a band when the series carries
// one, 0 as a dashed reference. The same numbers are in a visually hidden
// table for screen readers, and the caption says what is drawn.
import { useMemo } from "preact/hooks";
import type { Schema } from "../../api";
import { Chart, type ChartData, type ChartOptions } from "../../components/Chart";
import * as f from "./format";

type SeriesPoint = Schema<"SeriesPoint">;
type MetricResult = Schema<"MetricResult">;

const COLORS = ["#0a58ca", "#b35900", "#7a3db8", "#1a7f37", "#a40e26", "#4d5b6a"];

function rgba(hex: string, a: number): string {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${n >> 16}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
}

/** Per treatment: the daily lift and interval ends, in percent. */
export function liftLines(series: SeriesPoint[], control: string) {
  const treatments: string[] = [];
  for (const p of series) for (const a of p.arms) if (a.variant !== control && !treatments.includes(a.variant)) treatments.push(a.variant);
  return treatments.map((variant) => {
    const at = series.map((p) => p.arms.find((a) => a.variant === variant));
    const pct = (v: number | null | undefined) => (v == null || !Number.isFinite(v) ? null : 100 * v);
    return {
      variant,
      lift: at.map((a) => pct(a?.relative?.estimate)),
      low: at.map((a) => pct(a?.relative?.ciLow)),
      high: at.map((a) => pct(a?.relative?.ciHigh)),
      users: at.map((a) => a?.users ?? null),
    };
  });
}

export function LiftChart({ series, control, metric }: { series: SeriesPoint[]; control: string; metric: MetricResult }) {
  const lines = useMemo(() => liftLines(series, control), [series, control]);
  const { options, data } = useMemo(() => {
    const x = series.map((p) => f.daySeconds(p.date));
    const data: (number | null)[][] = [x];
    const s: ChartOptions["series"] = [{ label: "Day", value: (_u, v) => (v == null ? "—" : new Date(v * 1000).toISOString().slice(0, 10)) }];
    const bands: NonNullable<ChartOptions["bands"]> = [];
    lines.forEach((l, i) => {
      const color = COLORS[i % COLORS.length]!;
      data.push(l.lift);
      s.push({ label: `${l.variant} lift`, stroke: color, width: 2, points: { show: true, size: 6 }, value: (_u, v) => (v == null ? "—" : `${v.toFixed(2)}%`) });
      if (l.low.some((v) => v != null) || l.high.some((v) => v != null)) {
        const hi = data.push(l.high) - 1;
        s.push({ label: `${l.variant} upper 95%`, stroke: rgba(color, 0.45), width: 1, dash: [4, 3], points: { show: false }, value: (_u, v) => (v == null ? "—" : `${v.toFixed(2)}%`) });
        const lo = data.push(l.low) - 1;
        s.push({ label: `${l.variant} lower 95%`, stroke: rgba(color, 0.45), width: 1, dash: [4, 3], points: { show: false }, value: (_u, v) => (v == null ? "—" : `${v.toFixed(2)}%`) });
        bands.push({ series: [hi, lo], fill: rgba(color, 0.12) });
      }
    });
    data.push(x.map(() => 0));
    s.push({ label: "no change", stroke: "#57606a", width: 1, dash: [2, 4], points: { show: false } });
    const options: ChartOptions = {
      series: s,
      bands,
      scales: { x: { time: true } },
      axes: [
        // One tick per day of the series, labelled with its date.
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, splits: () => x, values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(5, 10)) },
        { stroke: "#57606a", grid: { stroke: "#eaeef2" }, values: (_u, ticks) => ticks.map((t) => `${t}%`), size: 60 },
      ],
      cursor: { drag: { x: false, y: false } },
      legend: { live: true },
    };
    return { options, data: data as ChartData };
  }, [series, lines]);

  const last = series.length - 1;
  return (
    <section aria-labelledby="chart-heading">
      <h2 id="chart-heading">Cumulative lift over time</h2>
      {series.length === 0 ? (
        <p class="muted">No daily data yet.</p>
      ) : (
        <figure class="lift-chart">
          <figcaption id="chart-caption">
            Cumulative relative lift of {metric.key} over control ({control}), per day ({series.length} {series.length === 1 ? "day" : "days"}
            {series.length > 0 && `, ${series[0]!.date.slice(0, 10)} to ${series[last]!.date.slice(0, 10)}`}), with 95% intervals.{" "}
            {lines.map((l) => `${l.variant}: ${f.relative(l.lift[last] == null ? null : l.lift[last]! / 100)} on the last day.`).join(" ")}
          </figcaption>
          <Chart options={options} data={data} />
          <div class="sr-only">
            <table class="lift-table">
              <caption>Cumulative lift of {metric.key} per day</caption>
              <thead>
                <tr>
                  <th scope="col">Day</th>
                  <th scope="col">Arm</th>
                  <th scope="col">Users</th>
                  <th scope="col">Lift</th>
                  <th scope="col">95% low</th>
                  <th scope="col">95% high</th>
                </tr>
              </thead>
              <tbody>
                {series.flatMap((p, i) =>
                  lines.map((l) => (
                    <tr key={`${p.date}-${l.variant}`} data-day={p.date.slice(0, 10)} data-arm={l.variant}>
                      <th scope="row">{p.date.slice(0, 10)}</th>
                      <td>{l.variant}</td>
                      <td data-col="users">{f.users(l.users[i])}</td>
                      <td data-col="lift">{pctText(l.lift[i])}</td>
                      <td data-col="low">{pctText(l.low[i])}</td>
                      <td data-col="high">{pctText(l.high[i])}</td>
                    </tr>
                  )),
                )}
              </tbody>
            </table>
          </div>
        </figure>
      )}
    </section>
  );
}

function pctText(v: number | null | undefined): string {
  return v == null ? f.NONE : f.relative(v / 100);
}
