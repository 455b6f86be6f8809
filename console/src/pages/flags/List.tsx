// The flags of a project: search, tag and type filters, each environment's
// on/off state with its kill switch one click away, and the last change.
import { useMemo, useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, must, type Schema } from "../../api";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad, useTitle } from "../../hooks";
import { projectPath, useEnvironments } from "../../scope";
import { can, useMe } from "../../session";
import { CreateFlag } from "./CreateFlag";
import { KillSwitch } from "./KillSwitch";

/** A flag as the list shows it. */
export type FlagRow = Schema<"FlagSummary">;

const PAGE = 500;

/** Every flag of the project (pages of 500); with `archived`, only the archived ones. */
export async function allFlags(org: string, project: string, archived = false): Promise<FlagRow[]> {
  const out: FlagRow[] = [];
  let after: string | undefined;
  do {
    const page = must(
      await api.GET("/api/v1/orgs/{org}/projects/{project}/flags", {
        params: { path: { org, project }, query: { limit: PAGE, after, ...(archived ? { archived: true } : {}) } },
      }),
    );
    out.push(...page.items);
    after = page.next ?? undefined;
  } while (after);
  return out;
}

export function FlagList() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Flags · ${project}`);
  const me = useMe();
  const envs = useEnvironments(org, project);
  const [archived, setArchived] = useState(false);
  const flags = useLoad(() => allFlags(org, project, archived), [org, project, archived]);
  const policies = useLoad(async () => {
    const keys = (envs.data ?? []).map((e) => e.key);
    const answers = await Promise.all(
      keys.map((env) =>
        api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/policy", {
          params: { path: { org, project, env } },
        }),
      ),
    );
    return Object.fromEntries(keys.map((k, i) => [k, answers[i]?.data?.requiredApprovals ?? 0]));
  }, [envs.data]);
  const [q, setQ] = useState("");
  const [tag, setTag] = useState("");
  const [type, setType] = useState("");
  const [creating, setCreating] = useState(false);

  const tags = useMemo(() => [...new Set((flags.data ?? []).flatMap((f) => f.tags ?? []))].sort(), [flags.data]);
  const shown = useMemo(() => {
    const needle = q.trim().toLowerCase();
    return (flags.data ?? []).filter(
      (f) =>
        (!needle || f.key.toLowerCase().includes(needle) || (f.description ?? "").toLowerCase().includes(needle)) &&
        (!tag || (f.tags ?? []).includes(tag)) &&
        (!type || f.flagType === type),
    );
  }, [flags.data, q, tag, type]);

  const mayCreate = can(me, "flags.write", org, project);
  return (
    <section>
      <div class="heading">
        <h1>Flags</h1>
        {mayCreate && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New flag
          </button>
        )}
      </div>
      <form class="filters" role="search" onSubmit={(e) => e.preventDefault()}>
        <div>
          <label for="flags-q">Search</label>
          <input id="flags-q" type="search" value={q} placeholder="key or description" onInput={(e) => setQ(e.currentTarget.value)} />
        </div>
        <div>
          <label for="flags-tag">Tag</label>
          <select id="flags-tag" value={tag} onChange={(e) => setTag(e.currentTarget.value)}>
            <option value="">any</option>
            {tags.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="flags-type">Type</label>
          <select id="flags-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="">any</option>
            <option>boolean</option>
            <option>string</option>
            <option>number</option>
            <option>json</option>
          </select>
        </div>
        <div>
          <label for="flags-archived">Show</label>
          <select id="flags-archived" value={archived ? "archived" : "live"} onChange={(e) => setArchived(e.currentTarget.value === "archived")}>
            <option value="live">live flags</option>
            <option value="archived">archived flags</option>
          </select>
        </div>
      </form>
      <ErrorNote error={flags.error ?? envs.error} />
      {flags.data && envs.data && (
        <>
          <p class="muted" aria-live="polite">
            {shown.length === flags.data.length ? `${flags.data.length} ${archived ? "archived " : ""}flags` : `${shown.length} of ${flags.data.length} ${archived ? "archived " : ""}flags`}
          </p>
          <div class="table-wrap">
            <table class="flags">
              <thead>
                <tr>
                  <th scope="col">Flag</th>
                  <th scope="col">Type</th>
                  <th scope="col">Tags</th>
                  {envs.data.map((e) => (
                    <th scope="col" key={e.key}>
                      {e.name}
                    </th>
                  ))}
                  <th scope="col">Last change</th>
                </tr>
              </thead>
              <tbody>
                {shown.map((f) => (
                  <tr key={f.key}>
                    <th scope="row">
                      <a href={projectPath(org, project, `/flags/${encodeURIComponent(f.key)}`)}>{f.key}</a>
                      {f.description && <div class="muted small">{f.description}</div>}
                    </th>
                    <td>{f.flagType}</td>
                    <td>
                      {(f.tags ?? []).map((t) => (
                        <span class="tag" key={t}>
                          {t}
                        </span>
                      ))}
                    </td>
                    {envs.data!.map((e) => (
                      <td key={e.key}>
                        <KillSwitch
                          org={org}
                          project={project}
                          flag={f.key}
                          env={e.key}
                          envName={e.name}
                          enabled={f.environments?.[e.key]?.enabled ?? false}
                          protectedBy={policies.data?.[e.key] ?? 0}
                          allowed={!f.archived && can(me, "killswitch", org, project, e.key)}
                          onChanged={flags.reload}
                        />
                      </td>
                    ))}
                    <td>
                      <Time at={f.updatedAt} />
                      {f.updatedBy && <div class="muted small">{f.updatedBy}</div>}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </>
      )}
      {!flags.data && !flags.error && <p aria-busy="true">Loading flags…</p>}
      <CreateFlag org={org} project={project} open={creating} onClose={() => setCreating(false)} />
    </section>
  );
}
