/**
 * Where snapshots come from: the edge's `/sdk/v1/snapshot` endpoint
 * (conditional requests with ETag), Cloudflare KV's REST API, or the files
 * of the origin's directory publisher. A source only fetches bytes; the
 * client verifies them (`snapshot.ts`).
 *
 * The KV and directory sources read the snapshot's JSON value or its packed
 * form (`bunting serve --kv-format packed`), whose JSON text they take out
 * (`packed.ts`); a packed value they cannot read is a `PackedSnapshotError`.
 *
 * Every fetch takes the `tag` of the snapshot in service (the ETag it came
 * with, or the file's identity) and may answer "unchanged" without a body.
 * The client records a tag only for snapshots it accepted, so a refused
 * snapshot is fetched (and refused) again on the next poll rather than
 * hidden behind a 304.
 */
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { snapshotText } from "./packed.js";
import { SourceError } from "./source-error.js";

/** The result of one fetch. */
export type Fetched =
  | { kind: "unchanged" }
  | { kind: "snapshot"; text: string; tag?: string | undefined };

/** A snapshot source. */
export interface SnapshotSource {
  /** `edge`, `kv` or `directory` for the built-in sources (reported by `status()`). */
  readonly name: string;
  /** Where it reads from (no secrets), for logs and `status()`. */
  readonly location: string;
  fetch(tag: string | undefined, signal: AbortSignal): Promise<Fetched>;
}

export { SourceError };

type FetchFn = typeof globalThis.fetch;

/** Reads an error body's most useful part: OFREP-like `errorDetails`, Cloudflare's `errors[0].message`, or the text. */
async function describe(r: Response): Promise<string> {
  const text = await r.text().catch(() => "");
  try {
    const j = JSON.parse(text) as { errorCode?: string; errorDetails?: string; errors?: Array<{ message?: string }> };
    if (j.errorDetails || j.errorCode) return [j.errorCode, j.errorDetails].filter(Boolean).join(": ");
    if (j.errors?.[0]?.message) return j.errors[0].message;
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

/** `GET {edgeUrl}/sdk/v1/snapshot` with the server SDK key; `If-None-Match` with the ETag in service. */
export class EdgeSource implements SnapshotSource {
  readonly name = "edge" as const;
  readonly location: string;
  constructor(
    edgeUrl: string,
    private readonly sdkKey: string,
    private readonly fetchFn: FetchFn = globalThis.fetch,
  ) {
    this.location = `${edgeUrl.replace(/\/+$/, "")}/sdk/v1/snapshot`;
  }

  async fetch(tag: string | undefined, signal: AbortSignal): Promise<Fetched> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.sdkKey}`, accept: "application/json" };
    if (tag !== undefined) headers["if-none-match"] = tag;
    const r = await this.fetchFn(this.location, { headers, signal });
    if (r.status === 304) {
      await r.body?.cancel();
      return { kind: "unchanged" };
    }
    if (r.status !== 200) throw new SourceError(`edge answered ${r.status}: ${await describe(r)}`, r.status);
    return { kind: "snapshot", text: await r.text(), tag: r.headers.get("etag") ?? undefined };
  }
}

/** Options of the Cloudflare KV source. */
export interface KvSourceOptions {
  accountId: string;
  namespaceId: string;
  /** A Cloudflare API token that can read the namespace. */
  apiToken: string;
  /** The edge environment name, `<org>/<project>/<env>` for snapshots the origin publishes. */
  environment: string;
  /** Defaults to `https://api.cloudflare.com/client/v4`. */
  apiBase?: string;
}

/** Cloudflare KV's REST API: the value of `snapshot:<environment>`. No ETag: the client skips a load when the checksum is the one in service. */
export class KvSource implements SnapshotSource {
  readonly name = "kv" as const;
  readonly location: string;
  constructor(
    private readonly options: KvSourceOptions,
    private readonly fetchFn: FetchFn = globalThis.fetch,
  ) {
    const base = (options.apiBase ?? "https://api.cloudflare.com/client/v4").replace(/\/+$/, "");
    const key = encodeURIComponent(`snapshot:${options.environment}`);
    this.location = `${base}/accounts/${encodeURIComponent(options.accountId)}/storage/kv/namespaces/${encodeURIComponent(options.namespaceId)}/values/${key}`;
  }

  async fetch(_tag: string | undefined, signal: AbortSignal): Promise<Fetched> {
    const r = await this.fetchFn(this.location, { headers: { authorization: `Bearer ${this.options.apiToken}` }, signal });
    if (r.status === 404) {
      await r.body?.cancel();
      throw new SourceError(`no snapshot for ${this.options.environment} in KV`, 404);
    }
    if (r.status !== 200) throw new SourceError(`Cloudflare KV answered ${r.status}: ${await describe(r)}`, r.status);
    return { kind: "snapshot", text: snapshotText(new Uint8Array(await r.arrayBuffer())) };
  }
}

/**
 * The file name the origin's directory publisher gives a KV key: every byte
 * but `A-Za-z0-9-_.~` as `%XX` (uppercase hex).
 */
export function encodeKey(key: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(key)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-_.~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Options of the directory source. */
export interface DirectorySourceOptions {
  /** The publisher's directory (`bunting serve --publish-dir DIR`). */
  path: string;
  /** `<org>/<project>/<env>`. */
  environment: string;
}

/** The directory publisher's file of an environment; unchanged while its inode, size and mtime are those of the file in service. */
export class DirectorySource implements SnapshotSource {
  readonly name = "directory" as const;
  readonly location: string;
  constructor(options: DirectorySourceOptions) {
    this.location = path.join(options.path, encodeKey(`snapshot:${options.environment}`));
  }

  async fetch(tag: string | undefined, _signal: AbortSignal): Promise<Fetched> {
    let s;
    try {
      s = await stat(this.location);
    } catch (e) {
      throw new SourceError(`cannot read ${this.location}: ${(e as Error).message}`);
    }
    const identity = `${s.ino}:${s.size}:${s.mtimeMs}`;
    if (identity === tag) return { kind: "unchanged" };
    // The publisher renames a complete file into place, so one read sees one version.
    const text = snapshotText(await readFile(this.location));
    return { kind: "snapshot", text, tag: identity };
  }
}
