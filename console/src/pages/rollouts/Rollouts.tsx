// The guarded rollouts of one environment: status, the monitor's health
// with every guardrail × arm it tested (users, effect, bound, p-value), what
// the flag serves now (the current step of a scheduled ramp, from the
// environment's snapshot: one request for all), ramp holds and rollbacks
// with the evidence the monitor audited, and pause / re-arm / complete.
import { useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, must, type Schema } from "../../api";
import { EnvPicker } from "../../components/EnvPicker";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useAction, useLoad, useTitle } from "../../hooks";
import { projectPath, useEnv, useEnvironments } from "../../scope";
import { can, useMe } from "../../session";
import { Evidence } from "./Evidence";
import { describeServing, fmt, type SnapshotFlag } from "./serving";
import "./rollouts.css";

type Rollout = Schema<"GuardedRolloutRecord">;

export default function Rollouts() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Guarded rollouts · ${project}`);
  const envs = useEnvironments(org, project);
  const [env, setEnv] = useEnv(org, project, envs.data);
  const list = useLoad(async () => {
    if (!env) return undefined;
    const path = { org, project, env };
    const [rollouts, snapshot] = await Promise.all([
      api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts", { params: { path } }),
      api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/snapshot", { params: { path } }),
    ]);
    const flags = new Map<string, SnapshotFlag>();
    for (const f of ((snapshot.data as { flags?: SnapshotFlag[] } | undefined)?.flags ?? [])) flags.set(f.key, f);
    return { items: must(rollouts).items, flags };
  }, [org, project, env]);
  const envName = envs.data?.find((e) => e.key === env)?.name ?? env ?? "";
  const active = list.data?.items.filter((r) => r.status === "active").length ?? 0;
  return (
    <section class="ops">
      <div class="heading">
        <h1>Guarded rollouts</h1>
        <EnvPicker envs={envs.data} env={env} onChange={setEnv} />
      </div>
      <p class="muted">
        The monitor compares every variant a guarded flag serves with its control on the guardrail metrics, rolls back on
        significant harm, and holds a gated ramp while the guard is not healthy.
      </p>
      <ErrorNote error={envs.error ?? list.error} />
      {list.data && (
        <>
          <p class="muted" aria-live="polite">
            {list.data.items.length === 0
              ? `No guarded rollouts in ${envName}.`
              : `${list.data.items.length} guarded rollout${list.data.items.length === 1 ? "" : "s"} in ${envName}, ${active} active.`}
          </p>
          {list.data.items.map((r) => (
            <RolloutCard
              key={r.id}
              r={r}
              flag={list.data!.flags.get(r.flag)}
              org={org}
              project={project}
              env={env!}
              onChanged={list.reload}
            />
          ))}
        </>
      )}
      {env && !list.data && !list.error && <p aria-busy="true">Loading guarded rollouts…</p>}
    </section>
  );
}

const STATUS_TEXT: Record<Schema<"GuardStatus">, string> = {
  active: "active",
  rolledBack: "rolled back",
  completed: "completed",
  disabled: "paused",
};

function RolloutCard({
  r,
  flag,
  org,
  project,
  env,
  onChanged,
}: {
  r: Rollout;
  flag: SnapshotFlag | undefined;
  org: string;
  project: string;
  env: string;
  onChanged: () => Promise<void>;
}) {
  const me = useMe();
  const mayWrite = can(me, "flags.write", org, project, env);
  const [showEvidence, setShowEvidence] = useState(r.status === "rolledBack");
  const status = useAction(async (to: Schema<"GuardStatus">) => {
    must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/guarded-rollouts/{flag}/status", {
        params: { path: { org, project, env, flag: r.flag }, header: { "If-Match": `"${r.version}"` } },
        body: { status: to },
      }),
    );
    await onChanged();
  });
  const h = r.health;
  const id = `rollout-${r.id}`;
  const serving = describeServing(flag);
  return (
    <article class="rollout" aria-labelledby={`${id}-title`}>
      <header class="rollout-head">
        <h2 id={`${id}-title`}>
          <a href={projectPath(org, project, `/flags/${encodeURIComponent(r.flag)}?env=${encodeURIComponent(env)}`)}>{r.flag}</a>
        </h2>
        <span class={`badge guard-${r.status} ${r.status === "active" ? "ok" : r.status === "rolledBack" ? "bad" : ""}`}>
          {STATUS_TEXT[r.status]}
        </span>
        {r.status === "active" &&
          (h ? (
            <span class={`badge ${h.healthy ? "ok" : "bad"}`}>{h.healthy ? "healthy" : "not healthy"}</span>
          ) : (
            <span class="badge">not checked yet</span>
          ))}
        {mayWrite && (
          <span class="button-row rollout-actions">
            {r.status === "active" && (
              <button type="button" disabled={status.busy} onClick={() => void status.run("disabled")}>
                Pause
              </button>
            )}
            {(r.status === "disabled" || r.status === "rolledBack") && (
              <button type="button" disabled={status.busy} onClick={() => void status.run("active")}>
                {r.status === "rolledBack" ? "Re-arm" : "Resume"}
              </button>
            )}
            {r.status !== "completed" && (
              <button type="button" disabled={status.busy} onClick={() => void status.run("completed")}>
                Complete
              </button>
            )}
          </span>
        )}
      </header>
      {r.description && <p>{r.description}</p>}
      <ErrorNote error={status.error} onReload={() => { status.clear(); void onChanged(); }} />
      <dl class="rollout-meta">
        <dt>Control</dt>
        <dd>
          <code>{r.control}</code>
        </dd>
        <dt>Serving now</dt>
        <dd>
          {serving.length === 0 ? (
            <span class="muted">not in the published snapshot</span>
          ) : (
            <ul class="serving">
              {serving.map((s, i) => (
                <li key={i}>{s}</li>
              ))}
            </ul>
          )}
        </dd>
        <dt>Started</dt>
        <dd>
          <Time at={r.startedAt} />
          {r.stoppedAt && r.status !== "active" && (
            <>
              , stopped <Time at={r.stoppedAt} />
            </>
          )}
        </dd>
        <dt>Last check</dt>
        <dd>
          <Time at={r.checkedAt} />
        </dd>
        <dt>Ramp</dt>
        <dd>
          {r.gateRamp ? "gated by the guardrails" : "not gated"}
          {r.heldUntil && (
            <>
              ; last hold: the postponed step takes effect at <strong>{new Date(r.heldUntil).toLocaleString()}</strong>
            </>
          )}
        </dd>
        <dt>Minimum users per arm</dt>
        <dd>{h?.minUsersPerArm ?? r.minUsersPerArm ?? "monitor default"}</dd>
      </dl>
      {h && !h.healthy && h.reasons.length > 0 && (
        <div class="note" role="status">
          <strong>Not healthy at the last check:</strong>
          <ul>
            {h.reasons.map((x, i) => (
              <li key={i}>{String(x)}</li>
            ))}
          </ul>
        </div>
      )}
      <Guardrails r={r} />
      <button type="button" aria-expanded={showEvidence} aria-controls={`${id}-evidence`} onClick={() => setShowEvidence(!showEvidence)}>
        {showEvidence ? "Hide" : "Show"} rollbacks and holds<span class="sr-only"> of {r.flag}</span>
      </button>
      {showEvidence && (
        <div id={`${id}-evidence`}>
          <Evidence org={org} env={env} flag={r.flag} flagId={r.flagId} rolloutId={r.id} />
        </div>
      )}
    </article>
  );
}

function Guardrails({ r }: { r: Rollout }) {
  const states = r.health?.guardrails ?? [];
  return (
    <div class="table-wrap">
      <table class="guardrails">
        <caption class="sr-only">Guardrails of {r.flag}</caption>
        <thead>
          <tr>
            <th scope="col">Guardrail</th>
            <th scope="col">Arm</th>
            <th scope="col" class="num">
              Users (control / arm)
            </th>
            <th scope="col" class="num">
              Effect
            </th>
            <th scope="col" class="num">
              Lower bound
            </th>
            <th scope="col" class="num">
              p-value
            </th>
            <th scope="col" class="num">
              Looks
            </th>
            <th scope="col">Verdict</th>
          </tr>
        </thead>
        <tbody>
          {r.guardrails.map((g, gi) => {
            const arms = states.filter((s) => (s.guardrail ?? gi) === gi && s.metric === g.metric);
            const label = (
              <th scope="row" rowSpan={Math.max(1, arms.length)}>
                <code>{g.metric}</code>
                <div class="small muted">
                  tolerance {g.tolerance ?? 0} · {g.action ?? "serveControl"}
                </div>
              </th>
            );
            if (arms.length === 0) {
              return (
                <tr key={gi}>
                  {label}
                  <td colSpan={7} class="muted">
                    no look yet
                  </td>
                </tr>
              );
            }
            return arms.map((s, i) => (
              <tr key={`${gi}-${s.variant}`}>
                {i === 0 && label}
                <td>
                  <code>{s.variant}</code>
                </td>
                <td class="num">
                  {s.controlUsers} / {s.treatmentUsers}
                </td>
                <td class="num">{fmt(s.estimate)}</td>
                <td class="num">{fmt(s.lower)}</td>
                <td class="num">{fmt(s.pValue)}</td>
                <td class="num">{s.looks}</td>
                <td>
                  {s.significant ? <span class="badge bad">harm beyond tolerance</span> : <span class="badge ok">no significant harm</span>}
                </td>
              </tr>
            ));
          })}
        </tbody>
      </table>
    </div>
  );
}
