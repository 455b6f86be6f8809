// A timestamp, relative ("3 min ago") with the exact time on hover.
export function Time({ at }: { at: string | null | undefined }) {
  if (!at) return <span class="muted">—</span>;
  const d = new Date(at);
  return (
    <time dateTime={at} title={d.toISOString()}>
      {relative(d)}
    </time>
  );
}

/** "just now", "5 min ago", "3 h ago", "2 d ago", else the date. */
export function relative(d: Date, now = Date.now()): string {
  const s = Math.round((now - d.getTime()) / 1000);
  if (s < 45 && s > -45) return "just now";
  if (s < 0) return d.toISOString().slice(0, 16).replace("T", " ");
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.round(s / 86400)} d ago`;
  return d.toISOString().slice(0, 10);
}
