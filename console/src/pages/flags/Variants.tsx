// A flag's variants as editable rows (name and value typed as text), shared
// by the New flag dialog and Settings, and their reading into the API's
// `variants` object with a problem per bad row.
import type { Problem } from "../../api";
import { FieldProblems } from "../../components/ErrorNote";

/** A flag's value type. */
export type FlagType = "boolean" | "string" | "number" | "json";

/** One variant being edited. */
export interface VariantRow {
  name: string;
  value: string;
}

/** A variant's value typed in as text, parsed for the flag's type. */
export function parseValue(type: FlagType, text: string): unknown {
  switch (type) {
    case "boolean":
      if (text === "true" || text === "false") return text === "true";
      throw new Error("must be true or false");
    case "number": {
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n)) throw new Error("must be a finite number");
      return n;
    }
    case "json":
      try {
        return JSON.parse(text);
      } catch (e) {
        throw new Error(`not JSON: ${(e as Error).message}`);
      }
    default:
      return text;
  }
}

/** The rows as the API's `variants`, and what is wrong with them. */
export function readVariants(type: FlagType, rows: VariantRow[]): { variants: Record<string, unknown>; problems: string[] } {
  const problems: string[] = [];
  const variants: Record<string, unknown> = {};
  rows.forEach((r, i) => {
    if (!r.name.trim()) problems.push(`variant ${i + 1}: a name is needed`);
    try {
      variants[r.name.trim()] = parseValue(type, r.value);
    } catch (e) {
      problems.push(`variant ${r.name || i + 1}: ${(e as Error).message}`);
    }
  });
  return { variants, problems };
}

/** The variants' rows: name and value, remove, add (not for booleans). */
export function VariantsEditor({
  idPrefix,
  legend,
  type,
  rows,
  onChange,
  problems,
}: {
  idPrefix: string;
  legend: string;
  type: FlagType;
  rows: VariantRow[];
  onChange: (rows: VariantRow[]) => void;
  problems: Problem[];
}) {
  const set = (i: number, field: keyof VariantRow, value: string) => onChange(rows.map((x, j) => (j === i ? { ...x, [field]: value } : x)));
  return (
    <fieldset>
      <legend>{legend}</legend>
      {rows.map((r, i) => (
        <div class="row" key={i}>
          <label class="inline-field" for={`${idPrefix}-v${i}-name`}>
            <span>Name</span>
            <input id={`${idPrefix}-v${i}-name`} value={r.name} onInput={(e) => set(i, "name", e.currentTarget.value)} />
          </label>
          <label class="inline-field" for={`${idPrefix}-v${i}-value`}>
            <span>Value</span>
            <input id={`${idPrefix}-v${i}-value`} value={r.value} onInput={(e) => set(i, "value", e.currentTarget.value)} />
          </label>
          {rows.length > 1 && (
            <button type="button" class="link" aria-label={`Remove variant ${r.name || i + 1}`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>
              Remove
            </button>
          )}
        </div>
      ))}
      {type !== "boolean" && (
        <button type="button" class="link" onClick={() => onChange([...rows, { name: "", value: "" }])}>
          Add a variant
        </button>
      )}
      <FieldProblems id={`${idPrefix}-variants-problems`} problems={problems} />
    </fieldset>
  );
}
