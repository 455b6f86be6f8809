// Creating a metric (in a dialog, from the experiments list or the design
// page): key, kind, event (and the denominator event of a ratio),
// attribution window, direction, cap. A 422's problems go next to their
// fields.
import { useState } from "preact/hooks";
import { api, must } from "../../api";
import { ErrorNote } from "../../components/ErrorNote";
import { Modal } from "../../components/Modal";
import { useAction } from "../../hooks";
import type { Metric } from "./data";
import { Field } from "./Field";

type Kind = Metric["kind"];

const KINDS: [Kind, string][] = [
  ["conversion", "conversion: share of users with the event"],
  ["mean", "mean: Σ value per user"],
  ["sum", "sum: Σ value per user (totals)"],
  ["ratio", "ratio: Σ event / Σ denominator event"],
];

export function MetricForm({ org, project, open, onClose, onCreated }: { org: string; project: string; open: boolean; onClose: () => void; onCreated: (m: Metric) => void }) {
  const [key, setKey] = useState("");
  const [kind, setKind] = useState<Kind>("conversion");
  const [event, setEvent] = useState("");
  const [denominator, setDenominator] = useState("");
  const [days, setDays] = useState("7");
  const [higher, setHigher] = useState(true);
  const [cap, setCap] = useState("");
  const [description, setDescription] = useState("");
  const save = useAction(async () => {
    const created = must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/metrics", {
        params: { path: { org, project } },
        body: {
          key: key.trim(),
          kind,
          event: event.trim(),
          denominatorEvent: kind === "ratio" ? denominator.trim() || null : null,
          windowSeconds: days.trim() ? Math.round(Number(days) * 86400) : null,
          higherIsBetter: higher,
          cap: cap.trim() ? Number(cap) : null,
          description: description.trim() || null,
        },
      }),
    );
    onCreated(created);
    setKey("");
    setEvent("");
    setDenominator("");
    setCap("");
    setDescription("");
  });
  const close = () => {
    save.clear();
    onClose();
  };
  const e = save.error;
  return (
    <Modal open={open} title="New metric" onClose={close}>
      <form
        onSubmit={(ev) => {
          ev.preventDefault();
          void save.run();
        }}
      >
        <ErrorNote error={e} />
        <Field id="metric-key" label="Key" error={e} field="key">
          {(invalid, d) => <input id="metric-key" required value={key} aria-invalid={invalid} aria-describedby={d} onInput={(x) => setKey(x.currentTarget.value)} />}
        </Field>
        <Field id="metric-kind" label="Kind" error={e} field="kind">
          {(invalid, d) => (
            <select id="metric-kind" value={kind} aria-invalid={invalid} aria-describedby={d} onChange={(x) => setKind(x.currentTarget.value as Kind)}>
              {KINDS.map(([k, label]) => (
                <option key={k} value={k}>
                  {label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field id="metric-event" label={kind === "ratio" ? "Numerator event" : "Event"} error={e} field="event" hint="The event name your code sends (track)">
          {(invalid, d) => <input id="metric-event" required value={event} aria-invalid={invalid} aria-describedby={d} onInput={(x) => setEvent(x.currentTarget.value)} />}
        </Field>
        {kind === "ratio" && (
          <Field id="metric-denominator" label="Denominator event" error={e} field="denominatorEvent">
            {(invalid, d) => <input id="metric-denominator" required value={denominator} aria-invalid={invalid} aria-describedby={d} onInput={(x) => setDenominator(x.currentTarget.value)} />}
          </Field>
        )}
        <Field id="metric-window" label="Attribution window (days)" error={e} field="windowSeconds" hint="Events count this long after a user's first exposure">
          {(invalid, d) => <input id="metric-window" type="number" min="0" step="any" value={days} aria-invalid={invalid} aria-describedby={d} onInput={(x) => setDays(x.currentTarget.value)} />}
        </Field>
        <Field id="metric-cap" label="Cap per user (optional)" error={e} field="cap">
          {(invalid, d) => <input id="metric-cap" type="number" step="any" value={cap} aria-invalid={invalid} aria-describedby={d} onInput={(x) => setCap(x.currentTarget.value)} />}
        </Field>
        <div class="row">
          <input id="metric-higher" type="checkbox" checked={higher} onChange={(x) => setHigher(x.currentTarget.checked)} />
          <label for="metric-higher">Higher is better</label>
        </div>
        <Field id="metric-description" label="Description (optional)" error={e} field="description">
          {(invalid, d) => <input id="metric-description" value={description} aria-invalid={invalid} aria-describedby={d} onInput={(x) => setDescription(x.currentTarget.value)} />}
        </Field>
        <div class="actions">
          <button type="button" onClick={close}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={save.busy}>
            Create metric
          </button>
        </div>
      </form>
    </Modal>
  );
}
