// The rule language (docs/rules.md) for CodeMirror: a stream tokenizer for
// highlighting (keywords, operators, strings, numbers, attribute paths,
// functions such as segment(...)) and its colours (WCAG AA on white).
import { HighlightStyle, StreamLanguage, syntaxHighlighting, type StringStream } from "@codemirror/language";
import { tags as t } from "@lezer/highlight";

const WORD_OPERATORS = new Set(["and", "or", "not", "in", "contains", "starts_with", "ends_with", "matches"]);
const ATOMS = new Set(["true", "false", "null", "now"]);
const PATH = /^[A-Za-z_$][A-Za-z0-9_$-]*(?:\.[A-Za-z0-9_$-]+)*/;
const NUMBER = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/;

/** The tokenizer: one token per call, named by its highlighting tag. */
export function token(stream: StringStream): string | null {
  if (stream.eatSpace()) return null;
  const quote = stream.peek();
  if (quote === '"' || quote === "'") {
    stream.next();
    let escaped = false;
    let c: string | void;
    while ((c = stream.next()) !== undefined) {
      if (c === quote && !escaped) return "string";
      escaped = !escaped && c === "\\";
    }
    return "string";
  }
  if (stream.match(NUMBER)) return "number";
  if (stream.match(/^(?:==|!=|<=|>=|&&|\|\||[<>!])/)) return "operator";
  const word = stream.match(PATH) as RegExpMatchArray | null;
  if (word) {
    const w = word[0];
    if (WORD_OPERATORS.has(w)) return "keyword";
    if (w === "true" || w === "false") return "bool";
    if (w === "null") return "null";
    if (ATOMS.has(w)) return "atom";
    if (stream.match(/^\s*\(/, false)) return "variableName.function";
    return "propertyName";
  }
  const c = stream.next();
  if (c === "(" || c === ")") return "paren";
  if (c === "[" || c === "]") return "squareBracket";
  if (c === ",") return "separator";
  return "invalid";
}

/** The rule language. */
export const ruleLanguage = StreamLanguage.define<null>({
  name: "bunting-rules",
  startState: () => null,
  token: (stream) => token(stream),
  languageData: { closeBrackets: { brackets: ["(", "[", '"', "'"] } },
});

/** Its colours. */
export const ruleHighlighting = syntaxHighlighting(
  HighlightStyle.define([
    { tag: t.keyword, color: "#6f2da8", fontWeight: "600" },
    { tag: t.operator, color: "#6f2da8" },
    { tag: t.string, color: "#0a6b2a" },
    { tag: t.number, color: "#a04100" },
    { tag: [t.bool, t.null, t.atom], color: "#b3261e" },
    { tag: t.function(t.variableName), color: "#0a58ca", fontWeight: "600" },
    { tag: t.propertyName, color: "#1b1f24" },
    { tag: t.invalid, color: "#a40e26", textDecoration: "underline wavy" },
  ]),
);
