// The environments' pointers (edge-worker/src/pointer.rs, the
// SnapshotPointer Durable Object) in workerd through miniflare: the
// authenticated publish route, a change served while KV still holds the old
// snapshot, never an older version than one served, KV alone without the
// binding, a JSON text refused (the worker reads packed values only); and
// end to end, the origin (`bunting serve --edge-url`) updating the pointer
// while its KV writes are held back, and with `--kv-format json` refused
// with what to do. Needs target/debug/bunting (or BUNTING_BIN) to pack.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startWorker, post, putKey, putSnapshot } from "./harness.mjs";
import { acmeProduction, api, bin, freePort, kvRestServer, pack, published, startOrigin } from "./stack.mjs";

const SECRET = "pointer-secret-0123456789";
const KEY = "bnt_client_pointer-0123456789";
const PUBLISH = "/edge/v1/snapshot";

/** A snapshot of `environment` at `version` whose flag `f` serves `value`. */
// /healthz shows its details only to the operator.
const OPERATOR_SECRET = "pointer-operator";
const OPERATOR = { headers: { Authorization: `Bearer ${OPERATOR_SECRET}` } };

function snap(environment, version, value) {
  return JSON.stringify({
    schemaVersion: 1, environment, version, generatedAt: "2026-11-25T00:00:00Z",
    flags: [{ key: "f", type: "string", variants: { a: "a", b: "b", c: "c" }, offVariant: "a", fallthrough: { variant: value }, clientSide: true }],
  });
}

/** Publishes packed bytes (as the origin does by default). */
const publishPacked = (w, bytes, token = SECRET) =>
  w.fetch(PUBLISH, {
    method: "POST",
    headers: { "Content-Type": "application/octet-stream", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: new Uint8Array(bytes),
  });

/** Publishes a snapshot text packed. */
const publish = (w, text, token = SECRET) => publishPacked(w, pack(text), token);

/** Publishes a snapshot's JSON text as it is (`--kv-format json`). */
const publishJson = (w, body) =>
  w.fetch(PUBLISH, {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${SECRET}` },
    body,
  });


const health = async (w) => (await (await w.fetch("/healthz", OPERATOR)).json());

const value = async (w, key = KEY) => {
  const r = await post(w, "/ofrep/v1/evaluate/flags/f", { context: { targetingKey: "u-1" } }, { key });
  const body = await r.json();
  return r.status === 200 ? body.value : `${r.status} ${body.errorCode}`;
};

/** Polls until the edge serves `want` (the pointer is asked in the background). */
async function served(w, want, key = KEY, limitMs = 10000) {
  const start = performance.now();
  for (;;) {
    const v = await value(w, key);
    if (v === want) return performance.now() - start;
    if (performance.now() - start > limitMs) throw new Error(`the edge serves ${v}, not ${want}, after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

let w;
before(async () => {
  // Production-like pacing: KV re-read every 5 s here would hide the
  // pointer, so an hour; the pointer asked every 0.5 s (wrangler.toml).
  w = await startWorker({ bindings: { POINTER_SECRET: SECRET, OPERATOR_SECRET, SNAPSHOT_TTL_SECONDS: "3600", POINTER_CHECK_SECONDS: "0.5" } });
  await putKey(w.kv, KEY, "p", "client");
  await putSnapshot(w.kv, "p", snap("p", 1, "a"));
});
after(async () => w?.mf.dispose());

test("the publish route wants the secret and a snapshot the edge can load", async () => {
  for (const token of [null, "wrong", SECRET.slice(0, -1), `${SECRET}x`]) {
    const r = await publish(w, snap("p", 9, "c"), token);
    assert.equal(r.status, 401, String(token));
    assert.equal(r.headers.get("www-authenticate"), "Bearer");
  }
  // A JSON text, whatever it holds, or bytes that are not packed: refused
  // with what to do; every answer names the forms the worker reads, so the
  // origin sends no JSON text after a 400.
  for (const [body, needle] of [
    [snap("p", 9, "c"), /^the snapshot value is JSON: this worker reads packed snapshots only; republish it packed \(`bunting publish` or `bunting serve`/],
    ["{not json", /is JSON/],
    [JSON.stringify({ environment: "p" }), /is JSON/],
    ["\u0001garbage", /is not a packed snapshot \(it does not start with "BSNP"\)/],
  ]) {
    const r = await publishJson(w, body);
    assert.equal(r.status, 400, body);
    assert.equal(r.headers.get("x-bunting-snapshot-forms"), "packed-2");
    assert.match((await r.json()).errorDetails, needle);
  }
  const wrongSchema = await publish(w, snap("p", 9, "c").replace('"schemaVersion":1', '"schemaVersion":99'));
  assert.equal(wrongSchema.status, 400);
  assert.equal(wrongSchema.headers.get("x-bunting-snapshot-forms"), "packed-2");
  assert.match((await wrongSchema.json()).errorDetails, /schemaVersion/);
  const get = await w.fetch(PUBLISH);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get("allow"), "POST, OPTIONS");
  // Nothing of that reached the pointer: still version 1 from KV.
  assert.equal(await value(w), "a");
});

test("a published change is served while KV still holds the old snapshot", async () => {
  assert.equal(await value(w), "a");
  const r = await publish(w, snap("p", 2, "b"));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("x-bunting-snapshot-forms"), "packed-2");
  assert.deepEqual(await r.json(), { environment: "p", pointer: { outcome: "stored", version: 2 } });
  const ms = await served(w, "b");
  console.log(`pointer: change served ${ms.toFixed(0)} ms after the publish (POINTER_CHECK_SECONDS=0.5)`);
  assert.ok(Buffer.from(await w.kv.get("snapshot:p", "arrayBuffer")).equals(pack(snap("p", 1, "a"))), "KV was not touched");
  const health = await (await w.fetch("/healthz", OPERATOR)).json();
  assert.equal(health.environments.p.version, 2);
  assert.equal(health.environments.p.source, "pointer");
  assert.equal(health.environments.p.status, "ok");
  assert.ok(health.pointers.p.checks >= 1);
  assert.equal(health.pointers.p.lastError, null);
  // Publishing the same version again (a retry) changes nothing.
  const again = await publish(w, snap("p", 2, "b"));
  assert.deepEqual((await again.json()).pointer, { outcome: "same", version: 2 });
});

test("never an older version than one served", async () => {
  const r = await publish(w, snap("p", 1, "c"));
  assert.equal(r.status, 200);
  assert.deepEqual((await r.json()).pointer, { outcome: "older", version: 2 });
  // A worker re-reading KV on every request, KV holding version 1, the
  // pointer version 2: version 2 only, and KV's lag is no error.
  const fresh = await startWorker({ bindings: { POINTER_SECRET: SECRET, OPERATOR_SECRET, SNAPSHOT_TTL_SECONDS: "0", POINTER_CHECK_SECONDS: "0" } });
  try {
    await putKey(fresh.kv, KEY, "p", "client");
    await putSnapshot(fresh.kv, "p", snap("p", 1, "a"));
    assert.equal((await publish(fresh, snap("p", 2, "b"))).status, 200);
    await served(fresh, "b");
    for (let i = 0; i < 20; i++) assert.equal(await value(fresh), "b");
    const health = await (await fresh.fetch("/healthz", OPERATOR)).json();
    assert.equal(health.environments.p.status, "ok");
    assert.equal(health.environments.p.lastError, null);
    // KV catching up and going beyond: KV's version 3 is served.
    await putSnapshot(fresh.kv, "p", snap("p", 3, "c"));
    assert.equal(await value(fresh), "c");
  } finally {
    await fresh.mf.dispose();
  }
});

test("an environment KV does not have yet is served from its pointer at once", async () => {
  const key = "bnt_client_q-0123456789";
  await putKey(w.kv, key, "q", "client");
  assert.equal((await publish(w, snap("q", 1, "c"))).status, 200);
  // The first request waits for the pointer when nothing is served yet.
  assert.equal(await value(w, key), "c");
});

test("a packed publish is held as sent and served packed, its JSON text to server SDKs", async () => {
  const server = "bnt_server_pointer-0123456789";
  await putKey(w.kv, server, "p", "server");
  const text = snap("p", 5, "c");
  const bytes = pack(text);
  assert.equal(bytes.subarray(0, 4).toString("latin1"), "BSNP");
  const r = await publishPacked(w, bytes);
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { environment: "p", pointer: { outcome: "stored", version: 5 } });
  await served(w, "c");
  const h = (await health(w)).environments.p;
  assert.equal(h.version, 5);
  assert.equal(h.source, "pointer");
  assert.equal(h.format, "packed");
  assert.equal(h.status, "ok");
  // The isolate was sent the packed tables alone (`tables=1`): no text yet.
  assert.equal(h.document, false);
  // /sdk/v1/snapshot: the JSON text the packed value carries, byte for
  // byte, asked of the object when first needed.
  const s = await w.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${server}` } });
  assert.equal(s.status, 200);
  assert.equal(await s.text(), text);
  const etag = s.headers.get("ETag");
  assert.ok(etag, "a strong ETag");
  assert.equal((await health(w)).environments.p.document, true);
  assert.equal((await health(w)).environments.p.version, 5);
  const again = await w.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${server}`, "If-None-Match": etag } });
  assert.equal(again.status, 304);
  await again.arrayBuffer();

  // Refused as a KV value would be: damaged, cut short, of another
  // version of the packed format.
  const damaged = Buffer.from(pack(snap("p", 6, "a")));
  damaged[48] ^= 0x55; // a byte of the packed part (past the header and its digest), as packed.test.mjs
  const future = Buffer.from(pack(snap("p", 6, "a")));
  future.writeUInt16LE(99, 4); // the format version, after the magic
  for (const [bad, needle] of [
    [damaged, /packed snapshot (is corrupt|does not match|ends early)/],
    [pack(snap("p", 6, "a")).subarray(0, 40), /packed snapshot/],
    [future, /format version 99/],
    // Version 1 (condition texts): this worker has no rule parser.
    [pack(snap("p", 6, "a"), 1), /format version 1, this build reads version 2 \(it has no rule parser/],
  ]) {
    const refused = await publishPacked(w, bad);
    assert.equal(refused.status, 400);
    assert.match((await refused.json()).errorDetails, needle);
  }
  assert.equal((await health(w)).environments.p.version, 5);

  // JSON after packed: refused, the packed snapshot stays.
  const json = await publishJson(w, snap("p", 6, "a"));
  assert.equal(json.status, 400);
  assert.match((await json.json()).errorDetails, /is JSON/);
  assert.equal(await value(w), "c");
  assert.equal((await health(w)).environments.p.version, 5);
  assert.equal((await health(w)).pointers.p.lastError, null);
});

test("an object holding a packed value reads it back from its storage", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-pointer-do-"));
  const start = () => startWorker({ persistDurableObjects: dir, bindings: { POINTER_SECRET: SECRET, OPERATOR_SECRET, SNAPSHOT_TTL_SECONDS: "3600", POINTER_CHECK_SECONDS: "0" } });
  // Larger than a stored chunk (100 KiB): several byte chunks.
  const big = (version) => {
    const doc = JSON.parse(snap("r", version, "b"));
    for (let i = 0; i < 1500; i++) {
      doc.flags.push({ key: `pad-${i}`, type: "string", variants: { a: `a-${i}`, b: `b-${i}` }, offVariant: "a", fallthrough: { variant: "b" } });
    }
    return JSON.stringify(doc);
  };
  let first = await start();
  try {
    const key = "bnt_client_r-0123456789";
    await putKey(first.kv, key, "r", "client");
    const bytes = pack(big(1));
    assert.ok(bytes.length > 100 * 1024, `${bytes.length} bytes`);
    assert.equal((await publishPacked(first, bytes)).status, 200);
    assert.equal(await value(first, key), "b");
    await first.mf.dispose();
    // A new workerd: the object starts from its storage, KV is empty.
    first = await start();
    await putKey(first.kv, key, "r", "client");
    assert.equal(await value(first, key), "b");
    const h = (await health(first)).environments.r;
    assert.equal(h.source, "pointer");
    assert.equal(h.format, "packed");
    assert.equal(h.version, 1);
    // The text it carries, in several stored chunks, for server SDKs.
    const server = "bnt_server_r-0123456789";
    await putKey(first.kv, server, "r", "server");
    const s = await first.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${server}` } });
    assert.equal(s.status, 200);
    assert.equal(await s.text(), big(1));
    // And a newer one after it (the previous chunks deleted).
    assert.equal((await publish(first, big(2))).status, 200);
    await first.mf.dispose();
    first = await start();
    await putKey(first.kv, key, "r", "client");
    assert.equal(await value(first, key), "b");
    assert.equal((await health(first)).environments.r.format, "packed");
    assert.equal((await health(first)).environments.r.version, 2);
  } finally {
    await first.mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("without the Durable Object binding the worker serves from KV alone", async () => {
  const plain = await startWorker({ pointer: false, bindings: { POINTER_SECRET: SECRET } });
  try {
    await putKey(plain.kv, KEY, "p", "client");
    await putSnapshot(plain.kv, "p", snap("p", 1, "a"));
    assert.equal(await value(plain), "a");
    const r = await publish(plain, snap("p", 2, "b"));
    assert.equal(r.status, 503);
    assert.match((await r.json()).errorDetails, /SNAPSHOT_POINTER/);
    await putSnapshot(plain.kv, "p", snap("p", 2, "b"));
    assert.equal(await value(plain), "b");
  } finally {
    await plain.mf.dispose();
  }
  // And without the secret, the route is closed.
  const closed = await startWorker({});
  try {
    assert.equal((await publish(closed, snap("p", 2, "b"))).status, 503);
  } finally {
    await closed.mf.dispose();
  }
});

/**
 * The origin (`bunting serve --edge-url`, KV values in `kvFormat`) updating
 * the pointer while KV holds its snapshots back: from the second on, or
 * with packed values every one (the fake KV API stores texts).
 */
async function endToEnd(kvFormat) {
  const edge = await startWorker({ listen: true, bindings: { POINTER_SECRET: SECRET, OPERATOR_SECRET, SNAPSHOT_TTL_SECONDS: "5", POINTER_CHECK_SECONDS: "0.5" } });
  // A KV that takes the SDK key and the first snapshot, then holds every
  // later snapshot back (KV's propagation delay, made endless).
  const held = [];
  let holdSnapshots = kvFormat === "packed";
  const lagging = {
    put: async (k, v) => {
      if (holdSnapshots && k.startsWith("snapshot:")) held.push(k);
      else await edge.kv.put(k, v);
    },
    delete: (k) => edge.kv.delete(k),
  };
  const rest = await kvRestServer(lagging);
  const port = await freePort();
  const origin = await startOrigin(rest.url, port, ["--edge-url", edge.url, "--edge-pointer-secret", SECRET, "--kv-format", kvFormat]);
  try {
    const o = origin.base;
    const env = await acmeProduction(o);
    await api(o, "POST", "/orgs/acme/projects/web/flags", {
      key: "f", flagType: "string", variants: { a: "a", b: "b" }, offVariant: "a", clientSide: true,
    });
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "client", name: "web" });
    // Published to both targets before the edge is asked (else it caches
    // "unknown key" for 5 s).
    await published(o, env).catch((e) => { throw new Error(`${e.message}\n${origin.log()}`); });
    await served(edge, "a", key.secret);
    const { json: status } = await api(o, "GET", `${env}/publish`);
    assert.deepEqual(status.targets.map((t) => t.target).sort(), ["cloudflare", "edge-pointer"]);

    holdSnapshots = true;
    const cfg = "/orgs/acme/projects/web/flags/f/environments/production";
    const { etag } = await api(o, "GET", cfg);
    const t0 = performance.now();
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { variant: "b" } }, { headers: { "if-match": etag } });
    await served(edge, "b", key.secret);
    const ms = performance.now() - t0;
    console.log(`origin -> pointer -> edge (${kvFormat}): change served ${ms.toFixed(0)} ms after the API call, KV holding it back`);
    assert.ok(held.length >= 1, "KV never got the new snapshot");
    const health = await (await edge.fetch("/healthz", OPERATOR)).json();
    const edgeEnv = health.environments["acme/web/production"];
    assert.equal(edgeEnv.source, "pointer");
    assert.equal(edgeEnv.format, kvFormat);
    assert.equal(await edge.kv.get("snapshot:acme/web/production"), null, "KV never got a snapshot");
    assert.ok(held.length >= 2);
  } finally {
    origin.child.kill();
    rest.server.close();
    await edge.mf.dispose();
  }
}

test("end to end: the origin's packed publish reaches the edge through the pointer while KV lags", { skip: !existsSync(bin) && `${bin} is not built` }, () => endToEnd("packed"));

test("end to end with --kv-format json: the edge refuses it, permanently, saying to publish packed", { skip: !existsSync(bin) && `${bin} is not built` }, async () => {
  const edge = await startWorker({ listen: true, bindings: { POINTER_SECRET: SECRET, OPERATOR_SECRET, SNAPSHOT_TTL_SECONDS: "0", POINTER_CHECK_SECONDS: "0" } });
  const rest = await kvRestServer(edge.kv);
  const port = await freePort();
  const origin = await startOrigin(rest.url, port, ["--edge-url", edge.url, "--edge-pointer-secret", SECRET, "--kv-format", "json"]);
  try {
    const o = origin.base;
    const env = await acmeProduction(o);
    await api(o, "POST", "/orgs/acme/projects/web/flags", {
      key: "f", flagType: "string", variants: { a: "a", b: "b" }, offVariant: "a", clientSide: true,
    });
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "client", name: "web" });
    // KV takes the JSON text; the pointer refuses it, permanently.
    const start = performance.now();
    let pointer;
    for (;;) {
      const { json } = await api(o, "GET", `${env}/publish`);
      pointer = json.targets.find((t) => t.target === "edge-pointer");
      const kv = json.targets.find((t) => t.target === "cloudflare");
      if (pointer?.lastErrorPermanent && kv?.publishedVersion === json.snapshotVersion) break;
      if (performance.now() - start > 10000) throw new Error(`not refused: ${JSON.stringify(json)}\n${origin.log()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(pointer.lastError, /400/);
    assert.match(pointer.lastError, /is JSON: this worker reads packed snapshots only/);
    // The edge: nothing served, the 503 says what to do.
    const r = await post(edge, "/ofrep/v1/evaluate/flags/f", { context: { targetingKey: "u-1" } }, { key: key.secret });
    assert.equal(r.status, 503);
    assert.match((await r.json()).errorDetails, /is JSON: this worker reads packed snapshots only; republish it packed/);
    const h = (await (await edge.fetch("/healthz", OPERATOR)).json()).environments["acme/web/production"];
    assert.equal(h.status, "unavailable");
    assert.match(h.lastError, /is JSON/);
    assert.equal(h.version, null);
  } finally {
    origin.child.kill();
    rest.server.close();
    await edge.mf.dispose();
  }
});
