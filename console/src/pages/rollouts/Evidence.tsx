// A guarded rollout's rollbacks and ramp holds, with the evidence the
// monitor wrote into the audit log: `rollback` and `holdRamp` entries on the
// flag configuration (metric, effect, interval, p-value, arm, tolerance,
// look; the steps moved), and the guard's own status changes.
import { api, must, type Schema } from "../../api";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad } from "../../hooks";
import { fmt } from "./serving";

type Entry = Schema<"AuditEntry">;

interface RollbackAfter {
  evidence?: {
    source?: string;
    metric?: string | null;
    effect?: number | null;
    interval?: [number | null, number | null] | null;
    pValue?: number | null;
    details?: Record<string, unknown>;
  };
  changed?: boolean;
}

interface HoldAfter {
  heldUntil?: string;
  details?: { reason?: string; steps?: { serve?: string; step?: number; from?: string; to?: string }[] } & Record<string, unknown>;
}

export function Evidence({ org, env, flag, flagId, rolloutId }: { org: string; env: string; flag: string; flagId: number; rolloutId: number }) {
  const entries = useLoad(async () => {
    const [configs, guard] = await Promise.all([
      api.GET("/api/v1/orgs/{org}/audit", { params: { path: { org }, query: { entityType: "flagConfig", entityId: flagId, limit: 1000 } } }),
      api.GET("/api/v1/orgs/{org}/audit", { params: { path: { org }, query: { entityType: "guardedRollout", entityId: rolloutId, limit: 1000 } } }),
    ]);
    const key = `${flag}/${env}`;
    const picked = [
      ...must(configs).items.filter((e) => e.entityKey === key && (e.action === "rollback" || e.action === "holdRamp")),
      ...must(guard).items.filter((e) => e.action !== "update" && e.action !== "create"),
    ];
    return picked.sort((a, b) => b.seq - a.seq);
  }, [org, env, flag, flagId, rolloutId]);
  if (entries.error) {
    return entries.error.status === 403 || entries.error.status === 404 ? (
      <p class="note">The evidence is in the organization's audit log, which you may not read.</p>
    ) : (
      <ErrorNote error={entries.error} />
    );
  }
  if (!entries.data) return <p aria-busy="true">Loading the evidence…</p>;
  if (entries.data.length === 0) return <p class="muted">No rollbacks, holds or status changes yet.</p>;
  return (
    <ol class="evidence">
      {entries.data.map((e) => (
        <li key={e.seq} class={`evidence-${e.entityType}-${e.action}`}>
          <EvidenceItem e={e} />
        </li>
      ))}
    </ol>
  );
}

function EvidenceItem({ e }: { e: Entry }) {
  const after = parse(e.after);
  const who = (
    <>
      {" "}
      by <code>{e.actor}</code>, <Time at={e.at} /> <span class="muted small">(audit #{e.seq})</span>
    </>
  );
  if (e.action === "rollback" && e.entityType === "flagConfig") {
    const a = (after ?? {}) as RollbackAfter;
    const ev = a.evidence ?? {};
    const d = ev.details ?? {};
    return (
      <>
        <strong>Rolled back</strong>
        {who}
        {a.changed === false && <span class="muted"> (serving did not change)</span>}
        <dl class="evidence-facts">
          <dt>Source</dt>
          <dd>{ev.source ?? "—"}</dd>
          <dt>Metric</dt>
          <dd>
            <code>{ev.metric ?? "—"}</code>
            {d.guardrail !== undefined && <> (guardrail {String(d.guardrail)}, tolerance {String(d.tolerance ?? 0)})</>}
          </dd>
          <dt>Arm</dt>
          <dd>
            {d.variant !== undefined ? <code>{String(d.variant)}</code> : "—"} vs control{" "}
            {d.control !== undefined ? <code>{String(d.control)}</code> : "—"}
          </dd>
          <dt>Effect</dt>
          <dd>
            {fmt(ev.effect)}
            {ev.interval && <> ({interval(ev.interval)})</>}
          </dd>
          <dt>p-value</dt>
          <dd>
            {fmt(ev.pValue)}
            {d.alpha !== undefined && <> (α {String(d.alpha)})</>}
            {d.look !== undefined && <>, look {String(d.look)}</>}
          </dd>
          {d.method !== undefined && (
            <>
              <dt>Test</dt>
              <dd>{String(d.method)}</dd>
            </>
          )}
        </dl>
      </>
    );
  }
  if (e.action === "holdRamp") {
    const a = (after ?? {}) as HoldAfter;
    const steps = Array.isArray(a.details?.steps) ? a.details!.steps! : [];
    return (
      <>
        <strong>Ramp held</strong>
        {who}
        {a.heldUntil && <> — postponed step now at {new Date(a.heldUntil).toLocaleString()}</>}
        {a.details?.reason && <p class="small">{String(a.details.reason)}</p>}
        {steps.length > 0 && (
          <ul class="small">
            {steps.map((s, i) => (
              <li key={i}>
                {s.serve ?? ""} step {s.step ?? "?"}: {s.from ? new Date(s.from).toLocaleString() : "?"} →{" "}
                {s.to ? new Date(s.to).toLocaleString() : "?"}
              </li>
            ))}
          </ul>
        )}
      </>
    );
  }
  const verbs: Record<string, string> = {
    rollback: "Marked rolled back",
    activate: "Armed",
    disable: "Paused",
    complete: "Completed",
    delete: "Deleted",
  };
  return (
    <>
      <strong>{verbs[e.action] ?? e.action}</strong>
      {who}
    </>
  );
}

/** An interval whose open end (JSON null: infinite) makes it one-sided. */
function interval([lo, hi]: [number | null, number | null]): string {
  if (hi === null && lo !== null) return `lower bound ${fmt(lo)}, one-sided`;
  if (lo === null && hi !== null) return `upper bound ${fmt(hi)}, one-sided`;
  return `interval ${fmt(lo)} to ${fmt(hi)}`;
}

function parse(json: string | null | undefined): unknown {
  if (json == null) return null;
  try {
    return JSON.parse(json);
  } catch {
    return null;
  }
}
