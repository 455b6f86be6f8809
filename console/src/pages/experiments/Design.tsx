// Designing an experiment (new, `?env=`) or editing one (`…/:env/:experiment/edit`):
// the flag whose variants are the arms, the control, the planned allocation,
// the primary and secondary metrics and the guardrails (with a way to create
// a metric on the spot), the hypothesis and the planned dates. A 422's
// problems go next to their fields; a 412 offers to compare with the
// current version.
import { useEffect, useMemo, useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { api, asApiError, must, withEtag, type ApiError } from "../../api";
import { ErrorNote, FieldProblems } from "../../components/ErrorNote";
import { useLoad, useTitle } from "../../hooks";
import { projectPath, useEnvironments } from "../../scope";
import { experiment as loadExperiment, flags as loadFlags, metrics as loadMetrics, variantsOf, type Experiment, type Metric } from "./data";
import { ACTIONS, EMPTY, equalWeights, formOf, layerOf, specOf, type Action, type Form } from "./designForm";
import { Compare } from "./Compare";
import { Field } from "./Field";
import { MetricForm } from "./MetricForm";
import "./experiments.css";

export default function Design() {
  const { params } = useRoute();
  const { query, route } = useLocation();
  const org = params.org!;
  const project = params.project!;
  const editing = params.experiment;
  const envs = useEnvironments(org, project);
  const env = params.env ?? query.env ?? envs.data?.find((e) => e.key === "production")?.key ?? envs.data?.[0]?.key;
  useTitle(editing ? `Edit ${editing}` : "New experiment");
  const flagList = useLoad(() => loadFlags(org, project), [org, project]);
  const metricList = useLoad(() => loadMetrics(org, project), [org, project]);
  const current = useLoad(
    async () => (editing && env ? loadExperiment({ org, project, env, experiment: editing }) : undefined),
    [org, project, env, editing],
  );
  const [form, setForm] = useState<Form>(EMPTY);
  const [etag, setEtag] = useState("");
  const [loaded, setLoaded] = useState(!editing);
  const [error, setError] = useState<ApiError>();
  const [busy, setBusy] = useState(false);
  const [theirs, setTheirs] = useState<{ data: Experiment; etag: string }>();
  const [creatingMetric, setCreatingMetric] = useState<null | "primary" | "secondary" | number>(null);

  const candidates = useMemo(() => (flagList.data ?? []).filter((f) => variantsOf(f).length >= 2), [flagList.data]);
  const flag = useMemo(() => flagList.data?.find((f) => f.key === form.flag), [flagList.data, form.flag]);
  const variants = variantsOf(flag);
  const metricKeys = (metricList.data ?? []).map((m) => m.key);

  // Fill the form once, from the experiment being edited.
  useEffect(() => {
    if (!loaded && current.data && flagList.data) {
      setForm(formOf(current.data.data, flagList.data.find((f) => f.key === current.data!.data.flag)));
      setEtag(current.data.etag);
      setLoaded(true);
    }
  }, [current.data, flagList.data, loaded]);

  const status = current.data?.data.status ?? "draft";
  const fixed = status !== "draft"; // running: flag, control, allocation, layer and primary metric stay
  const readOnly = status === "stopped" || status === "decided";
  const set = (patch: Partial<Form>) => setForm((f) => ({ ...f, ...patch }));
  const chooseFlag = (key: string) => {
    const f = flagList.data?.find((x) => x.key === key);
    const vs = variantsOf(f);
    set({ flag: key, control: f && vs.includes(f.offVariant) ? f.offVariant : (vs[0] ?? ""), weights: equalWeights(vs), inLayer: !!layerOf(f) });
  };
  const totalWeight = variants.reduce((s, v) => s + (Number(form.weights[v]) || 0), 0);

  const save = async (ifMatch = etag) => {
    if (!env) return;
    setBusy(true);
    setError(undefined);
    try {
      let body = specOf(form, flag);
      const before = current.data?.data;
      if (editing && fixed && before) {
        // What a running experiment keeps is sent as it was read (an empty
        // allocation stays empty rather than becoming equal weights).
        const { flag: f, control, allocation, layer, primaryMetric } = before;
        body = { ...body, flag: f, control, allocation, layer, primaryMetric };
      }
      if (editing) {
        const saved = withEtag(
          await api.PUT("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", {
            params: { path: { org, project, env, experiment: editing }, header: { "If-Match": ifMatch } },
            body,
          }),
        );
        setEtag(saved.etag);
        route(projectPath(org, project, `/experiments/${encodeURIComponent(env)}/${encodeURIComponent(editing)}`));
      } else {
        const made = must(
          await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments", {
            params: { path: { org, project, env } },
            body,
          }),
        );
        route(projectPath(org, project, `/experiments/${encodeURIComponent(env)}/${encodeURIComponent(made.key)}`));
      }
    } catch (e) {
      setError(asApiError(e));
    } finally {
      setBusy(false);
    }
  };
  const compare = async () => {
    if (!env || !editing) return;
    try {
      setTheirs(await loadExperiment({ org, project, env, experiment: editing }));
    } catch (e) {
      setError(asApiError(e));
    }
  };
  // A metric made in the dialog: listed first, then chosen where it was asked for.
  const metricCreated = async (m: Metric) => {
    const target = creatingMetric;
    await metricList.reload();
    setForm((f) =>
      target === "primary"
        ? { ...f, primary: m.key }
        : target === "secondary"
          ? { ...f, secondary: [...f.secondary, m.key] }
          : typeof target === "number"
            ? { ...f, guardrails: f.guardrails.map((g, i) => (i === target ? { ...g, metric: m.key } : g)) }
            : f,
    );
    setCreatingMetric(null);
  };

  const loading = !flagList.data || !metricList.data || !envs.data || (editing && !loaded);
  const back = projectPath(org, project, editing && env ? `/experiments/${encodeURIComponent(env)}/${encodeURIComponent(editing)}` : "/experiments");
  return (
    <section class="experiments design">
      <p class="crumbs">
        <a href={projectPath(org, project, "/experiments")}>Experiments</a> ›
      </p>
      <h1>{editing ? `Edit ${editing}` : "New experiment"}</h1>
      <p class="muted">
        in <strong>{envs.data?.find((e) => e.key === env)?.name ?? env}</strong>
        {status !== "draft" && ` · ${status}`}
      </p>
      <ErrorNote error={flagList.error ?? metricList.error ?? current.error} />
      {loading && !flagList.error && !metricList.error && !current.error && <p aria-busy="true">Loading…</p>}
      {!loading && readOnly && <div class="note">A {status} experiment cannot change.</div>}
      {!loading && !readOnly && (
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void save();
          }}
          noValidate
        >
          {error && (
            <ErrorNote
              error={error}
              onReload={
                error.stale
                  ? () => {
                      void compare();
                    }
                  : undefined
              }
            />
          )}
          {theirs && (
            <Compare
              mine={specOf(form, flag)}
              theirs={theirs.data}
              onTakeTheirs={() => {
                setForm(formOf(theirs.data, flagList.data?.find((f) => f.key === theirs.data.flag)));
                setEtag(theirs.etag);
                setTheirs(undefined);
                setError(undefined);
              }}
              onKeepMine={() => {
                setEtag(theirs.etag);
                setTheirs(undefined);
                void save(theirs.etag);
              }}
            />
          )}

          <fieldset>
            <legend>Experiment</legend>
            <Field id="x-key" label="Key" error={error} field="key" hint="Letters, digits, - _ and .; unique in the environment">
              {(invalid, d) => (
                <input id="x-key" value={form.key} required disabled={!!editing} aria-invalid={invalid} aria-describedby={d} onInput={(e) => set({ key: e.currentTarget.value })} />
              )}
            </Field>
            <Field id="x-hypothesis" label="Hypothesis" error={error} field="hypothesis">
              {(invalid, d) => (
                <textarea id="x-hypothesis" rows={2} value={form.hypothesis} aria-invalid={invalid} aria-describedby={d} placeholder="A shorter checkout converts better" onInput={(e) => set({ hypothesis: e.currentTarget.value })} />
              )}
            </Field>
          </fieldset>

          <fieldset>
            <legend>Arms</legend>
            <Field id="x-flag" label="Flag" error={error} field="flag" hint="Its variants are the arms">
              {(invalid, d) => (
                <select id="x-flag" value={form.flag} required disabled={fixed} aria-invalid={invalid} aria-describedby={d} onChange={(e) => chooseFlag(e.currentTarget.value)}>
                  <option value="">choose a flag…</option>
                  {candidates.map((f) => (
                    <option key={f.key} value={f.key}>
                      {f.key} ({variantsOf(f).length} variants)
                    </option>
                  ))}
                </select>
              )}
            </Field>
            {flag && (
              <>
                <table class="arms-table">
                  <caption class="sr-only">Arms of {flag.key}: control and planned allocation</caption>
                  <thead>
                    <tr>
                      <th scope="col">Variant</th>
                      <th scope="col">Value</th>
                      <th scope="col">Control</th>
                      <th scope="col">Weight</th>
                      <th scope="col" class="num">
                        Planned share
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {variants.map((v) => {
                      const w = Number(form.weights[v]) || 0;
                      return (
                        <tr key={v}>
                          <th scope="row">{v}</th>
                          <td>
                            <code>{JSON.stringify((flag.variants as Record<string, unknown>)[v])}</code>
                          </td>
                          <td>
                            <input
                              type="radio"
                              name="control"
                              aria-label={`${v} is the control`}
                              checked={form.control === v}
                              disabled={fixed}
                              onChange={() => set({ control: v })}
                            />
                          </td>
                          <td>
                            <input
                              type="number"
                              class="weight"
                              min="0"
                              step="any"
                              aria-label={`Weight of ${v}`}
                              value={form.weights[v] ?? ""}
                              disabled={fixed}
                              aria-invalid={(error?.problemsAt(`allocation.${v}`).length ?? 0) > 0}
                              onInput={(e) => set({ weights: { ...form.weights, [v]: e.currentTarget.value } })}
                            />
                            <FieldProblems id={`x-weight-${v}-problems`} problems={error?.problemsAt(`allocation.${v}`) ?? []} />
                          </td>
                          <td class="num">{totalWeight > 0 ? `${((100 * w) / totalWeight).toFixed(1)}%` : "—"}</td>
                        </tr>
                      );
                    })}
                  </tbody>
                </table>
                <FieldProblems id="x-control-problems" problems={error?.problemsAt("control") ?? []} />
                <FieldProblems
                  id="x-allocation-problems"
                  problems={(error?.problems ?? []).filter((p) => p.path === "allocation")}
                />
                <p class="muted small">
                  The allocation is the split you plan: the sample-ratio check compares the users each arm gets with it, and a weight of 0
                  leaves a variant out. The flag's targeting in this environment serves the variants (give it a rollout with the same weights
                  on the <a href={projectPath(org, project, `/flags/${encodeURIComponent(flag.key)}`)}>flag's page</a>).
                </p>
                {layerOf(flag) && (
                  <div class="row">
                    <input id="x-layer" type="checkbox" checked={form.inLayer} disabled={fixed} onChange={(e) => set({ inLayer: e.currentTarget.checked })} />
                    <label for="x-layer">
                      Mutually exclusive with the other experiments of layer <code>{layerOf(flag)}</code>
                    </label>
                    <FieldProblems id="x-layer-problems" problems={error?.problemsAt("layer") ?? []} />
                  </div>
                )}
              </>
            )}
          </fieldset>

          <fieldset>
            <legend>Metrics</legend>
            <div class="row">
              <Field id="x-primary" label="Primary metric" error={error} field="primaryMetric" hint="The decision rests on it">
                {(invalid, d) => (
                  <select id="x-primary" value={form.primary} required disabled={fixed} aria-invalid={invalid} aria-describedby={d} onChange={(e) => set({ primary: e.currentTarget.value })}>
                    <option value="">choose a metric…</option>
                    {(metricList.data ?? []).map((m) => (
                      <option key={m.key} value={m.key}>
                        {m.key} ({m.kind} of {m.event})
                      </option>
                    ))}
                  </select>
                )}
              </Field>
              {!fixed && (
                <button type="button" class="link" onClick={() => setCreatingMetric("primary")}>
                  New metric…
                </button>
              )}
            </div>
            <fieldset class="choices">
              <legend>Secondary metrics</legend>
              {metricKeys.length === 0 && <p class="muted small">No metric yet.</p>}
              {metricKeys.map((k) => (
                <label key={k} class="choice">
                  <input
                    type="checkbox"
                    checked={form.secondary.includes(k)}
                    onChange={(e) => set({ secondary: e.currentTarget.checked ? [...form.secondary, k] : form.secondary.filter((s) => s !== k) })}
                  />
                  {k}
                </label>
              ))}
              {form.secondary.map((k, i) => (
                <FieldProblems key={k} id={`x-secondary-${i}-problems`} problems={error?.problemsAt(`secondaryMetrics[${i}]`) ?? []} />
              ))}
              <button type="button" class="link" onClick={() => setCreatingMetric("secondary")}>
                New metric…
              </button>
            </fieldset>
            <fieldset class="guardrails">
              <legend>Guardrails</legend>
              <p class="muted small">
                A guardrail is a metric that must not get worse by more than its tolerance (in the metric's units). The monitor tests it
                continuously with an always-valid one-sided test and acts when it trips.
              </p>
              {form.guardrails.map((g, i) => (
                <div class="row guardrail" key={i} role="group" aria-label={`Guardrail ${i + 1}`}>
                  <Field id={`x-g${i}-metric`} label="Metric" error={error} field={`guardrails[${i}].metric`}>
                    {(invalid, d) => (
                      <select
                        id={`x-g${i}-metric`}
                        value={g.metric}
                        aria-invalid={invalid}
                        aria-describedby={d}
                        onChange={(e) => set({ guardrails: form.guardrails.map((x, j) => (j === i ? { ...x, metric: e.currentTarget.value } : x)) })}
                      >
                        <option value="">choose…</option>
                        {metricKeys.map((k) => (
                          <option key={k}>{k}</option>
                        ))}
                      </select>
                    )}
                  </Field>
                  <Field id={`x-g${i}-tolerance`} label="Tolerance" error={error} field={`guardrails[${i}].tolerance`}>
                    {(invalid, d) => (
                      <input
                        id={`x-g${i}-tolerance`}
                        type="number"
                        step="any"
                        min="0"
                        class="weight"
                        value={g.tolerance}
                        aria-invalid={invalid}
                        aria-describedby={d}
                        onInput={(e) => set({ guardrails: form.guardrails.map((x, j) => (j === i ? { ...x, tolerance: e.currentTarget.value } : x)) })}
                      />
                    )}
                  </Field>
                  <Field id={`x-g${i}-action`} label="When it trips" error={error} field={`guardrails[${i}].action`}>
                    {(invalid, d) => (
                      <select
                        id={`x-g${i}-action`}
                        value={g.action}
                        aria-invalid={invalid}
                        aria-describedby={d}
                        onChange={(e) => set({ guardrails: form.guardrails.map((x, j) => (j === i ? { ...x, action: e.currentTarget.value as Action } : x)) })}
                      >
                        {ACTIONS.map(([a, label]) => (
                          <option key={a} value={a}>
                            {label}
                          </option>
                        ))}
                      </select>
                    )}
                  </Field>
                  <button type="button" class="link" onClick={() => setCreatingMetric(i)}>
                    New metric…
                  </button>
                  <button type="button" onClick={() => set({ guardrails: form.guardrails.filter((_, j) => j !== i) })} aria-label={`Remove guardrail ${i + 1}`}>
                    Remove
                  </button>
                </div>
              ))}
              <FieldProblems id="x-guardrails-problems" problems={(error?.problems ?? []).filter((p) => p.path === "guardrails")} />
              <button type="button" onClick={() => set({ guardrails: [...form.guardrails, { metric: "", tolerance: "0", action: "serveControl" }] })}>
                Add guardrail
              </button>
            </fieldset>
          </fieldset>

          <fieldset>
            <legend>Schedule (planned, informative)</legend>
            <div class="row">
              <Field id="x-start" label="Planned start" error={error} field="startAt">
                {(invalid, d) => <input id="x-start" type="datetime-local" value={form.startAt} aria-invalid={invalid} aria-describedby={d} onInput={(e) => set({ startAt: e.currentTarget.value })} />}
              </Field>
              <Field id="x-stop" label="Planned stop" error={error} field="stopAt">
                {(invalid, d) => <input id="x-stop" type="datetime-local" value={form.stopAt} aria-invalid={invalid} aria-describedby={d} onInput={(e) => set({ stopAt: e.currentTarget.value })} />}
              </Field>
            </div>
          </fieldset>

          <details class="stats-note">
            <summary>Statistics</summary>
            <ul>
              <li>Every interval and test is at α = 0.05 (95% intervals).</li>
              <li>
                Sequential testing is always on: the always-valid p-value and confidence sequence (mSPRT) may be watched at any time, and
                you may stop as soon as they decide.
              </li>
              <li>Fixed-horizon tests: a z-test for conversions, Welch's t-test for means and sums, the delta method for ratios; Holm-adjusted with more than two arms.</li>
              <li>Bayesian chance to beat control and expected loss for every treatment.</li>
              <li>CUPED variance reduction is applied when users have events before their exposure.</li>
              <li>The sample-ratio-mismatch check flags the results as untrustworthy when p &lt; 0.001.</li>
            </ul>
          </details>

          <div class="actions">
            <a class="button" href={back}>
              Cancel
            </a>
            <button type="submit" class="primary" disabled={busy}>
              {editing ? "Save" : "Create draft"}
            </button>
          </div>
        </form>
      )}
      <MetricForm org={org} project={project} open={creatingMetric !== null} onClose={() => setCreatingMetric(null)} onCreated={(m) => void metricCreated(m)} />
    </section>
  );
}
