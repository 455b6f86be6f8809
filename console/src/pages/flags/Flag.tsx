// The flag page, /orgs/:org/projects/:project/flags/:flag?env=…: the flag's
// header (key, type, description, tags, owner, environment, kill switch)
// and four tabs: Targeting (the editor), Try it (draft vs live in the WASM
// engine), History and Settings. Drafts are kept per environment here, so
// they survive switching tabs and environments.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { useLocation, useRoute } from "preact-iso";
import { api, must, withEtag } from "../../api";
import { problemsOf, useDraftEngine, withFlag, type SnapshotDoc } from "../../components/draftEngine";
import { ErrorNote } from "../../components/ErrorNote";
import { useLoad, useTitle } from "../../hooks";
import { projectPath, useEnv, useEnvironments } from "../../scope";
import { can, useMe } from "../../session";
import { History } from "./History";
import { KillSwitch } from "./KillSwitch";
import { dirty, fromDraft, fromEngine, toDraft, type Draft } from "./model";
import { Settings } from "./Settings";
import { configOf, Targeting, type OtherFlag } from "./Targeting";
import { TryIt } from "./TryIt";
import "./flag.css";

const TABS = ["Targeting", "Try it", "History", "Settings"] as const;
type Tab = (typeof TABS)[number];
const tabId = (t: Tab) => `tab-${t.toLowerCase().replace(/\s+/g, "-")}`;

function Tabs({ tab, setTab, marks }: { tab: Tab; setTab: (t: Tab) => void; marks: Partial<Record<Tab, string>> }) {
  const refs = useRef<Partial<Record<Tab, HTMLButtonElement | null>>>({});
  const go = (t: Tab) => {
    setTab(t);
    refs.current[t]?.focus();
  };
  return (
    <div
      class="tabs"
      role="tablist"
      aria-label="Flag"
      onKeyDown={(e) => {
        const i = TABS.indexOf(tab);
        const n = TABS.length;
        if (e.key === "ArrowRight") go(TABS[(i + 1) % n]!);
        else if (e.key === "ArrowLeft") go(TABS[(i + n - 1) % n]!);
        else if (e.key === "Home") go(TABS[0]);
        else if (e.key === "End") go(TABS[n - 1]!);
        else return;
        e.preventDefault();
      }}
    >
      {TABS.map((t) => (
        <button
          key={t}
          ref={(el) => {
            refs.current[t] = el;
          }}
          type="button"
          role="tab"
          id={tabId(t)}
          aria-selected={t === tab}
          aria-controls={`${tabId(t)}-panel`}
          tabIndex={t === tab ? 0 : -1}
          onClick={() => setTab(t)}
        >
          {t}
          {marks[t] && (
            <span class="mark" title={marks[t]}>
              {" "}
              ●<span class="sr-only"> ({marks[t]})</span>
            </span>
          )}
        </button>
      ))}
    </div>
  );
}

export default function FlagPage() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  const key = params.flag!;
  useTitle(key);
  const me = useMe();
  const envs = useEnvironments(org, project);
  const [env, setEnv] = useEnv(org, project, envs.data);
  const envName = envs.data?.find((e) => e.key === env)?.name ?? env ?? "";
  // `?tab=settings` (or try-it, history) opens that tab.
  const { query } = useLocation();
  const [tab, setTab] = useState<Tab>(() => TABS.find((t) => t.toLowerCase().replace(" ", "-") === query.tab) ?? "Targeting");

  const flag = useLoad(
    async () => withEtag(await api.GET("/api/v1/orgs/{org}/projects/{project}/flags/{flag}", { params: { path: { org, project, flag: key } } })),
    [org, project, key],
  );
  const config = useLoad(
    async () =>
      env ? withEtag(await api.GET("/api/v1/orgs/{org}/projects/{project}/flags/{flag}/environments/{env}", { params: { path: { org, project, flag: key, env } } })) : undefined,
    [org, project, key, env],
  );
  const snapshot = useLoad(
    async () =>
      env
        ? (must(await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/snapshot", { params: { path: { org, project, env } } })) as SnapshotDoc)
        : undefined,
    [org, project, env],
  );
  const policy = useLoad(
    async () =>
      env ? (await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/policy", { params: { path: { org, project, env } } })).data?.requiredApprovals ?? 0 : 0,
    [org, project, env],
  );

  // Drafts per environment; none until the first edit.
  const [drafts, setDrafts] = useState<Record<string, Draft | undefined>>({});
  // The configuration loaded with the environment it belongs to (a switch
  // shows nothing stale while the next one loads).
  const base = useMemo(() => (config.data ? configOf(config.data.data) : undefined), [config.data]);
  const baseDraft = useMemo(() => (base ? toDraft(base) : undefined), [base]);
  const ready = env && base && config.data && config.data.data.environmentId === envs.data?.find((e) => e.key === env)?.id;
  const draft = (env && drafts[env]) || baseDraft;
  const isDirty = !!(env && drafts[env] && base && dirty(drafts[env]!, base));

  const draftDoc = useMemo(
    () => (snapshot.data && draft && base ? withFlag(snapshot.data, key, fromDraft(draft, base.enabled) as unknown as Record<string, unknown>) : undefined),
    [snapshot.data, draft, base, key],
  );
  const checked = useDraftEngine(draftDoc);
  const live = useDraftEngine(snapshot.data, 0);

  useEffect(() => {
    if (!isDirty) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    addEventListener("beforeunload", warn);
    return () => removeEventListener("beforeunload", warn);
  }, [isDirty]);

  const reloadEnv = async () => {
    await Promise.all([config.reload(), snapshot.reload()]);
  };

  if (flag.error) return <ErrorNote error={flag.error} onReload={() => void flag.reload()} />;
  if (envs.error) return <ErrorNote error={envs.error} />;
  if (!flag.data || !envs.data) return <p aria-busy="true">Loading…</p>;
  const record = flag.data.data;
  const variants = Object.keys(record.variants as Record<string, unknown>);
  const otherFlags: OtherFlag[] = (snapshot.data?.flags ?? [])
    .filter((f) => f.key !== key)
    .map((f) => ({ key: String(f.key), variants: Object.keys((f.variants as Record<string, unknown>) ?? {}) }));
  const mayWrite = can(me, "flags.write", org, project, env);
  const mayKill = can(me, "killswitch", org, project, env);
  // This flag's problems, and any the draft causes elsewhere (a cycle of prerequisites).
  const engineProblems = [
    ...problemsOf(checked.problems, "flag", key).map(fromEngine),
    ...checked.problems
      .filter((p) => !(p.location?.entity?.kind === "flag" && p.location.entity.key === key))
      .map((p) => ({ ...fromEngine(p), field: `${p.location?.entity?.key ?? "snapshot"}: ${p.location?.field ?? p.path}` })),
  ];
  const panel = (t: Tab) => ({ role: "tabpanel" as const, id: `${tabId(t)}-panel`, "aria-labelledby": tabId(t), hidden: tab !== t });

  return (
    <section class="flag-page">
      <p class="crumbs">
        <a href={projectPath(org, project, `/flags${env ? `?env=${encodeURIComponent(env)}` : ""}`)}>Flags</a> /
      </p>
      <div class="flag-head">
        <div class="flag-title">
          <h1>
            <span class="mono">{record.key}</span>
          </h1>
          <p class="meta">
            <span class="badge">{record.flagType}</span>
            {record.owner && (
              <span>
                <span class="muted">owner</span> {record.owner}
              </span>
            )}
            {(record.tags ?? []).map((t) => (
              <span key={t} class="tag">
                {t}
              </span>
            ))}
            {isDirty && <span class="badge unsaved">Unsaved changes</span>}
          </p>
          {record.description && <p class="description">{record.description}</p>}
          {record.archived && (
            <p class="note" role="status">
              Archived: no environment serves this flag, and it cannot be changed until it is restored (Settings).
            </p>
          )}
        </div>
        <div class="flag-env">
          <label class="stack" for="flag-env">
            <span>Environment</span>
            <select id="flag-env" value={env} onChange={(e) => setEnv(e.currentTarget.value)}>
              {envs.data.map((e) => (
                <option key={e.key} value={e.key}>
                  {e.name}
                  {drafts[e.key] ? " (unsaved)" : ""}
                </option>
              ))}
            </select>
          </label>
          {env && ready && config.data && (
            <div class="kill">
              <span class="muted small">Serving in {envName}</span>
              <KillSwitch
                org={org}
                project={project}
                flag={key}
                env={env}
                envName={envName}
                enabled={config.data.data.enabled}
                protectedBy={policy.data ?? 0}
                allowed={mayKill}
                onChanged={() => void reloadEnv()}
              />
            </div>
          )}
        </div>
      </div>

      <Tabs tab={tab} setTab={setTab} marks={isDirty ? { Targeting: "unsaved changes" } : {}} />

      <div {...panel("Targeting")}>
        {tab === "Targeting" &&
          (config.error ? (
            <ErrorNote error={config.error} onReload={() => void config.reload()} />
          ) : !ready || !draft || !base || !env ? (
            <p aria-busy="true">Loading {envName}…</p>
          ) : (
            <Targeting
              org={org}
              project={project}
              flag={key}
              env={env}
              envName={envName}
              approvals={policy.data ?? 0}
              mayWrite={mayWrite}
              variants={variants}
              offVariant={record.offVariant}
              otherFlags={otherFlags}
              base={base}
              etag={config.data!.etag}
              draft={draft}
              isDirty={isDirty}
              problems={engineProblems}
              loadError={checked.error}
              checking={checked.pending}
              engineLoaded={!!(checked.engine || checked.error)}
              onDraft={(d) => setDrafts((all) => ({ ...all, [env]: dirty(d, base) ? d : undefined }))}
              onDiscard={() => setDrafts((all) => ({ ...all, [env]: undefined }))}
              onSaved={async () => {
                await reloadEnv();
                setDrafts((all) => ({ ...all, [env]: undefined }));
              }}
              onReload={reloadEnv}
            />
          ))}
      </div>
      <div {...panel("Try it")}>
        {tab === "Try it" && <TryIt flag={key} draft={checked.engine} live={live.engine} isDirty={isDirty} />}
      </div>
      <div {...panel("History")}>
        {tab === "History" && <History org={org} project={project} flag={key} version={`${record.version}/${config.data?.etag}`} />}
      </div>
      <div {...panel("Settings")}>
        {tab === "Settings" && (
          <Settings
            key={flag.data.etag}
            org={org}
            project={project}
            record={record}
            etag={flag.data.etag}
            mayWrite={mayWrite}
            onSaved={() => {
              void flag.reload();
              void snapshot.reload();
            }}
            onReload={() => void flag.reload()}
          />
        )}
      </div>
    </section>
  );
}
