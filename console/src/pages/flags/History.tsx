// A flag's history: every change to its definition and configurations
// (GET …/flags/{flag}/history), newest first: who, when, what, and the
// before/after diff.
import { api, must, type Schema } from "../../api";
import { Diff, prettyJson } from "../../components/Diff";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad } from "../../hooks";

type Entry = Schema<"AuditEntry">;

/** Every entry of the flag's history (pages of 1,000), oldest first. */
async function history(org: string, project: string, flag: string): Promise<Entry[]> {
  const out: Entry[] = [];
  let after: number | undefined;
  do {
    const page = must(
      await api.GET("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/history", {
        params: { path: { org, project, flag }, query: { after, limit: 1000 } },
      }),
    );
    out.push(...page.items);
    after = page.next ?? undefined;
  } while (after !== undefined && out.length < 5000);
  return out;
}

const pretty = (json: string | null | undefined) => {
  if (!json) return "";
  try {
    return prettyJson(JSON.parse(json));
  } catch {
    return json;
  }
};

/** What an entry changed, in words. */
function what(e: Entry): string {
  if (e.entityType === "flagConfig") {
    const env = e.entityKey.split("/").slice(1).join("/");
    return `configuration in ${env}`;
  }
  return "definition";
}

export function History({ org, project, flag, version }: { org: string; project: string; flag: string; version: string }) {
  const entries = useLoad(() => history(org, project, flag), [org, project, flag, version]);
  if (entries.error) return <ErrorNote error={entries.error} onReload={() => void entries.reload()} />;
  if (!entries.data) return <p aria-busy="true">Loading the history…</p>;
  const newest = [...entries.data].reverse();
  return (
    <div class="history">
      <p class="muted small">
        {newest.length} change{newest.length === 1 ? "" : "s"}, newest first. Each is an entry of the organization's audit log.
      </p>
      <ol class="entries">
        {newest.map((e, i) => (
          <li key={e.seq} class="entry">
            <div class="entry-head">
              <span class={`badge action-${e.action}`}>{e.action}</span> <strong>{what(e)}</strong>
              <span class="muted">
                {" "}
                by <span class="actor">{e.actor}</span>, <Time at={e.at} />
              </span>
              <span class="muted small seq"> #{e.seq}</span>
            </div>
            <details open={i < 3}>
              <summary>Before → after</summary>
              <Diff label={`Change #${e.seq}`} before={pretty(e.before)} after={pretty(e.after)} />
              {e.requestId && <p class="muted small">Request {e.requestId}</p>}
            </details>
          </li>
        ))}
      </ol>
    </div>
  );
}
