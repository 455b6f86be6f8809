// Publishing of one environment: its snapshot version against what each
// target (the edge's KV) holds, how long the oldest unpublished change has
// waited, each target's last error; and the environment's SDK keys.
import { useEffect } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, must, type Schema } from "../../api";
import { EnvPicker } from "../../components/EnvPicker";
import { ErrorNote } from "../../components/ErrorNote";
import { Time } from "../../components/Time";
import { useLoad, useTitle } from "../../hooks";
import { useEnv, useEnvironments } from "../../scope";
import { SdkKeys } from "./SdkKeys";
import "./publishing.css";

/** Seconds between refreshes while a change waits to be published. */
const REFRESH_SECONDS = 3;

export default function Publishing() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  useTitle(`Publishing · ${project}`);
  const envs = useEnvironments(org, project);
  const [env, setEnv] = useEnv(org, project, envs.data);
  const envName = envs.data?.find((e) => e.key === env)?.name ?? env ?? "";
  return (
    <section class="ops">
      <div class="heading">
        <h1>Publishing</h1>
        <EnvPicker envs={envs.data} env={env} onChange={setEnv} />
      </div>
      <ErrorNote error={envs.error} />
      {env && <PublishState org={org} project={project} env={env} envName={envName} />}
      {env && <SdkKeys org={org} project={project} env={env} envName={envName} />}
    </section>
  );
}

function PublishState({ org, project, env, envName }: { org: string; project: string; env: string; envName: string }) {
  const state = useLoad(
    async () =>
      must(
        await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/publish", {
          params: { path: { org, project, env } },
        }),
      ),
    [org, project, env],
  );
  const s = state.data;
  const waiting = !!s?.pendingSince || (s?.targets ?? []).some((t) => t.publishedVersion < s!.snapshotVersion);
  useEffect(() => {
    if (!waiting) return;
    const t = setTimeout(() => void state.reload(), REFRESH_SECONDS * 1000);
    return () => clearTimeout(t);
  }, [waiting, s]);
  return (
    <section aria-labelledby="publish-title">
      <div class="heading">
        <h2 id="publish-title">Snapshot of {envName}</h2>
        <button type="button" onClick={() => void state.reload()} disabled={state.loading}>
          Refresh
        </button>
      </div>
      <ErrorNote error={state.error} />
      {s && (
        <>
          <dl class="publish-facts">
            <dt>At the edge as</dt>
            <dd>
              <code>{s.environment}</code>
            </dd>
            <dt>Snapshot version</dt>
            <dd class="mono">{s.snapshotVersion}</dd>
            <dt>Last change</dt>
            <dd>
              <Time at={s.changedAt} />
            </dd>
            <dt>Published</dt>
            <dd>
              {s.targets.length === 0 ? (
                <span class="muted">no publish target has tried this environment yet</span>
              ) : s.pendingSince ? (
                <span class="badge bad">
                  waiting since <Time at={s.pendingSince} /> ({lag(s.pendingSince)})
                </span>
              ) : (
                <span class="badge ok">up to date everywhere</span>
              )}
            </dd>
          </dl>
          {s.targets.length > 0 && <Targets s={s} />}
        </>
      )}
      {!s && !state.error && <p aria-busy="true">Loading the publication state…</p>}
    </section>
  );
}

function Targets({ s }: { s: Schema<"PublishStatus"> }) {
  return (
    <div class="table-wrap">
      <table class="targets">
        <caption class="sr-only">Publish targets</caption>
        <thead>
          <tr>
            <th scope="col">Target</th>
            <th scope="col" class="num">
              Published version
            </th>
            <th scope="col">Published</th>
            <th scope="col" class="num">
              Lag
            </th>
            <th scope="col">Last attempt</th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {s.targets.map((t) => {
            const behind = s.snapshotVersion - t.publishedVersion;
            return (
              <tr key={t.target}>
                <th scope="row">{t.target}</th>
                <td class="num mono">
                  {t.publishedVersion === 0 ? "none yet" : t.publishedVersion}
                  {behind > 0 ? (
                    <div class="small bad-text">
                      {behind} version{behind === 1 ? "" : "s"} behind
                    </div>
                  ) : (
                    <div class="small ok-text">current</div>
                  )}
                </td>
                <td>
                  <Time at={t.publishedAt} />
                </td>
                <td class="num">{t.lagSeconds > 0 ? seconds(t.lagSeconds) : "0 s"}</td>
                <td>
                  <Time at={t.lastAttemptAt} />
                  {t.attempts > 0 && (
                    <div class="small bad-text">
                      {t.attempts} failed attempt{t.attempts === 1 ? "" : "s"}
                    </div>
                  )}
                </td>
                <td>
                  {t.lastError ? (
                    <>
                      <span class="bad-text">{t.lastError}</span>
                      {t.lastErrorPermanent && <div class="small">permanent: not retried until the environment changes</div>}
                    </>
                  ) : (
                    <span class="muted">none</span>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

/** How long ago `since` was, as "12 s" / "3 min" / "2 h". */
function lag(since: string): string {
  return seconds(Math.max(0, (Date.now() - Date.parse(since)) / 1000));
}

function seconds(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${Math.round(s / 3600)} h`;
}
