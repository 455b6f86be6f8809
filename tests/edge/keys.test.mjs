// Client-safe keys through the worker in workerd: what a client SDK key
// (kind "client", or a KV record without a kind) and a server SDK key see
// over OFREP. Client keys see only flags with `clientSide: true`, answered
// without rule ids or metadata; a flag they may not see answers exactly as
// a missing one; bulk leaves it out, and its ETag follows what they see.
// /healthz shows details only to the operator secret.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { startWorker, putKey, putJsonSnapshot, putSnapshot, post } from "./harness.mjs";

const SERVER = "sdk-keys-server";
const CLIENT = "sdk-keys-client";
const LEGACY = "sdk-keys-legacy";
const ENV = "production";
const OPERATOR_SECRET = "keys-operator-secret";

// `promo` (client-side) depends on the server-only `payments-gate`, whose
// rule uses the `staff` segment; `limits` is server-only.
function snapshot({ version = 1, limit = 100, promoEnabled = true } = {}) {
  return {
    schemaVersion: 1, environment: ENV, version, generatedAt: "2026-11-25T10:00:00Z",
    segments: [{ key: "staff", included: ["u-staff"] }],
    flags: [
      {
        key: "payments-gate", type: "boolean", variants: { on: true, off: false }, offVariant: "off",
        rules: [{ id: "staff-first", condition: 'segment("staff")', serve: { variant: "on" } }],
        fallthrough: { variant: "off" },
      },
      {
        key: "promo", type: "string", variants: { none: "", sale: "Spring sale" }, offVariant: "none",
        enabled: promoEnabled,
        prerequisites: [{ flag: "payments-gate", variant: "on" }],
        rules: [{ id: "beta-only", condition: "beta == true", serve: { variant: "sale" } }],
        fallthrough: { variant: "none" }, clientSide: true,
        metadata: { description: "internal: margin is thin", owner: "growth", tags: ["q4"] },
      },
      {
        key: "split", type: "boolean", variants: { on: true, off: false }, offVariant: "off",
        fallthrough: { rollout: [{ variant: "on", weight: 50 }, { variant: "off", weight: 50 }] },
        bucketBy: "account.id", clientSide: true,
      },
      {
        key: "limits", type: "number", variants: { low: 10, high: limit }, offVariant: "low",
        fallthrough: { variant: "high" }, metadata: { owner: "platform" },
      },
    ],
  };
}

let w;
before(async () => {
  w = await startWorker({ bindings: { EDGE_ATTRIBUTES: "0", OPERATOR_SECRET } });
  await putKey(w.kv, SERVER, ENV, "server");
  await putKey(w.kv, CLIENT, ENV, "client");
  await putKey(w.kv, LEGACY, ENV);
  await putSnapshot(w.kv, ENV, snapshot());
});
after(async () => {
  await w?.mf.dispose();
});

const one = (key, flag, context = { targetingKey: "u1" }, query = "") =>
  post(w, `/ofrep/v1/evaluate/flags/${flag}${query}`, { context }, { key });
const bulk = (key, headers = {}, context = { targetingKey: "u1" }) =>
  post(w, "/ofrep/v1/evaluate/flags", { context }, { key, headers });
const headersOf = (r) => Object.fromEntries([...r.headers].filter(([k]) => k !== "date"));

test("a server-only flag answers a client key exactly as a missing flag", async () => {
  for (const key of [CLIENT, LEGACY]) {
    for (const query of ["", "?type=number", "?type=boolean"]) {
      // `limits` and `limitz`: same length, so even Content-Length must agree.
      const hidden = await one(key, "limits", undefined, query);
      const missing = await one(key, "limitz", undefined, query);
      assert.equal(hidden.status, 404, `${key}${query}`);
      assert.equal(hidden.status, missing.status);
      assert.deepEqual(headersOf(hidden), headersOf(missing), `${key}${query}`);
      const [h, m] = [await hidden.text(), await missing.text()];
      assert.equal(h, m.replaceAll("limitz", "limits"), `${key}${query}`);
      assert.deepEqual(JSON.parse(h), { key: "limits", errorCode: "FLAG_NOT_FOUND", errorDetails: 'flag "limits" not found' });
    }
  }
  const r = await one(SERVER, "limits");
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), { key: "limits", value: 100, reason: "STATIC", variant: "high", metadata: { owner: "platform" } });
});

test("a client key gets the value of a client-side flag, without rules or metadata", async () => {
  // The prerequisite fails for u1: the server learns which flag it was.
  const server = await (await one(SERVER, "promo", { targetingKey: "u1", beta: true })).json();
  assert.equal(server.metadata.prerequisiteFailed, "payments-gate");
  assert.equal(server.metadata.description, "internal: margin is thin");
  for (const key of [CLIENT, LEGACY]) {
    const r = await one(key, "promo", { targetingKey: "u1", beta: true });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { key: "promo", value: "", reason: "TARGETING_MATCH", variant: "none", metadata: { buntingReason: "DEFAULT" } });
  }
  // Staff pass the gate and the rule matches: no rule id for clients.
  const staff = { targetingKey: "u-staff", beta: true };
  assert.equal((await (await one(SERVER, "promo", staff)).json()).metadata.ruleId, "beta-only");
  assert.deepEqual(await (await one(CLIENT, "promo", staff)).json(),
    { key: "promo", value: "Spring sale", reason: "TARGETING_MATCH", variant: "sale", metadata: {} });
});

test("a client key's error details name nothing of the configuration", async () => {
  const server = await one(SERVER, "split");
  assert.equal(server.status, 400);
  assert.match((await server.json()).errorDetails, /account\.id/);
  const client = await one(CLIENT, "split");
  assert.equal(client.status, 400);
  const body = await client.json();
  assert.equal(body.errorCode, "TARGETING_KEY_MISSING");
  assert.doesNotMatch(body.errorDetails, /account/);
  assert.equal(body.metadata, undefined);
  const ok = await one(CLIENT, "split", { targetingKey: "u1", account: { id: "a1" } });
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).reason, "SPLIT");
});

test("bulk: a client key gets only client-side flags; a server key every flag", async () => {
  const ctx = { targetingKey: "u1", account: { id: "a1" } };
  const keys = async (key) => (await (await bulk(key, {}, ctx)).json()).flags.map((f) => f.key);
  assert.deepEqual(await keys(SERVER), ["payments-gate", "promo", "split", "limits"]);
  assert.deepEqual(await keys(CLIENT), ["promo", "split"]);
  assert.deepEqual(await keys(LEGACY), ["promo", "split"]);
  const items = (await (await bulk(CLIENT, {}, ctx)).json()).flags;
  for (const item of items) {
    assert.deepEqual(Object.keys(item.metadata ?? {}).filter((k) => !k.startsWith("bunting")), [], JSON.stringify(item));
  }
});

test("bulk ETags: per what the key kind sees, never a 304 across kinds", async () => {
  const tag = async (key) => (await bulk(key)).headers.get("etag");
  const server1 = await tag(SERVER);
  const client1 = await tag(CLIENT);
  assert.notEqual(server1, client1);
  assert.equal(await tag(LEGACY), client1);
  // The server's ETag does not make a client's request a 304, nor the reverse.
  assert.equal((await bulk(CLIENT, { "If-None-Match": server1 })).status, 200);
  assert.equal((await bulk(SERVER, { "If-None-Match": client1 })).status, 200);
  assert.equal((await bulk(CLIENT, { "If-None-Match": client1 })).status, 304);

  // A change to a server-only flag: the server's ETag changes, the client's
  // does not (its clients see nothing new and keep their 304s).
  await putSnapshot(w.kv, ENV, snapshot({ version: 2, limit: 500 }));
  const server2 = await tag(SERVER);
  assert.notEqual(server2, server1);
  assert.equal(await tag(CLIENT), client1);
  assert.equal((await bulk(CLIENT, { "If-None-Match": client1 })).status, 304);
  assert.equal((await bulk(SERVER, { "If-None-Match": server1 })).status, 200);

  // A change to a client-side flag (its kill switch) changes both.
  await putSnapshot(w.kv, ENV, snapshot({ version: 3, limit: 500, promoEnabled: false }));
  const client3 = await tag(CLIENT);
  assert.notEqual(client3, client1);
  assert.notEqual(await tag(SERVER), server2);
  assert.equal((await bulk(CLIENT, { "If-None-Match": client1 })).status, 200);
  assert.equal((await bulk(CLIENT, { "If-None-Match": client3 })).status, 304);
});

test("the snapshot endpoint stays server-only", async () => {
  for (const key of [CLIENT, LEGACY]) {
    const r = await w.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(r.status, 403);
    const text = await r.text();
    assert.doesNotMatch(text, /staff|payments-gate|limits/);
  }
  assert.equal((await w.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${SERVER}` } })).status, 200);
});

describe("/healthz: the status to anyone, the details to the operator", () => {
  const get = (worker, authorization) =>
    worker.fetch("/healthz", authorization ? { headers: { Authorization: authorization } } : {});

  test("without the operator secret: only ok / degraded", async () => {
    await post(w, "/ofrep/v1/evaluate/flags/promo", {}, { key: SERVER }).then((r) => r.body?.cancel());
    for (const auth of [undefined, `Bearer ${SERVER}`, "Bearer keys-operator-secreT", `Basic ${btoa(`x:${OPERATOR_SECRET}`)}`]) {
      const r = await get(w, auth);
      assert.equal(r.status, 200, auth);
      assert.deepEqual(await r.json(), { status: "ok" }, auth);
    }
  });

  test("with the operator secret: every environment and the ingest counters", async () => {
    const h = await (await get(w, `Bearer ${OPERATOR_SECRET}`)).json();
    assert.equal(h.status, "ok");
    assert.equal(h.environments.production.status, "ok");
    assert.equal(typeof h.environments.production.version, "number");
    assert.equal(h.ingest.configured, false);
    // Every evaluation so far has been answered: none waits for its body.
    assert.equal(h.parkedEvaluations, 0);
  });

  test("a degraded isolate says so, and only so, to anyone", async () => {
    const v = await startWorker({ bindings: { OPERATOR_SECRET } });
    try {
      await putKey(v.kv, SERVER, ENV, "server");
      await putJsonSnapshot(v.kv, ENV, "{corrupt");
      const r = await post(v, "/ofrep/v1/evaluate/flags", {}, { key: SERVER });
      assert.equal(r.status, 503);
      await r.body?.cancel();
      assert.deepEqual(await (await get(v, undefined)).json(), { status: "degraded" });
      const h = await (await get(v, `Bearer ${OPERATOR_SECRET}`)).json();
      assert.match(h.environments.production.lastError, /is JSON: this worker reads packed snapshots only/);
    } finally {
      await v.mf.dispose();
    }
  });

  test("no OPERATOR_SECRET configured: nobody sees details", async () => {
    const v = await startWorker();
    try {
      assert.deepEqual(await (await get(v, "Bearer ")).json(), { status: "ok" });
      assert.deepEqual(await (await get(v, "Bearer anything")).json(), { status: "ok" });
    } finally {
      await v.mf.dispose();
    }
  });
});

describe("rate limiting per SDK key and client address (RATE_LIMITER binding)", () => {
  const LIMIT = 3;
  let v;
  before(async () => {
    v = await startWorker({
      bindings: { RATE_LIMIT_PERIOD_SECONDS: "60" },
      workerOptions: { ratelimits: { RATE_LIMITER: { simple: { limit: LIMIT, period: 60 } } } },
    });
    await putKey(v.kv, SERVER, ENV, "server");
    await putKey(v.kv, CLIENT, ENV, "client");
    await putSnapshot(v.kv, ENV, snapshot());
  });
  after(async () => {
    await v?.mf.dispose();
  });
  const from = (ip, key, path = "/ofrep/v1/evaluate/flags", body = { context: { targetingKey: "u1" } }) =>
    post(v, path, body, { key, headers: { "CF-Connecting-IP": ip } });

  // The binding counts in fixed windows of the period (miniflare: of the
  // wall clock); a run that straddles a window's end is run again.
  const window = () => Math.floor(Date.now() / 60_000);

  test("over the limit: 429 with Retry-After and an OFREP error body, per key and address", async () => {
    // The limit counts OFREP single and bulk requests and /events together.
    const paths = ["/ofrep/v1/evaluate/flags", "/ofrep/v1/evaluate/flags/promo", "/events"];
    for (let attempt = 1; ; attempt++) {
      const started = window();
      const ip = `198.51.100.${attempt}`;
      const statuses = [];
      for (let i = 0; i < LIMIT; i++) {
        const body = paths[i] === "/events" ? { events: [] } : { context: { targetingKey: "u1" } };
        const r = await from(ip, CLIENT, paths[i], body);
        statuses.push(r.status);
        await r.body?.cancel();
      }
      const limited = [];
      for (const path of paths) {
        const r = await from(ip, CLIENT, path, {});
        limited.push({ path, status: r.status, retryAfter: r.headers.get("retry-after"), body: await r.json() });
      }
      // Another address with the same key, and another key at the same address: not limited.
      const other = await from(`203.0.113.${attempt}`, CLIENT);
      const server = await from(ip, SERVER);
      await other.body?.cancel();
      await server.body?.cancel();
      if (window() !== started && attempt < 3) continue;
      assert.ok(statuses.every((st) => st !== 429), JSON.stringify(statuses));
      for (const l of limited) {
        assert.equal(l.status, 429, l.path);
        assert.equal(l.retryAfter, "60");
        assert.equal(l.body.errorCode, "GENERAL");
        assert.match(l.body.errorDetails, /rate limited/);
      }
      assert.equal(other.status, 200);
      assert.equal(server.status, 200);
      break;
    }
  });

  test("/healthz and the snapshot endpoint are not limited", async () => {
    for (let i = 0; i < LIMIT + 2; i++) {
      const h = await v.fetch("/healthz", { headers: { "CF-Connecting-IP": "198.51.100.9" } });
      assert.equal(h.status, 200);
      await h.body?.cancel();
      const s = await v.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${SERVER}`, "CF-Connecting-IP": "198.51.100.9" } });
      assert.equal(s.status, 200);
      await s.body?.cancel();
    }
  });

  test("without the binding nothing is limited", async () => {
    for (let i = 0; i < LIMIT + 2; i++) {
      const r = await post(w, "/ofrep/v1/evaluate/flags", { context: {} }, { key: CLIENT, headers: { "CF-Connecting-IP": "198.51.100.1" } });
      assert.equal(r.status, 200);
      await r.body?.cancel();
    }
  });
});
