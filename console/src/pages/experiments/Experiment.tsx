// One experiment: its design, its lifecycle (start, stop, decide) and its
// results, refreshed on demand and downloadable as CSV.
import { useEffect, useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad, useTitle } from "../../hooks";
import { projectPath } from "../../scope";
import { can, useMe } from "../../session";
import { download, resultsCsv } from "./csv";
import { armsOf, experiment as loadExperiment, flags as loadFlags, results as loadResults, type Experiment as Record, type Where } from "./data";
import { Lifecycle } from "./Lifecycle";
import { Results } from "./Results";
import { StatusBadge } from "./StatusBadge";
import "./experiments.css";

export default function Experiment() {
  const { params } = useRoute();
  const where: Where = { org: params.org!, project: params.project!, env: params.env!, experiment: params.experiment! };
  const { org, project, env } = where;
  const { route } = useLocation();
  useTitle(`${where.experiment} · experiments`);
  const me = useMe();
  const loaded = useLoad(() => loadExperiment(where), [org, project, env, where.experiment]);
  const [current, setCurrent] = useState<{ data: Record; etag: string }>();
  useEffect(() => setCurrent(loaded.data), [loaded.data]);
  const x = current?.data;
  const started = !!x && x.status !== "draft";
  const results = useLoad(async () => (started ? loadResults(where) : undefined), [org, project, env, where.experiment, started]);
  // The arms when there are no results yet (the flag's variants).
  const flagList = useLoad(async () => (x && !started ? loadFlags(org, project) : undefined), [org, project, x?.flag, started]);
  const arms = x ? (results.data ? results.data.arms.map((a) => a.variant) : armsOf(x, flagList.data?.find((f) => f.key === x.flag))) : [];
  const base = projectPath(org, project, `/experiments/${encodeURIComponent(env)}/${encodeURIComponent(where.experiment)}`);
  const refresh = async () => {
    await Promise.all([loaded.reload(), results.reload()]);
  };

  return (
    <section class="experiments experiment">
      <p class="crumbs">
        <a href={projectPath(org, project, `/experiments?env=${encodeURIComponent(env)}`)}>Experiments</a> › {env}
      </p>
      <ErrorNote error={loaded.error} />
      {!x && !loaded.error && <p aria-busy="true">Loading…</p>}
      {x && (
        <>
          <div class="heading">
            <h1>
              {x.key} <StatusBadge status={x.status} />
            </h1>
            <div class="row">
              <button type="button" onClick={() => void refresh()} disabled={loaded.loading || results.loading}>
                Refresh
              </button>
              {results.data && (
                <button type="button" onClick={() => download(`${x.key}-results.csv`, resultsCsv(results.data!))}>
                  Download CSV
                </button>
              )}
            </div>
          </div>
          {x.hypothesis && <p class="hypothesis">{x.hypothesis}</p>}
          <dl class="facts">
            <div>
              <dt>Flag</dt>
              <dd>
                <a href={projectPath(org, project, `/flags/${encodeURIComponent(x.flag)}`)}>{x.flag}</a>
              </dd>
            </div>
            <div>
              <dt>Arms</dt>
              <dd>
                {arms.map((v) => (
                  <span class="tag" key={v}>
                    {v}
                    {v === x.control && <span class="muted"> (control)</span>}
                  </span>
                ))}
              </dd>
            </div>
            <div>
              <dt>Primary metric</dt>
              <dd>{x.primaryMetric}</dd>
            </div>
            {(x.secondaryMetrics ?? []).length > 0 && (
              <div>
                <dt>Secondary</dt>
                <dd>{x.secondaryMetrics!.join(", ")}</dd>
              </div>
            )}
            {(x.guardrails ?? []).length > 0 && (
              <div>
                <dt>Guardrails</dt>
                <dd>{x.guardrails!.map((g) => `${g.metric} (±${g.tolerance ?? 0})`).join(", ")}</dd>
              </div>
            )}
            <div>
              <dt>Started</dt>
              <dd>{x.startedAt ? <Time at={x.startedAt} /> : x.startAt ? `planned ${x.startAt.slice(0, 16).replace("T", " ")}` : "not yet"}</dd>
            </div>
            {(x.stoppedAt || x.stopAt) && (
              <div>
                <dt>Stopped</dt>
                <dd>{x.stoppedAt ? <Time at={x.stoppedAt} /> : `planned ${x.stopAt!.slice(0, 16).replace("T", " ")}`}</dd>
              </div>
            )}
          </dl>
          {x.decision && (
            <div class="note ok decision" role="status">
              <strong>
                Decided: {x.decision.variant === x.control ? `keep control (${x.control})` : `ship ${x.decision.variant}`}
              </strong>
              {x.decision.rationale && <> — {x.decision.rationale}</>}
              <div class="small muted">
                by {x.decision.decidedBy ?? "?"} <Time at={x.decision.decidedAt} />
              </div>
            </div>
          )}
          <Lifecycle
            where={where}
            experiment={x}
            etag={current!.etag}
            arms={arms}
            allowed={can(me, "flags.write", org, project, env)}
            editHref={`${base}/edit`}
            onChanged={(next) => {
              setCurrent(next);
              void results.reload();
            }}
            onDeleted={() => route(projectPath(org, project, `/experiments?env=${encodeURIComponent(env)}`))}
            onReload={() => void refresh()}
          />
          {!started && <p class="muted">Results appear once the experiment is started and its flag serves the variants.</p>}
          <ErrorNote error={results.error} />
          {results.loading && !results.data && started && <p aria-busy="true">Computing results…</p>}
          {results.data && <Results results={results.data} experiment={x} />}
        </>
      )}
    </section>
  );
}
