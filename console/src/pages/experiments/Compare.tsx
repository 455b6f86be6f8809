// A 412 on saving an experiment: your edit against the version someone else
// saved meanwhile, field by field, with the two ways out.
import type { Experiment, ExperimentSpec } from "./data";

const COMPARED: [keyof ExperimentSpec, string][] = [
  ["flag", "Flag"],
  ["control", "Control"],
  ["allocation", "Allocation"],
  ["layer", "Layer"],
  ["hypothesis", "Hypothesis"],
  ["primaryMetric", "Primary metric"],
  ["secondaryMetrics", "Secondary metrics"],
  ["guardrails", "Guardrails"],
  ["startAt", "Planned start"],
  ["stopAt", "Planned stop"],
];

function show(v: unknown): string {
  if (v == null || (Array.isArray(v) && v.length === 0)) return "—";
  return typeof v === "string" ? v : JSON.stringify(v);
}

/** Your edit against the version someone else saved meanwhile. */
export function Compare({ mine, theirs, onTakeTheirs, onKeepMine }: { mine: ExperimentSpec; theirs: Experiment; onTakeTheirs: () => void; onKeepMine: () => void }) {
  const norm = (k: keyof ExperimentSpec, v: unknown) => (k === "guardrails" && Array.isArray(v) ? v.map((g) => ({ action: "serveControl", tolerance: 0, ...g })) : v);
  const rows = COMPARED.filter(([k]) => show(norm(k, mine[k])) !== show(norm(k, theirs[k])));
  return (
    <section class="compare" aria-labelledby="compare-heading">
      <h2 id="compare-heading">Your edit and the current version (v{theirs.version})</h2>
      {rows.length === 0 ? (
        <p>Nothing you changed differs from the current version.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Yours</th>
              <th scope="col">Current</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(([k, label]) => (
              <tr key={k}>
                <th scope="row">{label}</th>
                <td>
                  <code>{show(mine[k])}</code>
                </td>
                <td>
                  <code>{show(theirs[k])}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div class="actions">
        <button type="button" onClick={onTakeTheirs}>
          Discard mine, load the current version
        </button>
        <button type="button" class="primary" onClick={onKeepMine}>
          Save mine over it
        </button>
      </div>
    </section>
  );
}
