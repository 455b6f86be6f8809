// The change requests of one environment (newest first), filtered by
// status, and the environment's policy: how many approvals a change needs
// and who may give them (editable with `environments.write`).
import { useMemo, useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { api, must, type Schema } from "../../api";
import { EnvPicker } from "../../components/EnvPicker";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad, useTitle } from "../../hooks";
import { projectPath, useEnv, useEnvironments } from "../../scope";
import { Policy } from "./Policy";
import { ChangeStatus, STATUSES } from "./Status";
import "./changes.css";

type ChangeRequest = Schema<"ChangeRequest">;

/** Rows shown before "Show more". */
const WINDOW = 100;

const FILTERS: [string, string, (s: string) => boolean][] = [
  ["pending", "Pending (open or approved)", (s) => s === "open" || s === "approved"],
  ["all", "All", () => true],
  ...STATUSES.map((s): [string, string, (x: string) => boolean] => [s, s[0]!.toUpperCase() + s.slice(1), (x) => x === s]),
];

export default function Changes() {
  const { params } = useRoute();
  const { query, path, route } = useLocation();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Change requests · ${project}`);
  const envs = useEnvironments(org, project);
  const [env, setEnv] = useEnv(org, project, envs.data);
  const status = FILTERS.some(([k]) => k === query.status) ? query.status : "pending";
  const list = useLoad(
    async () =>
      env
        ? must(
            await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests", {
              params: { path: { org, project, env } },
            }),
          ).items
        : undefined,
    [org, project, env],
  );
  const [shown, setShown] = useState(WINDOW);
  const matches = useMemo(() => {
    const keep = FILTERS.find(([k]) => k === status)![2];
    return (list.data ?? []).filter((c) => keep(c.status));
  }, [list.data, status]);
  const envName = envs.data?.find((e) => e.key === env)?.name ?? env ?? "";
  const setStatus = (s: string) => {
    const q = new URLSearchParams(query);
    q.set("status", s);
    route(`${path}?${q}`, true);
  };

  return (
    <section class="ops">
      <div class="heading">
        <h1>Change requests</h1>
        <EnvPicker envs={envs.data} env={env} onChange={setEnv} />
      </div>
      <ErrorNote error={envs.error} />
      {env && <Policy org={org} project={project} env={env} envName={envName} />}
      <h2>Requests in {envName}</h2>
      <form class="filters" role="search" aria-label="Filter change requests" onSubmit={(e) => e.preventDefault()}>
        <label>
          <span>Status</span>
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            {FILTERS.map(([k, label]) => (
              <option key={k} value={k}>
                {label}
              </option>
            ))}
          </select>
        </label>
      </form>
      <ErrorNote error={list.error} />
      {list.data && (
        <>
          <p class="muted" aria-live="polite">
            {matches.length} of {list.data.length} change request{list.data.length === 1 ? "" : "s"}
          </p>
          {matches.length > 0 && (
            <div class="table-wrap">
              <table class="changes">
                <thead>
                  <tr>
                    <th scope="col" class="num">
                      #
                    </th>
                    <th scope="col">Title</th>
                    <th scope="col">Status</th>
                    <th scope="col">Approvals</th>
                    <th scope="col">Author</th>
                    <th scope="col">Opened</th>
                    <th scope="col">Scheduled</th>
                  </tr>
                </thead>
                <tbody>
                  {matches.slice(0, shown).map((c) => (
                    <Row key={c.id} c={c} href={projectPath(org, project, `/changes/${encodeURIComponent(env!)}/${c.id}`)} />
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {matches.length > shown && (
            <button type="button" onClick={() => setShown(shown + WINDOW)}>
              Show {Math.min(WINDOW, matches.length - shown)} more
            </button>
          )}
        </>
      )}
      {env && !list.data && !list.error && <p aria-busy="true">Loading change requests…</p>}
    </section>
  );
}

function Row({ c, href }: { c: ChangeRequest; href: string }) {
  return (
    <tr>
      <td class="num mono">{c.id}</td>
      <th scope="row">
        <a href={href}>{c.title}</a>
        <div class="muted small">
          {c.changes.length} change{c.changes.length === 1 ? "" : "s"}
        </div>
      </th>
      <td>
        <ChangeStatus status={c.status} />
      </td>
      <td class="num">{c.approvals}</td>
      <td>{c.author}</td>
      <td>
        <Time at={c.createdAt} />
      </td>
      <td>{c.applyAt ? <Time at={c.applyAt} /> : <span class="muted">—</span>}</td>
    </tr>
  );
}
