// The organization's audit log: who did what to which entity and when, each
// entry's before/after as a diff, the filters of `GET /orgs/{org}/audit`
// (kept in the query string, so a filtered view is a link), pages of the
// API (`after`), the hash chain's verification, and the JSON-lines export.
import { useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { api, must, type Schema } from "../../api";
import { ErrorNote } from "../../components/ErrorNote";
import { JsonDiff } from "../../components/JsonDiff";
import { Time } from "../../components/Time";
import { useLoad, useTitle } from "../../hooks";
import { can, useMe } from "../../session";
import { Verification } from "./Verification";
import "./audit.css";

type Entry = Schema<"AuditEntry">;

/** Entity types the origin audits (`entityType`). */
const ENTITY_TYPES = [
  "organization",
  "project",
  "environment",
  "policy",
  "flag",
  "flagConfig",
  "segment",
  "layer",
  "metric",
  "experiment",
  "guardedRollout",
  "changeRequest",
  "sdkKey",
  "token",
  "role",
  "roleBinding",
  "team",
  "webhook",
];

const PAGE_SIZES = [50, 100, 250, 500];

/** The filters, as the query string holds them. */
interface Filters {
  actor: string;
  entityType: string;
  entityId: string;
  from: string;
  until: string;
  limit: string;
}

const FILTER_KEYS: (keyof Filters)[] = ["actor", "entityType", "entityId", "from", "until", "limit"];

export default function Audit() {
  const { params } = useRoute();
  const { query, path, route } = useLocation();
  const org = params.org!;
  const me = useMe();
  useTitle(`Audit log · ${org}`);
  const filters: Filters = {
    actor: query.actor ?? "",
    entityType: query.entityType ?? "",
    entityId: query.entityId ?? "",
    from: query.from ?? "",
    until: query.until ?? "",
    limit: query.limit ?? "100",
  };
  const after = query.after ? Number(query.after) : undefined;
  const key = JSON.stringify([org, filters, after]);
  const entries = useLoad(
    async () =>
      must(
        await api.GET("/api/v1/orgs/{org}/audit", {
          params: { path: { org }, query: apiQuery(filters, after) },
        }),
      ),
    [key],
  );
  // The `after` of each earlier page, to go back.
  const [trail, setTrail] = useState<(number | undefined)[]>([]);

  const go = (next: Partial<Filters>, nextAfter?: number) => {
    const q = new URLSearchParams();
    const merged = { ...filters, ...next };
    for (const k of FILTER_KEYS) if (merged[k] && !(k === "limit" && merged[k] === "100")) q.set(k, merged[k]);
    if (nextAfter !== undefined) q.set("after", String(nextAfter));
    const s = q.toString();
    route(s ? `${path}?${s}` : path);
  };

  const exportHref = `/api/v1/orgs/${encodeURIComponent(org)}/audit/export?${new URLSearchParams(
    Object.entries(apiQuery(filters, undefined))
      .filter(([k, v]) => v !== undefined && k !== "limit")
      .map(([k, v]) => [k, String(v)]),
  )}`;

  return (
    <section class="ops">
      <div class="heading">
        <h1>Audit log</h1>
        {can(me, "audit.export", org) && (
          <a class="button" href={exportHref} download={`audit-${org}.jsonl`}>
            Export (JSON lines)
          </a>
        )}
      </div>
      <Verification me={me} />
      <Filters
        key={JSON.stringify(filters)}
        initial={filters}
        onApply={(f) => {
          setTrail([]);
          go(f);
        }}
      />
      <ErrorNote error={entries.error} />
      {entries.data && (
        <>
          <p class="muted" aria-live="polite">
            {entries.data.items.length === 0
              ? "No entries match."
              : `Entries #${entries.data.items[0]!.seq}–#${entries.data.items[entries.data.items.length - 1]!.seq}, oldest first${
                  entries.data.next ? "; more on the next page" : ""
                }.`}
          </p>
          {entries.data.items.length > 0 && <EntryTable
              entries={entries.data.items}
              onFilter={(f) => {
                setTrail([]);
                go(f);
              }}
            />}
          <nav class="pager" aria-label="Audit log pages">
            <button
              type="button"
              disabled={after === undefined}
              onClick={() => {
                const prev = trail[trail.length - 1];
                setTrail(trail.slice(0, -1));
                go({}, prev);
              }}
            >
              ← Previous page
            </button>
            {after !== undefined && (
              <button
                type="button"
                onClick={() => {
                  setTrail([]);
                  go({});
                }}
              >
                First page
              </button>
            )}
            <button
              type="button"
              disabled={!entries.data.next}
              onClick={() => {
                setTrail([...trail, after]);
                go({}, entries.data!.next!);
              }}
            >
              Next page →
            </button>
          </nav>
        </>
      )}
      {!entries.data && !entries.error && <p aria-busy="true">Loading the audit log…</p>}
    </section>
  );
}

/** The API's query of the filters (times: local input to UTC). */
function apiQuery(f: Filters, after: number | undefined) {
  return {
    actor: f.actor || undefined,
    entityType: f.entityType || undefined,
    entityId: f.entityId && f.entityType ? Number(f.entityId) : undefined,
    from: f.from ? toUtc(f.from) : undefined,
    until: f.until ? toUtc(f.until) : undefined,
    limit: Number(f.limit) || 100,
    after,
  };
}

/** A `datetime-local` value (local time) as the API's UTC prefix `YYYY-MM-DDTHH:MM:SS`. */
function toUtc(local: string): string {
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? local : d.toISOString().slice(0, 19);
}

function Filters({ initial, onApply }: { initial: Filters; onApply: (f: Filters) => void }) {
  const [f, setF] = useState(initial);
  const set = (k: keyof Filters) => (e: Event) => setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  return (
    <form
      class="filters"
      role="search"
      aria-label="Filter the audit log"
      onSubmit={(e) => {
        e.preventDefault();
        onApply(f);
      }}
    >
      <label>
        <span>Actor</span>
        <input name="actor" value={f.actor} onInput={set("actor")} placeholder="user:alice@example.com" />
      </label>
      <label>
        <span>Entity type</span>
        <select name="entityType" value={f.entityType} onChange={set("entityType")}>
          <option value="">any</option>
          {ENTITY_TYPES.map((t) => (
            <option key={t}>{t}</option>
          ))}
        </select>
      </label>
      <label>
        <span>Entity id</span>
        <input
          name="entityId"
          type="number"
          min={1}
          class="narrow"
          value={f.entityId}
          disabled={!f.entityType}
          title={f.entityType ? undefined : "choose an entity type first"}
          onInput={set("entityId")}
        />
      </label>
      <label>
        <span>From ({tz})</span>
        <input name="from" type="datetime-local" value={f.from} onInput={set("from")} />
      </label>
      <label>
        <span>Until ({tz})</span>
        <input name="until" type="datetime-local" value={f.until} onInput={set("until")} />
      </label>
      <label>
        <span>Per page</span>
        <select name="limit" value={f.limit} onChange={set("limit")}>
          {PAGE_SIZES.map((n) => (
            <option key={n} value={String(n)}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <div class="filter-buttons">
        <button type="submit" class="primary">
          Apply filters
        </button>
        <button
          type="button"
          onClick={() => {
            const empty = { actor: "", entityType: "", entityId: "", from: "", until: "", limit: "100" };
            setF(empty);
            onApply(empty);
          }}
        >
          Clear
        </button>
      </div>
    </form>
  );
}

function EntryTable({ entries, onFilter }: { entries: Entry[]; onFilter: (f: Partial<Filters>) => void }) {
  const [open, setOpen] = useState<Set<number>>(new Set());
  const toggle = (seq: number) => {
    const next = new Set(open);
    if (next.has(seq)) next.delete(seq);
    else next.add(seq);
    setOpen(next);
  };
  return (
    <div class="table-wrap">
      <table class="audit">
        <thead>
          <tr>
            <th scope="col" class="num">
              #
            </th>
            <th scope="col">When</th>
            <th scope="col">Who</th>
            <th scope="col">Action</th>
            <th scope="col">Entity</th>
            <th scope="col">Change</th>
          </tr>
        </thead>
        <tbody>
          {entries.map((e) => {
            const expanded = open.has(e.seq);
            const hasDiff = e.before != null || e.after != null;
            return [
              <tr key={e.seq}>
                <td class="num mono">{e.seq}</td>
                <td>
                  <Time at={e.at} />
                </td>
                <td>
                  <button type="button" class="link actor" title="Only this actor" onClick={() => onFilter({ actor: e.actor })}>
                    {e.actor}
                  </button>
                </td>
                <td>
                  <span class={`badge action-${e.action}`}>{e.action}</span>
                </td>
                <td>
                  <span class="muted small">{e.entityType}</span>{" "}
                  <button
                    type="button"
                    class="link"
                    title={`Only ${e.entityType} #${e.entityId}`}
                    onClick={() => onFilter({ entityType: e.entityType, entityId: String(e.entityId) })}
                  >
                    {e.entityKey}
                  </button>
                </td>
                <td>
                  {hasDiff ? (
                    <button
                      type="button"
                      aria-expanded={expanded}
                      aria-controls={`audit-diff-${e.seq}`}
                      onClick={() => toggle(e.seq)}
                    >
                      {expanded ? "Hide" : "Show"} diff<span class="sr-only"> of entry {e.seq}</span>
                    </button>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
              </tr>,
              expanded && (
                <tr key={`${e.seq}-diff`} id={`audit-diff-${e.seq}`} class="detail">
                  <td colSpan={6}>
                    <JsonDiff before={parse(e.before)} after={parse(e.after)} />
                    <p class="small muted">
                      {e.requestId && <>request {e.requestId} · </>}hash <code title={e.hash}>{e.hash.slice(0, 16)}…</code>
                    </p>
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </div>
  );
}

function parse(json: string | null | undefined): unknown {
  if (json == null) return null;
  try {
    return JSON.parse(json);
  } catch {
    return json;
  }
}
