// End to end: the origin (`bunting serve`, embedded SQLite) publishes
// through its Cloudflare KV REST publisher into the KV namespace of the
// real edge worker running in workerd (miniflare). A small KV REST server
// in this process stands in for api.cloudflare.com and writes into
// miniflare's KV. A flag changed through the origin's API is then served
// changed by the edge; the publish-to-visible latency is printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { existsSync } from "node:fs";
import path from "node:path";
import { root, startWorker, post, sha256Hex } from "./harness.mjs";

const ROOT_TOKEN = "e2e-root-token";
const INGEST_SECRET = "e2e-ingest-secret";
const bin = process.env.BUNTING_BIN ?? path.join(root, "target", "debug", "bunting");

function freePort() {
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
function kvRestServer(kv) {
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
      await kv.put(key, Buffer.concat(chunks).toString("utf8"));
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

async function startOrigin(kvUrl, port) {
  const child = spawn(bin, [
    "serve", "--listen", `127.0.0.1:${port}`, "--database-url", "sqlite::memory:",
    "--admin-token", ROOT_TOKEN, "--ingest-secret", INGEST_SECRET,
    "--cloudflare-account-id", "acct", "--cloudflare-namespace-id", "ns",
    "--cloudflare-api-token", "cf-token", "--cloudflare-api-url", kvUrl,
  ], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, RUST_LOG: "warn" } });
  let log = "";
  child.stderr.on("data", (d) => { log += d; });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) return { child, base, log: () => log };
    } catch {}
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill();
  throw new Error(`the origin did not start:\n${log}`);
}

async function api(base, method, p, body, { token = ROOT_TOKEN, headers = {} } = {}) {
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

// Every key and value of a KV namespace.
async function kvDump(kv) {
  const out = {};
  let cursor;
  do {
    const page = await kv.list({ cursor });
    for (const { name } of page.keys) out[name] = await kv.get(name);
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return out;
}

// Waits until every publish target holds the environment's current version.
async function published(base, env, limitMs = 10000) {
  const start = performance.now();
  for (;;) {
    const { json } = await api(base, "GET", `${env}/publish`);
    if (json.pendingSince === null && json.targets.every((t) => t.publishedVersion === json.snapshotVersion)) return json;
    if (performance.now() - start > limitMs) throw new Error(`not published: ${JSON.stringify(json)}`);
    await new Promise((res) => setTimeout(res, 5));
  }
}

// Polls the edge until `pred(value)` holds; returns the milliseconds taken.
async function until(w, key, flag, pred, limitMs = 10000) {
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

test("a flag changed through the origin API is served changed by the edge", { skip: !existsSync(bin) && `${bin} is not built` }, async () => {
  const port = await freePort();
  // The worker sends its exposures and events to this origin.
  const w = await startWorker({ bindings: {
    INGEST_URL: `http://127.0.0.1:${port}/api/v1/events`, INGEST_SECRET, INGEST_FLUSH_SECONDS: "0",
  } });
  const rest = await kvRestServer(w.kv);
  const origin = await startOrigin(rest.url, port);
  try {
    const o = origin.base;
    await api(o, "POST", "/orgs", { key: "acme", name: "Acme" });
    await api(o, "POST", "/orgs/acme/projects", { key: "web", name: "Web" });
    await api(o, "POST", "/orgs/acme/projects/web/environments", { key: "production", name: "Production" });
    await api(o, "POST", "/orgs/acme/projects/web/flags", {
      key: "new-checkout", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off",
    });
    const env = "/orgs/acme/projects/web/environments/production";
    const tKey = performance.now();
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "client", name: "web" });
    // First publication: wait for the origin to report it (polling the edge
    // before the key exists would make the edge cache "unknown key" for 5 s).
    await published(o, env);
    const first = performance.now() - tKey;
    await until(w, key.secret, "new-checkout", (v) => v === false, 1000);

    // Turn it on with targeting: everybody gets `on`.
    const cfg = "/orgs/acme/projects/web/flags/new-checkout/environments/production";
    const { etag } = await api(o, "GET", cfg);
    const t0 = performance.now();
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { variant: "on" } }, { headers: { "if-match": etag } });
    const onMs = await until(w, key.secret, "new-checkout", (v) => v === true);
    const onTotal = performance.now() - t0;

    // The kill switch.
    const t1 = performance.now();
    await api(o, "POST", `${cfg}/toggle`, { enabled: false });
    await until(w, key.secret, "new-checkout", (v) => v === false);
    const killTotal = performance.now() - t1;

    const { json: status } = await api(o, "GET", `${env}/publish`);
    console.log(
      `origin -> edge: SDK key + first snapshot published ${first.toFixed(0)} ms after the API call; ` +
      `change visible ${onTotal.toFixed(0)} ms after the API call (polling ${onMs.toFixed(0)} ms); ` +
      `kill switch visible after ${killTotal.toFixed(0)} ms ` +
      `(KV REST puts ${rest.stats.puts}; edge SNAPSHOT_TTL_SECONDS=0; publish status ${JSON.stringify(status)})`,
    );
    assert.ok(onTotal < 5000 && killTotal < 5000, "a change reaches the edge within seconds");

    // Exposures and events flow back: a 50/50 split makes SPLIT
    // evaluations (exposures); a metric event goes through the edge's
    // POST /events; the origin stores both (its ingest counters).
    const { etag: e2 } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { rollout: [
      { variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } }, { headers: { "if-match": e2 } });
    await published(o, env);
    for (let i = 0; i < 20; i++) {
      const r = await post(w, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: `user-${i}` } }, { key: key.secret });
      assert.equal((await r.json()).reason, "SPLIT");
    }
    const ev = await post(w, "/events", { events: [{ name: "purchase", targetingKey: "user-1", value: 12.5, id: "o-1" }] }, { key: key.secret });
    assert.equal(ev.status, 202);
    const accepted = async () => {
      const text = await (await fetch(`${o}/metrics`)).text();
      return Number(text.match(/^bunting_events_accepted_total (\d+)/m)?.[1] ?? 0);
    };
    const t2 = performance.now();
    while ((await accepted()) < 21) {
      assert.ok(performance.now() - t2 < 10000, `the origin accepted ${await accepted()} of 21 events`);
      // Each request lets the edge flush what waits.
      await post(w, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "user-0" } }, { key: key.secret });
      await new Promise((res) => setTimeout(res, 20));
    }

    // Rotating the SDK key without grace: the new key is published and the
    // old one deleted from KV (the edge forgets a cached key within 30 s,
    // auth.rs KEY_TTL_MS; a fresh isolate refuses it at once).
    const { json: rotated } = await api(o, "POST", `${env}/sdk-keys/${key.id}/rotate`, { graceSeconds: 0 });
    await published(o, env);
    await until(w, rotated.secret, "new-checkout", (v) => v === false, 1000);
    const oldEntry = `sdk-key:${sha256Hex(key.secret)}`;
    const deadline = performance.now() + 10000;
    while ((await w.kv.get(oldEntry)) !== null) {
      assert.ok(performance.now() < deadline, "the rotated key is still in KV");
      await new Promise((res) => setTimeout(res, 20));
    }
    assert.notEqual(await w.kv.get(`sdk-key:${sha256Hex(rotated.secret)}`), null);
    const fresh = await startWorker();
    try {
      for (const [k, v] of Object.entries(await kvDump(w.kv))) await fresh.kv.put(k, v);
      const r = await post(fresh, "/ofrep/v1/evaluate/flags/new-checkout", { context: { targetingKey: "u-1" } }, { key: key.secret });
      assert.equal(r.status, 403, "a fresh edge isolate refuses the rotated key");
    } finally {
      await fresh.mf.dispose();
    }
  } finally {
    origin.child.kill("SIGTERM");
    await new Promise((r) => origin.child.once("exit", r));
    rest.server.close();
    await w.mf.dispose();
  }
});
