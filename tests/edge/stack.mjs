// The local stack for end-to-end tests: a real `bunting serve` (embedded
// SQLite) publishing through its Cloudflare KV REST publisher into the KV of
// the edge worker in workerd (miniflare), via a KV REST server in this
// process that stands in for api.cloudflare.com.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { bin, post } from "./harness.mjs";

export const ROOT_TOKEN = "e2e-root-token";
export const INGEST_SECRET = "e2e-ingest-secret";
// The `bunting` CLI and its `pack`, kept here for the callers of before.
export { bin, pack } from "./harness.mjs";

export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// PUT/DELETE /accounts/:a/storage/kv/namespaces/:n/values/:key, as
// Cloudflare's API, into `kv`. Counts the writes.
export function kvRestServer(kv) {
  const stats = { puts: 0, deletes: 0 };
  const server = createServer(async (req, res) => {
    const m = req.url.match(/^\/client\/v4\/accounts\/acct\/storage\/kv\/namespaces\/ns\/values\/(.+)$/);
    if (!m || req.headers.authorization !== "Bearer cf-token") {
      res.writeHead(m ? 403 : 404, { "content-type": "application/json" });
      res.end(JSON.stringify({ success: false, errors: [{ code: 10000, message: "no" }] }));
      return;
    }
    const key = decodeURIComponent(m[1]);
    const chunks = [];
    for await (const c of req) chunks.push(c);
    if (req.method === "PUT") {
      // The bytes as sent: a packed snapshot (the publishers' default) is
      // binary, and a UTF-8 round trip would damage it.
      const body = Buffer.concat(chunks);
      await kv.put(key, new Uint8Array(body).buffer);
      stats.puts++;
    } else if (req.method === "DELETE") {
      await kv.delete(key);
      stats.deletes++;
    }
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ success: true, errors: [], messages: [], result: null }));
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ server, stats, url: `http://127.0.0.1:${server.address().port}/client/v4` })),
  );
}

// Starts `bunting serve` on `port` (embedded SQLite in memory, or
// `databaseUrl`), publishing into the KV REST server at `kvUrl` (none: no
// publish target). Returns { child, base, log(), out() }: out() is its
// standard output (the one-time sign-in link).
export async function startOrigin(kvUrl, port, extra = [], { databaseUrl = "sqlite::memory:" } = {}) {
  const cloudflare = kvUrl ? [
    "--cloudflare-account-id", "acct", "--cloudflare-namespace-id", "ns",
    "--cloudflare-api-token", "cf-token", "--cloudflare-api-url", kvUrl,
  ] : [];
  const child = spawn(bin, [
    "serve", "--listen", `127.0.0.1:${port}`, "--database-url", databaseUrl,
    "--admin-token", ROOT_TOKEN, "--ingest-secret", INGEST_SECRET, ...cloudflare, ...extra,
  ], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let log = "";
  let out = "";
  child.stderr.on("data", (d) => { log += d; });
  child.stdout.on("data", (d) => { out += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return { child, base, log: () => log, out: () => out };
    } catch {}
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error(`the origin did not start:\n${log}`);
}

export async function api(base, method, p, body, { token = ROOT_TOKEN, headers = {} } = {}) {
  const r = await fetch(`${base}/api/v1${p}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  const json = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
  return { json, etag: r.headers.get("etag") };
}

// Creates organization acme, project web and environment production through
// the API; returns the environment's path.
export async function acmeProduction(base) {
  await api(base, "POST", "/orgs", { key: "acme", name: "Acme" });
  await api(base, "POST", "/orgs/acme/projects", { key: "web", name: "Web" });
  await api(base, "POST", "/orgs/acme/projects/web/environments", { key: "production", name: "Production" });
  return "/orgs/acme/projects/web/environments/production";
}

// Every key and value of a KV namespace, each value as an ArrayBuffer
// (packed snapshots, the publishers' default, are binary).
export async function kvDump(kv) {
  const out = {};
  let cursor;
  do {
    const page = await kv.list({ cursor });
    for (const { name } of page.keys) out[name] = await kv.get(name, "arrayBuffer");
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return out;
}

// Waits until every publish target holds the environment's current version.
export async function published(base, env, limitMs = 10000) {
  const start = performance.now();
  for (;;) {
    const { json } = await api(base, "GET", `${env}/publish`);
    if (json.pendingSince === null && json.targets.every((t) => t.publishedVersion === json.snapshotVersion)) return json;
    if (performance.now() - start > limitMs) throw new Error(`not published: ${JSON.stringify(json)}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

// Polls the edge until `pred(value)` holds; returns the milliseconds taken.
export async function until(w, key, flag, pred, limitMs = 10000) {
  const start = performance.now();
  for (;;) {
    const r = await post(w, `/ofrep/v1/evaluate/flags/${flag}`, { context: { targetingKey: "u-1" } }, { key });
    const body = await r.json();
    if (r.status === 200 && pred(body.value)) return performance.now() - start;
    if (performance.now() - start > limitMs) {
      throw new Error(`the edge still answers ${r.status} ${JSON.stringify(body)} after ${limitMs} ms`);
    }
    await new Promise((res) => setTimeout(res, 5));
  }
}

