// The experiments of the selected environment: status, flag, arms, start,
// primary metric, filtered by status; and the project's metrics (the
// experiments' building blocks) with a way to add one.
import { useMemo, useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad, useTitle } from "../../hooks";
import { projectPath, useEnv, useEnvironments } from "../../scope";
import { can, useMe } from "../../session";
import { STATUSES, armsOf, experiments, flags, metrics, type Status } from "./data";
import { MetricForm } from "./MetricForm";
import { Scroll } from "./Scroll";
import { StatusBadge } from "./StatusBadge";
import "./experiments.css";

export default function ExperimentList() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Experiments · ${project}`);
  const me = useMe();
  const envs = useEnvironments(org, project);
  const [env, chooseEnv] = useEnv(org, project, envs.data);
  const list = useLoad(async () => (env ? experiments(org, project, env) : undefined), [org, project, env]);
  const flagList = useLoad(() => flags(org, project), [org, project]);
  const metricList = useLoad(() => metrics(org, project), [org, project]);
  const [status, setStatus] = useState<Status | "">("");
  const [creatingMetric, setCreatingMetric] = useState(false);

  const byFlag = useMemo(() => new Map((flagList.data ?? []).map((f) => [f.key, f])), [flagList.data]);
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const x of list.data ?? []) c[x.status] = (c[x.status] ?? 0) + 1;
    return c;
  }, [list.data]);
  const shown = useMemo(() => (list.data ?? []).filter((x) => !status || x.status === status), [list.data, status]);
  const mayWrite = can(me, "flags.write", org, project, env);
  const base = projectPath(org, project, "/experiments");

  return (
    <section class="experiments">
      <div class="heading">
        <h1>Experiments</h1>
        {mayWrite && env && (
          <a class="button primary" href={`${base}/new?env=${encodeURIComponent(env)}`}>
            New experiment
          </a>
        )}
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <label>
          <span>Environment</span>
          <select value={env ?? ""} onChange={(e) => chooseEnv(e.currentTarget.value)}>
            {(envs.data ?? []).map((e) => (
              <option key={e.key} value={e.key}>
                {e.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          <span>Status</span>
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value as Status | "")}>
            <option value="">any ({list.data?.length ?? 0})</option>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s} ({counts[s] ?? 0})
              </option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={envs.error ?? list.error ?? flagList.error} />
      {list.data && (
        <>
          <p class="muted" aria-live="polite">
            {shown.length === list.data.length ? `${list.data.length} experiments` : `${shown.length} of ${list.data.length} experiments`}
          </p>
          {list.data.length === 0 ? (
            <p>No experiment in this environment yet. An experiment compares the variants of a flag on metrics built from the events your application sends.</p>
          ) : (
            <Scroll label="Experiments">
              <table class="experiment-list">
                <thead>
                  <tr>
                    <th scope="col">Experiment</th>
                    <th scope="col">Status</th>
                    <th scope="col">Flag</th>
                    <th scope="col">Arms</th>
                    <th scope="col">Started</th>
                    <th scope="col">Primary metric</th>
                  </tr>
                </thead>
                <tbody>
                  {shown.map((x) => (
                    <tr key={x.key} data-experiment={x.key}>
                      <th scope="row">
                        <a href={`${base}/${encodeURIComponent(env!)}/${encodeURIComponent(x.key)}`}>{x.key}</a>
                        {x.hypothesis && <div class="muted small clamp">{x.hypothesis}</div>}
                      </th>
                      <td>
                        <StatusBadge status={x.status} />
                        {x.decision && <div class="small">shipped {x.decision.variant}</div>}
                      </td>
                      <td>
                        <a href={projectPath(org, project, `/flags/${encodeURIComponent(x.flag)}`)}>{x.flag}</a>
                      </td>
                      <td class="arms">
                        {armsOf(x, byFlag.get(x.flag)).map((v) => (
                          <span class="tag" key={v}>
                            {v}
                            {v === x.control && <span class="muted"> (control)</span>}
                          </span>
                        ))}
                      </td>
                      <td>{x.startedAt ? <Time at={x.startedAt} /> : x.startAt ? <span class="muted">planned {x.startAt.slice(0, 10)}</span> : <span class="muted">—</span>}</td>
                      <td>{x.primaryMetric}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </Scroll>
          )}
        </>
      )}
      {!list.data && !list.error && <p aria-busy="true">Loading experiments…</p>}

      <h2 id="metrics-heading">Metrics</h2>
      <p class="muted">The project's metrics, shared by every environment's experiments and guarded rollouts.</p>
      <ErrorNote error={metricList.error} />
      {metricList.data && (
        <Scroll label="Metrics">
          <table class="metric-list" aria-labelledby="metrics-heading">
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Kind</th>
                <th scope="col">Event</th>
                <th scope="col">Window</th>
                <th scope="col">Better</th>
              </tr>
            </thead>
            <tbody>
              {metricList.data.map((m) => (
                <tr key={m.key}>
                  <th scope="row">
                    {m.key}
                    {m.description && <div class="muted small">{m.description}</div>}
                  </th>
                  <td>{m.kind}</td>
                  <td>
                    <code>{m.event}</code>
                    {m.denominatorEvent && (
                      <>
                        {" / "}
                        <code>{m.denominatorEvent}</code>
                      </>
                    )}
                  </td>
                  <td>{days(m.windowSeconds)}</td>
                  <td>{m.higherIsBetter === false ? "lower" : "higher"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Scroll>
      )}
      {can(me, "flags.write", org, project) && (
        <p>
          <button type="button" onClick={() => setCreatingMetric(true)}>
            New metric
          </button>
        </p>
      )}
      <MetricForm
        org={org}
        project={project}
        open={creatingMetric}
        onClose={() => setCreatingMetric(false)}
        onCreated={() => {
          setCreatingMetric(false);
          void metricList.reload();
        }}
      />
    </section>
  );
}

function days(seconds: number | null | undefined): string {
  const s = seconds ?? 7 * 86400;
  return s % 86400 === 0 ? `${s / 86400} d` : s % 3600 === 0 ? `${s / 3600} h` : `${s} s`;
}

