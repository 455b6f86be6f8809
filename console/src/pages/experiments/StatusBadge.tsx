import type { Status } from "./data";

/** An experiment's lifecycle state as a badge. */
export function StatusBadge({ status }: { status: Status }) {
  return <span class={`badge status-${status}`}>{status}</span>;
}
