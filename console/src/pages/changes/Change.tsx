// One change request: what it changes next to what is live (the API's
// ChangeView), its reviews, and the actions the caller may take in its
// state — comment, approve, reject, apply (or break glass), rebase, cancel,
// schedule. Each action's error (409 stale base, 412, 422) is shown next to
// it.
import { useState } from "preact/hooks";
import { useRoute } from "preact-iso";
import { api, must, withEtag, type Schema } from "../../api";
import { Confirm } from "../../components/Confirm";
import { ErrorNote } from "../../components/ErrorNote";
import { JsonDiff } from "../../components/JsonDiff";
import { Time } from "../../components/Time";
import { useAction, useLoad, useTitle } from "../../hooks";
import { projectPath, useEnvironments } from "../../scope";
import { can, useMe } from "../../session";
import { ChangeStatus } from "./Status";
import "./changes.css";

type View = Schema<"ChangeView">;

export default function Change() {
  const { params } = useRoute();
  const org = params.org!;
  const project = params.project!;
  const env = params.env!;
  const id = Number(params.id);
  const envs = useEnvironments(org, project);
  const envName = envs.data?.find((e) => e.key === env)?.name ?? env;
  const path = { org, project, env, id };
  const loaded = useLoad(
    async () =>
      withEtag(
        await api.GET("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}", { params: { path } }),
      ),
    [org, project, env, id],
  );
  const c = loaded.data?.data;
  useTitle(c ? `#${id} ${c.title}` : `Change request #${id}`);
  const back = projectPath(org, project, `/changes?env=${encodeURIComponent(env)}`);
  return (
    <section class="ops change">
      <p class="small">
        <a href={back}>← Change requests in {envName}</a>
      </p>
      <ErrorNote error={loaded.error} />
      {!c && !loaded.error && <p aria-busy="true">Loading change request #{id}…</p>}
      {c && (
        <>
          <div class="heading">
            <h1>
              #{c.id} {c.title}
            </h1>
            <ChangeStatus status={c.status} />
          </div>
          <Meta c={c} envName={envName} />
          <h2>Changes</h2>
          {c.diff.map((d, i) => (
            <div class="diff-item" key={i}>
              <h3>
                {d.target}{" "}
                {d.stale && (
                  <span class="badge bad" title="What is live moved since the request was made: rebase it">
                    stale
                  </span>
                )}
              </h3>
              <p class="small muted">
                made against version {d.baseVersion}; live version {d.liveVersion === 0 ? "— (does not exist)" : d.liveVersion}
              </p>
              <JsonDiff before={d.live ?? null} after={d.proposed ?? null} beforeLabel="live" afterLabel="proposed" />
            </div>
          ))}
          <h2>Reviews</h2>
          <Reviews c={c} />
          <Actions
            c={c}
            etag={loaded.data!.etag}
            path={path}
            org={org}
            project={project}
            env={env}
            reload={loaded.reload}
          />
        </>
      )}
    </section>
  );
}

function Meta({ c, envName }: { c: View; envName: string }) {
  return (
    <>
      {c.description && <p class="cr-description">{c.description}</p>}
      <dl class="cr-meta">
        <dt>Environment</dt>
        <dd>{envName}</dd>
        <dt>Opened</dt>
        <dd>
          by {c.author}, <Time at={c.createdAt} />
        </dd>
        <dt>Approvals</dt>
        <dd>
          {c.approvals} of {c.requiredApprovals} required
        </dd>
        <dt>Scheduled</dt>
        <dd>{c.applyAt ? <>applies by itself at {new Date(c.applyAt).toLocaleString()} once approved</> : "no"}</dd>
        {c.appliedAt && (
          <>
            <dt>Applied</dt>
            <dd>
              by {c.appliedBy ?? "?"}, <Time at={c.appliedAt} />
            </dd>
          </>
        )}
        {c.error && (
          <>
            <dt>Error</dt>
            <dd class="field-problems">{c.error}</dd>
          </>
        )}
      </dl>
    </>
  );
}

function Reviews({ c }: { c: View }) {
  if (c.reviews.length === 0) return <p class="muted">No reviews yet.</p>;
  return (
    <ol class="reviews">
      {c.reviews.map((r, i) => (
        <li key={i} class={`verdict-${r.verdict}`}>
          <strong>{r.reviewer}</strong>{" "}
          {r.verdict === "approve" ? "approved" : r.verdict === "reject" ? "rejected" : "commented"}, <Time at={r.at} />
          {r.comment && <p class="comment">{r.comment}</p>}
        </li>
      ))}
    </ol>
  );
}

type Path = { org: string; project: string; env: string; id: number };

function Actions({
  c,
  etag,
  path,
  org,
  project,
  env,
  reload,
}: {
  c: View;
  etag: string;
  path: Path;
  org: string;
  project: string;
  env: string;
  reload: () => Promise<void>;
}) {
  const me = useMe();
  const live = c.status === "open" || c.status === "approved";
  const mine = me.name === c.author || me.name.startsWith(`${c.author} via `);
  const mayWrite = can(me, "flags.write", org, project, env);
  const mayApprove = c.status === "open" && !mine && can(me, "changes.approve", org, project, env);
  const mayBypass = c.status === "open" && can(me, "changes.bypass", org, project, env);
  const stale = c.diff.some((d) => d.stale);

  const [comment, setComment] = useState("");
  const review = useAction(async (verdict: Schema<"Verdict">) => {
    must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/reviews", {
        params: { path },
        body: { verdict, comment },
      }),
    );
    setComment("");
    await reload();
  });
  const [reason, setReason] = useState("");
  const apply = useAction(async (bypassReason?: string) => {
    must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/apply", {
        params: { path },
        body: bypassReason ? { bypassReason } : {},
      }),
    );
    await reload();
  });
  const rebase = useAction(async () => {
    must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/rebase", { params: { path } }),
    );
    apply.clear();
    await reload();
  });
  const [cancelling, setCancelling] = useState(false);
  const cancel = useAction(async () => {
    setCancelling(false);
    must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/cancel", { params: { path } }),
    );
    await reload();
  });
  const [when, setWhen] = useState(c.applyAt ? toLocalInput(c.applyAt) : "");
  const schedule = useAction(async (at: string | null) => {
    must(
      await api.PUT("/api/v1/orgs/{org}/projects/{project}/environments/{env}/change-requests/{id}/schedule", {
        params: { path, header: { "If-Match": etag } },
        body: { applyAt: at },
      }),
    );
    await reload();
  });
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const staleApply = apply.error?.status === 409;

  return (
    <div class="cr-actions">
      <section aria-labelledby="review-title">
        <h3 id="review-title">Review</h3>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void review.run("comment");
          }}
        >
          <label class="stack">
            <span>Comment</span>
            <textarea value={comment} onInput={(e) => setComment(e.currentTarget.value)} />
          </label>
          <div class="button-row">
            <button type="submit" disabled={review.busy || !comment.trim()}>
              Comment
            </button>
            {mayApprove && (
              <>
                <button type="button" class="primary" disabled={review.busy} onClick={() => void review.run("approve")}>
                  Approve
                </button>
                <button type="button" class="danger" disabled={review.busy} onClick={() => void review.run("reject")}>
                  Reject
                </button>
              </>
            )}
          </div>
          {c.status === "open" && mine && <p class="small muted">You opened this request: someone else approves it.</p>}
          <ErrorNote error={review.error} />
        </form>
      </section>

      {live && mayWrite && (
        <section aria-labelledby="apply-title">
          <h3 id="apply-title">Apply</h3>
          {c.status === "approved" ? (
            <button type="button" class="primary" disabled={apply.busy} onClick={() => void apply.run()}>
              Apply now
            </button>
          ) : (
            <p class="small muted">
              Needs {c.requiredApprovals - c.approvals} more approval{c.requiredApprovals - c.approvals === 1 ? "" : "s"} before it can
              be applied.
            </p>
          )}
          {mayBypass && (
            <form
              class="bypass"
              onSubmit={(e) => {
                e.preventDefault();
                void apply.run(reason.trim());
              }}
            >
              <label class="stack">
                <span>Break glass: reason to apply without approvals</span>
                <input value={reason} onInput={(e) => setReason(e.currentTarget.value)} placeholder="incident #123" />
              </label>
              <button type="submit" class="danger" disabled={apply.busy || !reason.trim()}>
                Apply without approvals
              </button>
            </form>
          )}
          <ErrorNote error={apply.error} />
          {(stale || staleApply) && (
            <p class="note">
              What is live changed since this request was made. Rebasing moves it onto what is live now; its approvals no longer
              count.{" "}
              <button type="button" disabled={rebase.busy} onClick={() => void rebase.run()}>
                Rebase
              </button>
            </p>
          )}
          <ErrorNote error={rebase.error} />
        </section>
      )}

      {c.status === "failed" && mayWrite && (
        <section aria-labelledby="rebase-title">
          <h3 id="rebase-title">Rebase</h3>
          <p class="small">Its scheduled application failed. Rebase it onto what is live now to review and schedule it again.</p>
          <button type="button" disabled={rebase.busy} onClick={() => void rebase.run()}>
            Rebase
          </button>
          <ErrorNote error={rebase.error} />
        </section>
      )}

      {live && mayWrite && (
        <section aria-labelledby="schedule-title">
          <h3 id="schedule-title">Schedule</h3>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              if (when) void schedule.run(new Date(when).toISOString());
            }}
          >
            <label class="stack">
              <span>Apply by itself at ({tz})</span>
              <input
                type="datetime-local"
                value={when}
                required
                onInput={(e) => setWhen(e.currentTarget.value)}
                aria-invalid={(schedule.error?.problemsAt("applyAt").length ?? 0) > 0}
              />
            </label>
            <div class="button-row">
              <button type="submit" disabled={schedule.busy || !when}>
                Schedule
              </button>
              {c.applyAt && (
                <button type="button" disabled={schedule.busy} onClick={() => void schedule.run(null)}>
                  Clear schedule
                </button>
              )}
            </div>
            <p class="small muted">Once approved it applies at that time, exactly once.</p>
            <ErrorNote error={schedule.error} onReload={() => { schedule.clear(); void reload(); }} />
          </form>
        </section>
      )}

      {live && (mayWrite || mine) && (
        <section aria-labelledby="cancel-title">
          <h3 id="cancel-title">Cancel</h3>
          <button type="button" disabled={cancel.busy} onClick={() => setCancelling(true)}>
            Cancel this request
          </button>
          <ErrorNote error={cancel.error} />
          <Confirm
            open={cancelling}
            title={`Cancel change request #${c.id}?`}
            confirmLabel="Cancel the request"
            danger
            onCancel={() => setCancelling(false)}
            onConfirm={() => void cancel.run()}
          >
            <p>It will not apply{c.applyAt ? ", and its schedule is dropped" : ""}. This cannot be undone.</p>
          </Confirm>
        </section>
      )}
    </div>
  );
}

/** An RFC 3339 time as a `datetime-local` value in local time. */
function toLocalInput(at: string): string {
  const d = new Date(at);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
