// The audit chain's verification (`GET /api/v1/audit/verify`): only the
// bootstrap administrator may run it (the chain spans every organization),
// so others are told so instead of being shown an error.
import { api, must } from "../../api";
import { ErrorNote } from "../../components/ErrorNote";
import { useLoad } from "../../hooks";
import type { Me } from "../../session";

const FAULTS: Record<string, string> = {
  gap: "an entry is missing",
  brokenLink: "an entry does not link to the one before it",
  hashMismatch: "an entry was edited after it was written",
  truncated: "the chain ends early",
};

export function Verification({ me }: { me: Me }) {
  const check = useLoad(async () => (me.isAdmin ? must(await api.GET("/api/v1/audit/verify")) : null), [me.isAdmin]);
  const v = check.data;
  const refused = !me.isAdmin || check.error?.status === 403;
  return (
    <div class="verification" role="region" aria-label="Chain verification" aria-busy={check.loading}>
      {refused ? (
        <p class="note">
          <strong>Chain verification:</strong> only the instance's bootstrap administrator may verify the hash chain (it spans
          every organization). Operators run <code>bunting audit verify</code>.
        </p>
      ) : check.error ? (
        <ErrorNote error={check.error} />
      ) : !v ? (
        <p aria-busy="true">Verifying the hash chain…</p>
      ) : v.ok ? (
        <p class="note ok">
          <strong>Chain verified</strong> up to #{v.entries}: every entry in place and unedited. Head hash{" "}
          <code title={v.headHash}>{v.headHash.slice(0, 16)}…</code>{" "}
          <button type="button" class="link" onClick={() => void check.reload()}>
            Verify again
          </button>
        </p>
      ) : (
        <div class="note error" role="alert">
          <strong>Chain broken</strong> at #{v.firstBadSeq ?? "?"}: {FAULTS[v.fault ?? ""] ?? v.fault ?? "unknown fault"}. Entries
          before it ({v.entries} checked) are intact; the last good hash is <code title={v.headHash}>{v.headHash.slice(0, 16)}…</code>.{" "}
          <button type="button" class="link" onClick={() => void check.reload()}>
            Verify again
          </button>
        </div>
      )}
    </div>
  );
}
