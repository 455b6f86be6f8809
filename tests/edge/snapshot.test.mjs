// The edge's snapshot endpoint for server SDKs, `GET /sdk/v1/snapshot`
// (edge-worker/src/snapshot.rs), in workerd through miniflare: server keys
// only, the KV text byte for byte, strong ETags from the snapshot's
// checksum, 304s, and the errors. Sealed snapshots come from the CLI
// (`bunting snapshot`, target/debug/bunting: `cargo build -p bunting-origin`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { sealedExample, startWorker, putKey, putJsonSnapshot, putSnapshot, sha256Hex } from "./harness.mjs";

const PATH = "/sdk/v1/snapshot";
// Environment names as the CLI writes them (the origin's are
// `org/project/env`; the endpoint does not care, and renaming a sealed
// snapshot would break its checksum).
const ENV = "production";
const SERVER = "bnt_server_test-0123456789";
const CLIENT = "bnt_client_test-0123456789";
const LEGACY = "legacy-key-0123456789";
const ORIGIN = "https://app.example";

const sealed = (environment, version) => sealedExample(environment, version, { pretty: true });

const get = (key, headers = {}) =>
  w.fetch(PATH, { headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), ...headers } });

let w;
let v1;
before(async () => {
  w = await startWorker({ bindings: { ALLOWED_ORIGINS: ORIGIN } });
  v1 = sealed(ENV, 1);
  await putSnapshot(w.kv, ENV, v1);
  await putKey(w.kv, SERVER, ENV, "server");
  await putKey(w.kv, CLIENT, ENV, "client");
  await putKey(w.kv, LEGACY, ENV);
});
after(async () => w?.mf.dispose());

test("a server key gets the KV text byte for byte, tagged with its checksum", async () => {
  const r = await get(SERVER);
  assert.equal(r.status, 200);
  const body = await r.text();
  assert.equal(body, v1, "exactly the published text");
  const checksum = JSON.parse(v1).checksum;
  assert.match(checksum, /^sha256:[0-9a-f]{64}$/);
  assert.equal(r.headers.get("etag"), `"${checksum}"`);
  assert.equal(r.headers.get("cache-control"), "private, no-cache");
  assert.match(r.headers.get("content-type"), /^application\/json/);
  // X-API-Key works as for OFREP.
  const viaHeader = await w.fetch(PATH, { headers: { "X-API-Key": SERVER } });
  assert.equal(viaHeader.status, 200);
  assert.equal(await viaHeader.text(), v1);
});

test("If-None-Match with the current ETag: 304 without a body", async () => {
  const etag = (await get(SERVER)).headers.get("etag");
  for (const inm of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
    const r = await get(SERVER, { "If-None-Match": inm });
    assert.equal(r.status, 304, inm);
    assert.equal(await r.text(), "");
    assert.equal(r.headers.get("etag"), etag);
    assert.equal(r.headers.get("cache-control"), "private, no-cache");
  }
  const stale = await get(SERVER, { "If-None-Match": '"sha256:0000"' });
  assert.equal(stale.status, 200);
  assert.equal(await stale.text(), v1);
});

test("a changed snapshot: new ETag and body; the old ETag gets them too", async () => {
  const old = (await get(SERVER)).headers.get("etag");
  const v2 = sealed(ENV, 2);
  await putSnapshot(w.kv, ENV, v2);
  try {
    const r = await get(SERVER, { "If-None-Match": old });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), v2);
    const etag = r.headers.get("etag");
    assert.notEqual(etag, old);
    assert.equal(etag, `"${JSON.parse(v2).checksum}"`);
    // An older snapshot put back is not served (fail-static): still v2.
    await putSnapshot(w.kv, ENV, v1);
    const again = await get(SERVER, { "If-None-Match": etag });
    assert.equal(again.status, 304);
  } finally {
    await putSnapshot(w.kv, ENV, v1);
  }
});

test("a client key, and a record without a kind: 403", async () => {
  for (const key of [CLIENT, LEGACY]) {
    const r = await get(key);
    assert.equal(r.status, 403, key);
    const body = await r.json();
    assert.equal(body.errorCode, "FORBIDDEN");
    assert.match(body.errorDetails, /server SDK key/);
  }
});

test("no key or an unknown key: 401 with WWW-Authenticate", async () => {
  for (const key of [undefined, "unknown-key-0123456789", SERVER.slice(0, -1)]) {
    const r = await get(key);
    assert.equal(r.status, 401, String(key));
    assert.equal(r.headers.get("www-authenticate"), "Bearer");
    const body = await r.json();
    assert.equal(body.errorCode, "UNAUTHORIZED");
    assert.equal(typeof body.errorDetails, "string");
  }
});

test("no snapshot published: 503 with Retry-After", async () => {
  const key = "bnt_server_staging-0123456789";
  await putKey(w.kv, key, "staging", "server");
  const r = await get(key);
  assert.equal(r.status, 503);
  assert.ok(Number(r.headers.get("retry-after")) > 0);
  const body = await r.json();
  assert.equal(body.errorCode, "UNAVAILABLE");
  assert.match(body.errorDetails, /staging/);
  // A corrupt value is no snapshot either, nor a JSON text (the worker
  // reads packed values only).
  await putJsonSnapshot(w.kv, "staging", "{not json");
  assert.equal((await get(key)).status, 503);
  await putJsonSnapshot(w.kv, "staging", sealed("staging", 1));
  assert.equal((await get(key)).status, 503);
});

test("a snapshot without a checksum: the ETag is the SHA-256 of its bytes", async () => {
  const key = "bnt_server_dev-0123456789";
  const text = JSON.stringify({ ...JSON.parse(sealed("development", 1)), checksum: undefined });
  await putKey(w.kv, key, "development", "server");
  await putSnapshot(w.kv, "development", text);
  const r = await get(key);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), text);
  assert.equal(r.headers.get("etag"), `"sha256:${sha256Hex(text)}"`);
});

test("client and legacy keys still evaluate through OFREP", async () => {
  for (const key of [CLIENT, LEGACY, SERVER]) {
    const r = await w.fetch("/ofrep/v1/evaluate/flags", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ context: { targetingKey: "u-1" } }),
    });
    assert.equal(r.status, 200, key);
  }
});

test("other methods: 405 with Allow; CORS as other routes", async () => {
  const r = await w.fetch(PATH, { method: "POST", headers: { Authorization: `Bearer ${SERVER}` } });
  assert.equal(r.status, 405);
  assert.equal(r.headers.get("allow"), "GET, OPTIONS");
  assert.equal((await r.json()).errorCode, "GENERAL");
  const cors = await get(SERVER, { Origin: ORIGIN });
  assert.equal(cors.status, 200);
  assert.equal(cors.headers.get("access-control-allow-origin"), ORIGIN);
  const preflight = await w.fetch(PATH, {
    method: "OPTIONS",
    headers: { Origin: ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization, if-none-match" },
  });
  assert.equal(preflight.status, 204);
});
