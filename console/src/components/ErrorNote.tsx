// An API error shown where it happened: a 412 as "changed by someone else",
// a 422 with every problem (the problems about one field also go next to it,
// see `FieldProblems`), anything else with its status and message.
import type { ApiError, Problem } from "../api";

export function ErrorNote({ error, onReload }: { error: ApiError | undefined; onReload?: () => void }) {
  if (!error) return null;
  if (error.stale) {
    return (
      <div class="note error" role="alert">
        <strong>Changed by someone else.</strong> This was changed since you opened it.{" "}
        {onReload ? (
          <button type="button" class="link" onClick={onReload}>
            Reload and compare
          </button>
        ) : (
          "Reload to see the current version."
        )}
      </div>
    );
  }
  if (error.status === 403) {
    return (
      <div class="note error" role="alert">
        <strong>Not allowed.</strong> {error.message}
      </div>
    );
  }
  return (
    <div class="note error" role="alert">
      <strong>{error.status === 422 ? "Please fix:" : error.status ? `Error ${error.status}:` : "Network error:"}</strong>{" "}
      {error.message}
      {error.problems.length > 0 && (
        <ul>
          {error.problems.map((p, i) => (
            <li key={i}>
              <code>{p.path}</code>: {p.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** The problems about one field, next to it: a 422's, or messages found before sending. */
export function FieldProblems({ id, problems }: { id: string; problems: (Problem | string)[] }) {
  if (problems.length === 0) return null;
  return (
    <div id={id} role="alert">
      <ul class="field-problems">
        {problems.map((p, i) => (
          <li key={i}>{typeof p === "string" ? p : p.message}</li>
        ))}
      </ul>
    </div>
  );
}
