// A condition in the rule language, edited in CodeMirror: highlighted as you
// type, with each problem (from the WASM engine or a 422) as a lint
// diagnostic at its span and, below the editor, as "line:column: message"
// over the offending line with a caret under the column.
import { EditorState } from "@codemirror/state";
import { history, historyKeymap } from "@codemirror/commands";
import { EditorView, keymap, placeholder as placeholderText } from "@codemirror/view";
import { setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { useLayoutEffect, useRef } from "preact/hooks";
import { ruleHighlighting, ruleLanguage } from "./ruleLanguage";

/** Where a problem is in a condition (1-based, in characters). */
export interface Span {
  line: number;
  column: number;
  length: number;
}

/** A problem of a condition: its message (without the position) and span. */
export interface ConditionProblem {
  message: string;
  span?: Span | null;
}

/** `message` without a leading `LINE:COLUMN: `. */
export function bareMessage(message: string): string {
  return message.replace(/^\d+:\d+:\s*/, "");
}

/** The character offsets in `text` of `span` (clamped to the text). */
export function spanRange(text: string, span: Span): { from: number; to: number } {
  const lines = text.split("\n");
  let from = 0;
  for (let i = 0; i < span.line - 1 && i < lines.length; i++) from += lines[i]!.length + 1;
  const line = lines[Math.min(span.line, lines.length) - 1] ?? "";
  // Columns count characters (code points); JavaScript strings count UTF-16 units.
  const chars = Array.from(line);
  const before = chars.slice(0, span.column - 1).join("").length;
  const covered = chars.slice(span.column - 1, span.column - 1 + Math.max(span.length, 0)).join("").length;
  from = Math.min(from + before, text.length);
  return { from, to: Math.min(from + covered, text.length) };
}

/** The offending line of `text` and the caret line under `span`. */
export function caretLines(text: string, span: Span): [string, string] {
  const line = text.split("\n")[span.line - 1] ?? "";
  const chars = Array.from(line);
  const pad = chars
    .slice(0, span.column - 1)
    .map((c) => (c === "\t" ? "\t" : " "))
    .join("");
  const extra = " ".repeat(Math.max(0, span.column - 1 - chars.length));
  return [line, `${pad}${extra}${"^".repeat(Math.max(1, Math.min(span.length, 40)))}`];
}

/** The problems of a condition, each with its caret. */
export function ConditionProblems({ id, text, problems }: { id: string; text: string; problems: ConditionProblem[] }) {
  return (
    <div id={id} class="condition-problems" aria-live="polite">
      {problems.map((p, i) => {
        const msg = bareMessage(p.message);
        if (!p.span) {
          return (
            <p key={i} class="problem">
              {msg}
            </p>
          );
        }
        const [line, caret] = caretLines(text, p.span);
        return (
          <div key={i} class="problem">
            <p>
              <span class="position">
                {p.span.line}:{p.span.column}
              </span>
              : {msg}
            </p>
            <pre class="caret" aria-hidden="true">
              {line}
              {"\n"}
              {caret}
            </pre>
          </div>
        );
      })}
    </div>
  );
}

/**
 * The editor. Controlled: `value` and `onChange`; the problems are the
 * caller's (computed from the draft), shown as diagnostics and below.
 */
export function RuleEditor({
  id,
  label,
  value,
  onChange,
  problems,
  placeholder,
}: {
  id: string;
  label: string;
  value: string;
  onChange: (value: string) => void;
  problems: ConditionProblem[];
  placeholder?: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | undefined>(undefined);
  const changed = useRef(onChange);
  changed.current = onChange;
  // The last text this editor reported: a `value` equal to it is the echo
  // of our own edit (maybe an older one), never a change from outside.
  const emitted = useRef(value);
  const problemsId = `${id}-problems`;

  // Made in a layout effect, so a parent can focus it right after adding it.
  useLayoutEffect(() => {
    const v = new EditorView({
      parent: host.current!,
      state: EditorState.create({
        doc: value,
        extensions: [
          ruleLanguage,
          ruleHighlighting,
          // Undo and redo (Ctrl/Cmd+Z, Ctrl+Y / Shift+Cmd+Z); Tab still leaves the editor.
          history(),
          keymap.of(historyKeymap),
          EditorView.lineWrapping,
          placeholderText(placeholder ?? 'country in ["US", "CA"]'),
          EditorView.contentAttributes.of({
            id,
            "aria-describedby": problemsId,
            "aria-multiline": "true",
            spellcheck: "false",
            autocapitalize: "off",
            autocorrect: "off",
          }),
          EditorView.updateListener.of((u) => {
            if (!u.docChanged) return;
            emitted.current = u.state.doc.toString();
            changed.current(emitted.current);
          }),
        ],
      }),
    });
    view.current = v;
    return () => {
      v.destroy();
      view.current = undefined;
    };
    // The editor lives as long as the component; id and label are stable.
  }, []);

  // The label follows the rule's position (set here: CodeMirror leaves
  // attributes it was not given alone).
  useLayoutEffect(() => {
    view.current?.contentDOM.setAttribute("aria-label", label);
  }, [label]);

  // A value changed from outside (a reload, a reset) replaces the text. A
  // layout effect: a plain effect may run late, with an older value than
  // the editor already reported, and would undo the typing.
  useLayoutEffect(() => {
    const v = view.current;
    if (!v || value === emitted.current) return;
    emitted.current = value;
    if (v.state.doc.toString() !== value) {
      v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
    }
  }, [value]);

  useLayoutEffect(() => {
    const v = view.current;
    if (!v) return;
    const text = v.state.doc.toString();
    const diagnostics: Diagnostic[] = problems.map((p) => {
      const { from, to } = p.span ? spanRange(text, p.span) : { from: 0, to: text.length };
      return { from, to: Math.max(to, Math.min(from + 1, text.length)), severity: "error", message: bareMessage(p.message) };
    });
    v.dispatch(setDiagnostics(v.state, diagnostics));
  }, [problems, value]);

  return (
    <div class={`rule-editor${problems.length ? " invalid" : ""}`}>
      <div class="cm-host" ref={host} />
      <ConditionProblems id={problemsId} text={value} problems={problems} />
    </div>
  );
}
