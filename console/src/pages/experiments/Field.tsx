// A labelled form field with its hint and the 422 problems about it, wired
// to the control by `aria-describedby` and `aria-invalid`.
import type { ComponentChildren } from "preact";
import type { ApiError } from "../../api";
import { FieldProblems } from "../../components/ErrorNote";

export function Field({
  id,
  label,
  error,
  field,
  hint,
  children,
}: {
  id: string;
  label: string;
  error: ApiError | undefined;
  /** The field's path in a 422's problems (`primaryMetric`, `guardrails[0].tolerance`). */
  field: string;
  hint?: string;
  children: (invalid: boolean, describedBy: string | undefined) => ComponentChildren;
}) {
  const problems = error?.problemsAt(field) ?? [];
  const describedBy = [hint ? `${id}-hint` : "", problems.length ? `${id}-problems` : ""].filter(Boolean).join(" ") || undefined;
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children(problems.length > 0, describedBy)}
      {hint && (
        <span class="muted small" id={`${id}-hint`}>
          {hint}
        </span>
      )}
      <FieldProblems id={`${id}-problems`} problems={problems} />
    </div>
  );
}
