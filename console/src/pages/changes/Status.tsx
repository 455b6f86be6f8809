// A change request's status as a badge (word, not colour alone).
import type { Schema } from "../../api";

export const STATUSES: Schema<"ChangeStatus">[] = ["open", "approved", "rejected", "applied", "cancelled", "failed"];

export function ChangeStatus({ status }: { status: Schema<"ChangeStatus"> }) {
  const tone = status === "applied" || status === "approved" ? "ok" : status === "rejected" || status === "failed" ? "bad" : "";
  return <span class={`badge status-${status} ${tone}`}>{status}</span>;
}
