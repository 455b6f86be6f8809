// The "New flag" dialog: key, type, variants, off variant, description, owner,
// tags. The API's 422 problems appear next to the fields they are about.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, must, type ApiError } from "../../api";
import { ErrorNote, FieldProblems } from "../../components/ErrorNote";
import { Modal } from "../../components/Modal";
import { useAction } from "../../hooks";
import { projectPath } from "../../scope";
import { readVariants, VariantsEditor, type FlagType, type VariantRow } from "./Variants";

const DEFAULTS: Record<FlagType, VariantRow[]> = {
  boolean: [
    { name: "on", value: "true" },
    { name: "off", value: "false" },
  ],
  string: [
    { name: "control", value: "control" },
    { name: "treatment", value: "treatment" },
  ],
  number: [
    { name: "low", value: "0" },
    { name: "high", value: "1" },
  ],
  json: [
    { name: "off", value: "{}" },
    { name: "on", value: '{"enabled": true}' },
  ],
};

export function CreateFlag({ org, project, open, onClose }: { org: string; project: string; open: boolean; onClose: () => void }) {
  const { route } = useLocation();
  const [key, setKey] = useState("");
  const [type, setType] = useState<FlagType>("boolean");
  const [rows, setRows] = useState<VariantRow[]>(DEFAULTS.boolean);
  const [off, setOff] = useState("off");
  const [description, setDescription] = useState("");
  const [owner, setOwner] = useState("");
  const [tags, setTags] = useState("");
  const [local, setLocal] = useState<string[]>([]);

  const create = useAction(async () => {
    const { variants, problems } = readVariants(type, rows);
    setLocal(problems);
    if (problems.length) return;
    must(
      await api.POST("/api/v1/orgs/{org}/projects/{project}/flags", {
        params: { path: { org, project } },
        body: {
          key: key.trim(),
          flagType: type,
          variants,
          offVariant: off,
          description: description.trim() || null,
          owner: owner.trim() || null,
          tags: tags
            .split(",")
            .map((t) => t.trim())
            .filter(Boolean),
        },
      }),
    );
    onClose();
    route(projectPath(org, project, `/flags/${encodeURIComponent(key.trim())}`));
  });
  const at = (field: string) => (create.error as ApiError | undefined)?.problemsAt(field) ?? [];
  const chooseType = (t: FlagType) => {
    setType(t);
    setRows(DEFAULTS[t]);
    setOff(DEFAULTS[t][0]!.name === "on" ? "off" : DEFAULTS[t][0]!.name);
  };

  return (
    <Modal open={open} title="New flag" onClose={onClose}>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          void create.run();
        }}
      >
        <label class="stack">
          <span>Key</span>
          <input
            name="key"
            required
            value={key}
            autoFocus
            aria-describedby="key-problems"
            aria-invalid={at("key").length > 0}
            onInput={(e) => setKey(e.currentTarget.value)}
          />
          <FieldProblems id="key-problems" problems={at("key")} />
        </label>
        <label class="stack">
          <span>Type</span>
          <select name="type" value={type} onChange={(e) => chooseType(e.currentTarget.value as FlagType)}>
            <option>boolean</option>
            <option>string</option>
            <option>number</option>
            <option>json</option>
          </select>
        </label>
        <VariantsEditor idPrefix="new" legend="Variants" type={type} rows={rows} onChange={setRows} problems={at("variants")} />
        <label class="stack">
          <span>Served when off</span>
          <select value={off} onChange={(e) => setOff(e.currentTarget.value)} aria-describedby="off-problems">
            {rows.map((r) => (
              <option key={r.name}>{r.name}</option>
            ))}
          </select>
          <FieldProblems id="off-problems" problems={at("offVariant")} />
        </label>
        <label class="stack">
          <span>Description</span>
          <input value={description} onInput={(e) => setDescription(e.currentTarget.value)} />
        </label>
        <label class="stack">
          <span>Owner</span>
          <input value={owner} onInput={(e) => setOwner(e.currentTarget.value)} />
        </label>
        <label class="stack">
          <span>Tags (comma-separated)</span>
          <input value={tags} onInput={(e) => setTags(e.currentTarget.value)} />
        </label>
        <FieldProblems id="new-local-problems" problems={local} />
        <ErrorNote error={create.error} />
        <div class="actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class="primary" disabled={create.busy}>
            Create flag
          </button>
        </div>
      </form>
    </Modal>
  );
}
