// Copies a text to the clipboard and says so (for secrets shown once).
import { useState } from "preact/hooks";

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [state, setState] = useState<"idle" | "copied" | "failed">("idle");
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setState("copied");
    } catch {
      setState("failed");
    }
  };
  return (
    <>
      <button type="button" onClick={() => void copy()}>
        {label}
      </button>
      <span role="status" class="small muted">
        {state === "copied" ? " Copied." : state === "failed" ? " Could not copy: select the text and copy it." : ""}
      </span>
    </>
  );
}
