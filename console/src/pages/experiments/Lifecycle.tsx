// The lifecycle buttons of an experiment: start (draft), stop (running),
// decide (running or stopped: ship a variant or keep control), delete (not
// running), each confirmed first and sent with `If-Match`.
import { useState } from "preact/hooks";
import { api, must, withEtag } from "../../api";
import { Confirm } from "../../components/Confirm";
import { ErrorNote } from "../../components/ErrorNote";
import { Modal } from "../../components/Modal";
import { useAction } from "../../hooks";
import type { Experiment, Where } from "./data";

type Step = "start" | "stop" | "delete";

export function Lifecycle({
  where,
  experiment,
  etag,
  arms,
  allowed,
  editHref,
  onChanged,
  onDeleted,
  onReload,
}: {
  where: Where;
  experiment: Experiment;
  etag: string;
  arms: string[];
  allowed: boolean;
  editHref: string;
  onChanged: (x: { data: Experiment; etag: string }) => void;
  onDeleted: () => void;
  onReload: () => void;
}) {
  const [confirming, setConfirming] = useState<Step | null>(null);
  const [deciding, setDeciding] = useState(false);
  const [variant, setVariant] = useState(experiment.control);
  const [rationale, setRationale] = useState("");
  const path = { params: { path: { ...where }, header: { "If-Match": etag } } };
  const step = useAction(async (s: Step) => {
    setConfirming(null);
    if (s === "delete") {
      must(await api.DELETE("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}", path));
      onDeleted();
      return;
    }
    const answer =
      s === "start"
        ? await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/start", path)
        : await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/stop", path);
    onChanged(withEtag(answer));
  });
  const decide = useAction(async () => {
    const answer = await api.POST("/api/v1/orgs/{org}/projects/{project}/environments/{env}/experiments/{experiment}/decide", {
      ...path,
      body: { variant, rationale: rationale.trim() || null },
    });
    onChanged(withEtag(answer));
    setDeciding(false);
  });
  const status = experiment.status;
  if (!allowed) return null;
  return (
    <div class="lifecycle">
      <div class="row">
        {(status === "draft" || status === "running") && (
          <a class="button" href={editHref}>
            Edit
          </a>
        )}
        {status === "draft" && (
          <button type="button" class="primary" disabled={step.busy} onClick={() => setConfirming("start")}>
            Start
          </button>
        )}
        {status === "running" && (
          <button type="button" disabled={step.busy} onClick={() => setConfirming("stop")}>
            Stop
          </button>
        )}
        {(status === "running" || status === "stopped") && (
          <button
            type="button"
            class="primary"
            onClick={() => {
              decide.clear();
              setVariant(experiment.control);
              setDeciding(true);
            }}
          >
            Decide…
          </button>
        )}
        {status !== "running" && (
          <button type="button" class="danger-outline" disabled={step.busy} onClick={() => setConfirming("delete")}>
            Delete
          </button>
        )}
      </div>
      <ErrorNote error={step.error} onReload={onReload} />
      <Confirm
        open={confirming !== null}
        title={`${confirming === "start" ? "Start" : confirming === "stop" ? "Stop" : "Delete"} ${experiment.key}?`}
        confirmLabel={`${confirming === "start" ? "Start" : confirming === "stop" ? "Stop" : "Delete"} experiment`}
        danger={confirming !== "start"}
        onCancel={() => setConfirming(null)}
        onConfirm={() => confirming && void step.run(confirming)}
      >
        {confirming === "start" ? (
          <p>
            From now on, exposures to <code>{experiment.flag}</code> count for this experiment. Its flag, control, allocation and primary
            metric can no longer change.
          </p>
        ) : confirming === "stop" ? (
          <p>Exposures after now no longer count. Users already exposed keep their attribution window. A stopped experiment cannot restart.</p>
        ) : (
          <p>The experiment and its decision are deleted; its exposures and events stay (another experiment on the same flag can read them).</p>
        )}
      </Confirm>
      <Modal open={deciding} title={`Decide ${experiment.key}`} onClose={() => setDeciding(false)}>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void decide.run();
          }}
        >
          <ErrorNote error={decide.error} onReload={onReload} />
          <fieldset>
            <legend>Decision</legend>
            {arms.map((v) => (
              <label class="choice block" key={v}>
                <input type="radio" name="decision" value={v} checked={variant === v} onChange={() => setVariant(v)} />
                {v === experiment.control ? (
                  <>
                    Keep control (<code>{v}</code>)
                  </>
                ) : (
                  <>
                    Ship <code>{v}</code>
                  </>
                )}
              </label>
            ))}
          </fieldset>
          <label class="stack">
            <span>Rationale</span>
            <textarea rows={3} value={rationale} onInput={(e) => setRationale(e.currentTarget.value)} placeholder="+3 points of conversion, guardrails healthy" />
          </label>
          <p class="muted small">The decision is recorded with your name and the time; the flag's targeting is yours to change.</p>
          <div class="actions">
            <button type="button" onClick={() => setDeciding(false)}>
              Cancel
            </button>
            <button type="submit" class="primary" disabled={decide.busy}>
              Record decision
            </button>
          </div>
        </form>
      </Modal>
    </div>
  );
}
