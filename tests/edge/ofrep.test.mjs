// The worker's OFREP endpoints, auth, snapshot cache (fail-static), health,
// CORS, ETags and edge context, in workerd through miniflare.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startWorker, putKey, putJsonSnapshot, putSnapshot, post, readJson } from "./harness.mjs";

const KEY = "sdk-test-production";
const demo = readJson("examples/demo-snapshot.json");
const SINGLE = (k) => `/ofrep/v1/evaluate/flags/${encodeURIComponent(k)}`;
const BULK = "/ofrep/v1/evaluate/flags";
const ORIGIN = "https://app.example";
const IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";
const DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

// A snapshot targeting what only the edge knows: geo (from request.cf) and
// device (from the User-Agent).
const edgeSnapshot = {
  schemaVersion: 1, environment: "edge", version: 1, generatedAt: "2026-11-25T00:00:00Z",
  flags: [
    { key: "geo-banner", type: "string", variants: { eu: "EU banner", de: "DE banner", other: "none" }, offVariant: "other",
      rules: [
        { id: "germany", condition: "geo.country == \"DE\"", serve: { variant: "de" } },
        { id: "eu", condition: "geo.isEU == true", serve: { variant: "eu" } },
      ],
      fallthrough: { variant: "other" } },
    { key: "mobile-nav", type: "boolean", variants: { on: true, off: false }, offVariant: "off",
      rules: [{ id: "mobile", condition: "device.type == \"mobile\"", serve: { variant: "on" } }],
      fallthrough: { variant: "off" } },
    { key: "sticky-split", type: "string", variants: { a: "A", b: "B", c: "C", d: "D" }, offVariant: "a",
      fallthrough: { rollout: [{ variant: "a", weight: 25 }, { variant: "b", weight: 25 }, { variant: "c", weight: 25 }, { variant: "d", weight: 25 }] } },
  ],
};

// Number flags as flag files write them: the KV text keeps `25` and `0.5`
// apart (JSON.stringify would not write `1.0`, hence the raw text).
const numbersSnapshot = `{"schemaVersion": 1, "environment": "numbers", "version": 1, "generatedAt": "2026-11-25T00:00:00Z",
  "flags": [
    {"key": "discount", "type": "number", "variants": {"none": 0, "quarter": 0.25, "whole": 25}, "offVariant": "none",
     "rules": [{"id": "q", "condition": "plan == \\"quarter\\"", "serve": {"variant": "quarter"}},
               {"id": "w", "condition": "plan == \\"whole\\"", "serve": {"variant": "whole"}}],
     "fallthrough": {"variant": "none"}},
    {"key": "sample-rate", "type": "number", "variants": {"all": 1.0, "half": 0.5}, "offVariant": "all",
     "fallthrough": {"variant": "all"}},
    {"key": "max-retries", "type": "number", "variants": {"few": 1, "many": 25}, "offVariant": "few",
     "rules": [{"id": "m", "condition": "plan == \\"whole\\"", "serve": {"variant": "many"}}],
     "fallthrough": {"variant": "few"}}
  ]}`;

// /healthz shows its details only with the operator secret.
const OPERATOR_SECRET = "ofrep-test-operator";
const healthz = async (worker) =>
  (await worker.fetch("/healthz", { headers: { Authorization: `Bearer ${OPERATOR_SECRET}` } })).json();

let w;
before(async () => {
  w = await startWorker({ bindings: { ALLOWED_ORIGINS: `${ORIGIN}, https://other.example`, OPERATOR_SECRET } });
  await putKey(w.kv, KEY, "production", "server");
  await putSnapshot(w.kv, "production", demo);
  await putKey(w.kv, "sdk-edge", "edge", "server");
  await putSnapshot(w.kv, "edge", edgeSnapshot);
  await putKey(w.kv, "sdk-numbers", "numbers", "server");
  await putSnapshot(w.kv, "numbers", numbersSnapshot);
});
after(async () => w?.mf.dispose());

describe("OFREP single-flag evaluation", () => {
  test("typed success: boolean, string, object", async () => {
    let r = await post(w, SINGLE("holiday-promo"), { context: { targetingKey: "user-chen", country: "CA" } }, { key: KEY, headers: { "User-Agent": DESKTOP } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /application\/json/);
    // An answer for this context only, never stored.
    assert.equal(r.headers.get("cache-control"), "no-store");
    let b = await r.json();
    assert.deepEqual(b, {
      key: "holiday-promo", value: "Free shipping on every order", reason: "TARGETING_MATCH", variant: "free-shipping",
      metadata: { description: "Black Friday banner copy", owner: "growth", tags: "marketing", ruleId: "north-america" },
    });

    r = await post(w, SINGLE("instant-payouts"), { context: { targetingKey: "u1", country: "US" } }, { key: KEY });
    b = await r.json();
    assert.equal(r.status, 200);
    assert.equal(b.value, false);
    assert.equal(b.reason, "DISABLED");
    assert.equal(b.variant, "off");

    r = await post(w, SINGLE("recommendations-config"), { context: { targetingKey: "u1", app: { version: "4.3.0" } } }, { key: KEY });
    b = await r.json();
    assert.equal(r.status, 200);
    assert.equal(typeof b.value, "object");
    assert.equal(b.value.model, "two-tower-2026-10");
  });

  test("SPLIT for a rollout, stable per targeting key", async () => {
    const ask = async () => (await (await post(w, SINGLE("checkout-button-copy"), { context: { targetingKey: "user-42" } }, { key: KEY })).json());
    const a = await ask();
    assert.equal(a.reason, "SPLIT");
    assert.ok(["control", "urgent", "friendly"].includes(a.variant));
    assert.deepEqual(await ask(), a);
  });

  test("unknown flag: 404 FLAG_NOT_FOUND", async () => {
    const r = await post(w, SINGLE("no-such-flag"), { context: { targetingKey: "u1" } }, { key: KEY });
    assert.equal(r.status, 404);
    const b = await r.json();
    assert.equal(b.key, "no-such-flag");
    assert.equal(b.errorCode, "FLAG_NOT_FOUND");
    assert.equal(typeof b.errorDetails, "string");
  });

  test("malformed JSON: 400 with an OFREP error body", async () => {
    const r = await post(w, SINGLE("holiday-promo"), "{\"context\": {", { key: KEY });
    assert.equal(r.status, 400);
    const b = await r.json();
    assert.equal(b.key, "holiday-promo");
    assert.equal(b.errorCode, "PARSE_ERROR");
    assert.match(b.errorDetails, /not valid JSON/);
  });

  test("invalid context: 400 INVALID_CONTEXT", async () => {
    const r = await post(w, SINGLE("holiday-promo"), { context: { targetingKey: 42 } }, { key: KEY });
    assert.equal(r.status, 400);
    const b = await r.json();
    assert.equal(b.errorCode, "INVALID_CONTEXT");
  });

  test("missing bucketing key: 400 TARGETING_KEY_MISSING (server-side caller, no cookie id)", async () => {
    const v = await startWorker({ bindings: { EDGE_ATTRIBUTES: "0" } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      await putSnapshot(v.kv, "production", demo);
      const r = await post(v, SINGLE("checkout-button-copy"), { context: {} }, { key: KEY });
      assert.equal(r.status, 400);
      assert.equal((await r.json()).errorCode, "TARGETING_KEY_MISSING");
    } finally {
      await v.mf.dispose();
    }
  });

  test("empty body means an empty context", async () => {
    const r = await w.fetch(SINGLE("instant-payouts"), { method: "POST", headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).reason, "DISABLED");
  });
});

describe("auth", () => {
  test("missing key: 401", async () => {
    const r = await post(w, SINGLE("holiday-promo"), { context: {} });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("www-authenticate"), "Bearer");
    await r.body?.cancel();
  });
  test("unknown key: 403", async () => {
    const r = await post(w, SINGLE("holiday-promo"), { context: {} }, { key: "not-a-key" });
    assert.equal(r.status, 403);
    await r.body?.cancel();
  });
  test("X-API-Key works too", async () => {
    const r = await post(w, SINGLE("instant-payouts"), { context: {} }, { headers: { "X-API-Key": KEY } });
    assert.equal(r.status, 200);
    await r.body?.cancel();
  });
  test("wrong method: 405 with an Allow header; unknown route: 404", async () => {
    for (const [method, p, allow] of [
      ["GET", BULK, "POST, OPTIONS"],
      ["PUT", SINGLE("holiday-promo"), "POST, OPTIONS"],
      ["DELETE", "/events", "POST, OPTIONS"],
      ["POST", "/healthz", "GET, OPTIONS"],
    ]) {
      const r = await w.fetch(p, { method });
      assert.equal(r.status, 405, `${method} ${p}`);
      assert.equal(r.headers.get("allow"), allow, `${method} ${p}`);
      const b = await r.json();
      assert.equal(b.errorCode, "GENERAL");
      assert.match(b.errorDetails, new RegExp(`use ${allow}`));
    }
    let r = await w.fetch("/nope");
    assert.equal(r.status, 404);
    await r.body?.cancel();
  });
});

describe("OFREP bulk evaluation", () => {
  test("every flag, successes and errors, with an ETag; If-None-Match gives 304", async () => {
    const ctx = { context: { targetingKey: "user-alice", country: "US", email: "alice@bunting.dev", app: { version: "4.3.1" } } };
    const r = await post(w, BULK, ctx, { key: KEY, headers: { "User-Agent": IPHONE } });
    assert.equal(r.status, 200);
    const etag = r.headers.get("etag");
    assert.match(etag, /^"[0-9a-f]{32}"$/);
    assert.match(r.headers.get("content-type"), /application\/json/);
    assert.equal(r.headers.get("cache-control"), "private, no-cache");
    const b = await r.json();
    assert.equal(b.flags.length, demo.flags.length);
    const byKey = Object.fromEntries(b.flags.map((f) => [f.key, f]));
    assert.equal(byKey["holiday-promo"].variant, "app-discount"); // US + mobile (from the User-Agent)
    assert.equal(byKey["dark-mode-v2"].reason, "TARGETING_MATCH");
    assert.equal(byKey["instant-payouts"].reason, "DISABLED");
    assert.equal(byKey["checkout-button-copy"].reason, "SPLIT");

    const again = await post(w, BULK, ctx, { key: KEY, headers: { "User-Agent": IPHONE, "If-None-Match": etag } });
    assert.equal(again.status, 304);
    assert.equal(again.headers.get("etag"), etag);
    assert.equal(again.headers.get("cache-control"), "private, no-cache");
    assert.equal(await again.text(), "");

    const other = await post(w, BULK, ctx, { key: KEY, headers: { "User-Agent": DESKTOP, "If-None-Match": etag } });
    assert.equal(other.status, 200, "another device, another result, another ETag");
    assert.notEqual(other.headers.get("etag"), etag);
    await other.body?.cancel();
  });

  test("errors inside the list", async () => {
    const v = await startWorker({ bindings: { EDGE_ATTRIBUTES: "0" } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      await putSnapshot(v.kv, "production", demo);
      const b = await (await post(v, BULK, { context: {} }, { key: KEY })).json();
      const split = b.flags.find((f) => f.key === "checkout-button-copy");
      assert.deepEqual(Object.keys(split).sort(), ["errorCode", "errorDetails", "key"]);
      assert.equal(split.errorCode, "TARGETING_KEY_MISSING");
    } finally {
      await v.mf.dispose();
    }
  });

  test("malformed JSON: 400 with an error body", async () => {
    const r = await post(w, BULK, "not json", { key: KEY });
    assert.equal(r.status, 400);
    const b = await r.json();
    assert.equal(b.errorCode, "PARSE_ERROR");
    assert.equal(typeof b.errorDetails, "string");
  });
});

describe("CORS", () => {
  test("preflight from an allowed origin: 204 with the CORS headers", async () => {
    const r = await w.fetch(BULK, {
      method: "OPTIONS",
      headers: { Origin: ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type" },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
    assert.match(r.headers.get("access-control-allow-methods"), /POST/);
    const allowed = r.headers.get("access-control-allow-headers").toLowerCase();
    for (const h of ["authorization", "content-type", "if-none-match"]) assert.ok(allowed.includes(h), h);
    assert.equal(r.headers.get("access-control-expose-headers"), "ETag, Retry-After");
    assert.ok(Number(r.headers.get("access-control-max-age")) > 0);
  });
  test("actual responses carry the headers too; other origins get none", async () => {
    let r = await post(w, BULK, { context: { targetingKey: "u1" } }, { key: KEY, headers: { Origin: ORIGIN } });
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
    assert.equal(r.headers.get("access-control-expose-headers"), "ETag, Retry-After");
    await r.body?.cancel();
    r = await post(w, BULK, { context: { targetingKey: "u1" } }, { key: KEY, headers: { Origin: "https://evil.example" } });
    assert.equal(r.headers.get("access-control-allow-origin"), null);
    await r.body?.cancel();
    r = await post(w, BULK, { context: {} }, { headers: { Origin: ORIGIN } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN, "errors are readable by the browser too");
    await r.body?.cancel();
  });
});

describe("snapshots: fail-static and health", () => {
  test("a corrupt KV value after a good one: the last good snapshot is served, /healthz shows the error", async () => {
    const v = await startWorker({ bindings: { OPERATOR_SECRET } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      await putSnapshot(v.kv, "production", demo);
      let r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal(r.status, 200);
      await r.body?.cancel();

      const packed = (text) => [text, putSnapshot];
      const json = (text) => [text, putJsonSnapshot];
      const corrupt = [
        json("{corrupt"),
        json(JSON.stringify({ ...demo, version: 46 })), // a good snapshot, but JSON: not read
        packed(JSON.stringify({ ...demo, schemaVersion: 99, version: 43 })), // schema-incompatible
        packed(JSON.stringify({ ...demo, environment: "staging", version: 44 })), // another environment's
        packed(JSON.stringify({ ...demo, version: 45, checksum: `sha256:${"0".repeat(64)}` })), // sealed, but tampered with
        packed(JSON.stringify({ ...demo, version: 41 })), // older than the one served
      ];
      for (const [bad, put] of corrupt) {
        await put(v.kv, "production", bad);
        r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
        assert.equal(r.status, 200, `still serving after ${bad.slice(0, 20)}`);
        assert.equal((await r.json()).reason, "DISABLED");
        const h = await healthz(v);
        assert.equal(h.status, "degraded");
        const p = h.environments.production;
        assert.equal(p.status, "stale");
        assert.equal(p.version, 42);
        assert.equal(typeof p.lastError, "string");
        if (put === putJsonSnapshot) assert.match(p.lastError, /is JSON: this worker reads packed snapshots only/);
        assert.equal(p.format, "packed");
        assert.equal(typeof p.lastCheck, "string");
        assert.equal(typeof p.ageSeconds, "number");
      }
      await v.kv.delete("snapshot:production");
      r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal(r.status, 200, "a deleted snapshot does not stop serving either");
      await r.body?.cancel();
      assert.match((await healthz(v)).environments.production.lastError, /missing/);

      // A newer good snapshot replaces it and clears the error.
      await putSnapshot(v.kv, "production", { ...demo, version: 50, flags: demo.flags.map((f) => (f.key === "instant-payouts" ? { ...f, enabled: true } : f)) });
      r = await post(v, SINGLE("instant-payouts"), { context: { country: "US" } }, { key: KEY });
      assert.equal((await r.json()).reason, "TARGETING_MATCH");
      const h = await healthz(v);
      assert.equal(h.environments.production.version, 50);
      assert.equal(h.environments.production.lastError, null);
      assert.equal(h.status, "ok");
    } finally {
      await v.mf.dispose();
    }
  });

  test("no snapshot at all: 503 with a JSON error", async () => {
    const v = await startWorker({ bindings: { OPERATOR_SECRET } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      let r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal(r.status, 503);
      assert.equal((await r.json()).errorCode, "GENERAL");
      await putSnapshot(v.kv, "production", { ...demo, version: 0, schemaVersion: 99 });
      r = await post(v, BULK, { context: {} }, { key: KEY });
      assert.equal(r.status, 503);
      const body = await r.json();
      assert.equal(body.errorCode, "GENERAL");
      assert.doesNotMatch(body.errorDetails, /schemaVersion/, "other errors stay for the operator");
      const h = await healthz(v);
      assert.equal(h.environments.production.status, "unavailable");
      assert.match(h.environments.production.lastError, /schemaVersion/);
    } finally {
      await v.mf.dispose();
    }
  });

  test("a JSON snapshot in KV is refused: 503 saying to republish it packed, until it is", async () => {
    const v = await startWorker({ bindings: { OPERATOR_SECRET } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      await putJsonSnapshot(v.kv, "production", demo);
      for (const path of [BULK, SINGLE("instant-payouts")]) {
        const r = await post(v, path, { context: {} }, { key: KEY });
        assert.equal(r.status, 503);
        assert.equal(r.headers.get("retry-after"), "5");
        const body = await r.json();
        assert.equal(body.errorCode, "GENERAL");
        assert.match(body.errorDetails, /no snapshot of environment "production" is available yet: the snapshot value is JSON/);
        assert.match(body.errorDetails, /bunting publish` or `bunting serve/);
      }
      assert.deepEqual(await (await v.fetch("/healthz")).json(), { status: "degraded" });
      const h = await healthz(v);
      assert.equal(h.environments.production.status, "unavailable");
      assert.match(h.environments.production.lastError, /^the snapshot value is JSON: this worker reads packed snapshots only; republish it packed/);
      // Republished packed: served at the next check.
      await putSnapshot(v.kv, "production", demo);
      const r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal(r.status, 200);
      await r.body?.cancel();
      const after = (await healthz(v)).environments.production;
      assert.equal(after.format, "packed");
      assert.equal(after.lastError, null);
    } finally {
      await v.mf.dispose();
    }
  });

  test("a broken flag does not take the snapshot down (lenient at the edge)", async () => {
    const v = await startWorker({ bindings: { OPERATOR_SECRET } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      const broken = structuredClone(demo);
      broken.flags.find((f) => f.key === "holiday-promo").rules[0].condition = "country in [";
      await putSnapshot(v.kv, "production", broken);
      let r = await post(v, SINGLE("holiday-promo"), { context: { targetingKey: "u1" } }, { key: KEY });
      assert.equal(r.status, 400);
      assert.equal((await r.json()).errorCode, "PARSE_ERROR");
      r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal(r.status, 200);
      await r.body?.cancel();
      const h = await healthz(v);
      assert.equal(h.environments.production.status, "degraded");
      assert.equal(h.environments.production.problems.length, 1);
    } finally {
      await v.mf.dispose();
    }
  });

  test("the snapshot is re-read from KV at most every SNAPSHOT_TTL_SECONDS", async () => {
    const v = await startWorker({ bindings: { SNAPSHOT_TTL_SECONDS: "30" } });
    try {
      await putKey(v.kv, KEY, "production", "server");
      await putSnapshot(v.kv, "production", demo);
      let r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal((await r.json()).reason, "DISABLED");
      await putSnapshot(v.kv, "production", { ...demo, version: 60, flags: demo.flags.filter((f) => f.key !== "instant-payouts") });
      r = await post(v, SINGLE("instant-payouts"), { context: {} }, { key: KEY });
      assert.equal(r.status, 200, "still the cached snapshot within the TTL");
      await r.body?.cancel();
    } finally {
      await v.mf.dispose();
    }
  });
});

describe("edge context", () => {
  const ask = (flag, body, init = {}) => post(w, SINGLE(flag), body, { key: "sdk-edge", ...init });

  test("geo targeting from request.cf; a client cannot spoof geo.country", async () => {
    let r = await ask("geo-banner", { context: { targetingKey: "u1" } }, { cf: { country: "DE", isEUCountry: "1" } });
    let b = await r.json();
    assert.equal(b.variant, "de");
    assert.equal(b.metadata.ruleId, "germany");

    r = await ask("geo-banner", { context: { targetingKey: "u1" } }, { cf: { country: "FR", isEUCountry: "1" } });
    assert.equal((await r.json()).variant, "eu");

    r = await ask("geo-banner", { context: { targetingKey: "u1", geo: { country: "DE", isEU: true } } }, { cf: { country: "US" } });
    b = await r.json();
    assert.equal(b.variant, "other", "the client's geo is replaced by the edge's");
    assert.equal(b.reason, "TARGETING_MATCH", "OFREP has no DEFAULT: no rule matched, the fallthrough served");
    assert.equal(b.metadata.buntingReason, "DEFAULT");
    assert.equal(b.metadata.ruleId, undefined);
  });

  test("device targeting from the User-Agent", async () => {
    let r = await ask("mobile-nav", { context: { targetingKey: "u1" } }, { headers: { "User-Agent": IPHONE } });
    assert.equal((await r.json()).value, true);
    r = await ask("mobile-nav", { context: { targetingKey: "u1", device: { type: "mobile" } } }, { headers: { "User-Agent": DESKTOP } });
    assert.equal((await r.json()).value, false, "the client's device is replaced by the edge's");
  });

  // A browser: every browser sends Origin on a POST (same-origin or not).
  const BROWSER = { Origin: ORIGIN, "User-Agent": DESKTOP };

  test("anonymous browsers get a cookie id and keep their variant", async () => {
    const r = await ask("sticky-split", { context: {} }, { headers: BROWSER });
    assert.equal(r.status, 200);
    const first = await r.json();
    assert.equal(first.reason, "SPLIT");
    const setCookie = r.headers.get("set-cookie");
    assert.match(setCookie, /^bunting_anon=[0-9a-f]{32}; Max-Age=34560000; Path=\/; SameSite=Lax$/, "plain http: not Secure");
    // Cross-origin with credentials: the listed origin is echoed and may send the cookie.
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
    assert.equal(r.headers.get("access-control-allow-credentials"), "true");
    const cookie = setCookie.split(";")[0];
    for (let i = 0; i < 5; i++) {
      const again = await ask("sticky-split", { context: {} }, { headers: { ...BROWSER, Cookie: `other=1; ${cookie}` } });
      assert.equal(again.headers.get("set-cookie"), null, "a known visitor keeps its cookie");
      assert.equal((await again.json()).variant, first.variant);
    }
    // Different anonymous visitors spread over the variants.
    const seen = new Set();
    for (let i = 0; i < 24; i++) {
      seen.add((await (await ask("sticky-split", { context: {} }, { headers: BROWSER })).json()).variant);
    }
    assert.ok(seen.size >= 2, `variants seen: ${[...seen]}`);
  });

  test("the cookie is Secure exactly when the visitor came over https", async () => {
    const cookieOf = async (url, headers = {}) => {
      const r = await post(w, url, { context: {} }, { key: "sdk-edge", headers: { ...BROWSER, ...headers } });
      await r.body?.cancel();
      return r.headers.get("set-cookie");
    };
    assert.match(await cookieOf(`https://flags.example${SINGLE("sticky-split")}`), /; Secure$/);
    assert.match(await cookieOf(SINGLE("sticky-split"), { "X-Forwarded-Proto": "https" }), /; Secure$/);
    assert.match(await cookieOf(SINGLE("sticky-split"), { "CF-Visitor": "{\"scheme\":\"https\"}" }), /; Secure$/);
    assert.doesNotMatch(await cookieOf(SINGLE("sticky-split"), { "X-Forwarded-Proto": "http" }), /Secure/);
  });

  test("ANON_COOKIE_SAMESITE=None for a worker on another site than the app", async () => {
    const v = await startWorker({ bindings: { ALLOWED_ORIGINS: ORIGIN, ANON_COOKIE_SAMESITE: "None" } });
    try {
      await putKey(v.kv, "sdk-edge", "edge", "server");
      await putSnapshot(v.kv, "edge", edgeSnapshot);
      const r = await post(v, `https://flags.example${SINGLE("sticky-split")}`, { context: {} }, { key: "sdk-edge", headers: BROWSER });
      await r.body?.cancel();
      assert.match(r.headers.get("set-cookie"), /; SameSite=None; Secure$/);
    } finally {
      await v.mf.dispose();
    }
  });

  test("preflight from a listed origin allows credentials; ALLOWED_ORIGINS=* does not", async () => {
    const preflight = { method: "OPTIONS", headers: { Origin: ORIGIN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type" } };
    let r = await w.fetch(SINGLE("sticky-split"), preflight);
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN);
    assert.equal(r.headers.get("access-control-allow-credentials"), "true");
    const v = await startWorker({ bindings: { ALLOWED_ORIGINS: "*" } });
    try {
      r = await v.fetch(SINGLE("sticky-split"), preflight);
      assert.equal(r.headers.get("access-control-allow-origin"), "*");
      assert.equal(r.headers.get("access-control-allow-credentials"), null, "browsers refuse credentials with *");
    } finally {
      await v.mf.dispose();
    }
  });

  test("a server-side caller without a key: TARGETING_KEY_MISSING, never a random bucket", async () => {
    // No Origin: not a browser, so no cookie would ever come back.
    for (const context of [{}, { targetingKey: "" }, { targetingKey: null, plan: "pro" }]) {
      const answers = [];
      for (let i = 0; i < 3; i++) {
        const r = await ask("sticky-split", { context }, { headers: { "User-Agent": "python-requests/2.32.3" } });
        assert.equal(r.status, 400, JSON.stringify(context));
        assert.equal(r.headers.get("set-cookie"), null);
        answers.push(await r.json());
      }
      assert.equal(answers[0].errorCode, "TARGETING_KEY_MISSING");
      assert.match(answers[0].errorDetails, /targetingKey/);
      assert.deepEqual(answers[1], answers[0]);
      assert.deepEqual(answers[2], answers[0]);
    }
    // Flags that do not bucket answer as usual.
    let r = await ask("mobile-nav", { context: {} });
    assert.equal(r.status, 200);
    assert.equal((await r.json()).value, false);
    // In bulk: the bucketing flag is an error item, the others succeed.
    r = await post(w, BULK, { context: {} }, { key: "sdk-edge" });
    assert.equal(r.headers.get("set-cookie"), null);
    const byKey = Object.fromEntries((await r.json()).flags.map((f) => [f.key, f]));
    assert.equal(byKey["sticky-split"].errorCode, "TARGETING_KEY_MISSING");
    assert.equal(byKey["mobile-nav"].reason, "TARGETING_MATCH");
    assert.equal(byKey["geo-banner"].value, "none");
  });

  test("a client targetingKey wins over the cookie", async () => {
    const a = await (await ask("sticky-split", { context: { targetingKey: "user-7" } }, { headers: { Cookie: "bunting_anon=0123456789abcdef0123456789abcdef" } })).json();
    const b = await (await ask("sticky-split", { context: { targetingKey: "user-7" } })).json();
    assert.equal(a.variant, b.variant);
  });
});

describe("number flags", () => {
  const raw = async (flag, plan) => {
    const r = await post(w, SINGLE(flag), { context: { targetingKey: "u1", plan } }, { key: "sdk-numbers" });
    assert.equal(r.status, 200);
    return r.text();
  };

  test("a flag with any float variant serves every value as a float, whole ones included", async () => {
    // Python's OpenFeature SDK checks isinstance(value, float): `0` or `25` fail, `0.0` and `25.0` pass.
    assert.match(await raw("discount", "none"), /"value":0\.0,/);
    assert.match(await raw("discount", "whole"), /"value":25\.0,/);
    assert.match(await raw("discount", "quarter"), /"value":0\.25,/);
    assert.match(await raw("sample-rate"), /"value":1\.0,/, "written 1.0: a float flag");
  });

  test("a flag whose variants are all integers serves integers", async () => {
    assert.match(await raw("max-retries", "other"), /"value":1,/);
    assert.match(await raw("max-retries", "whole"), /"value":25,/);
  });

  test("in bulk too", async () => {
    const r = await post(w, BULK, { context: { targetingKey: "u1", plan: "whole" } }, { key: "sdk-numbers" });
    const text = await r.text();
    // Within one item: from its key to the next item's.
    const valueOf = (key) => text.match(new RegExp(`"key":"${key}",(?:(?!"key":).)*"value":([^,}]+)`))?.[1];
    assert.equal(valueOf("discount"), "25.0");
    assert.equal(valueOf("sample-rate"), "1.0");
    assert.equal(valueOf("max-retries"), "25");
  });
});

describe("OFREP error codes", () => {
  test("?type= mismatch: GENERAL (OFREP has no TYPE_MISMATCH), bunting's code in metadata", async () => {
    const r = await post(w, `${SINGLE("holiday-promo")}?type=number`, { context: { targetingKey: "u1" } }, { key: KEY });
    assert.equal(r.status, 400);
    const b = await r.json();
    assert.equal(b.key, "holiday-promo");
    assert.equal(b.errorCode, "GENERAL");
    assert.equal(b.metadata.buntingErrorCode, "TYPE_MISMATCH");
    assert.match(b.errorDetails, /type string, not number/);
  });

  test("a path without a flag key: 404 FLAG_NOT_FOUND with the key OFREP requires", async () => {
    const r = await post(w, "/ofrep/v1/evaluate/flags/a/b", { context: {} }, { key: KEY });
    assert.equal(r.status, 404);
    const b = await r.json();
    assert.equal(b.errorCode, "FLAG_NOT_FOUND");
    assert.equal(b.key, "a/b");
  });
});

test("healthz lists every environment seen (to the operator)", async () => {
  const h = await healthz(w);
  assert.ok(h.environments.production);
  assert.equal(h.environments.production.version, 42);
  assert.equal(h.environments.production.flags, demo.flags.length);
});
