// End to end with a real origin: `bunting serve` (embedded SQLite,
// directory publisher) gets an org, project, environment, a 50/50 flag
// under a running experiment, a second flag, a metric and a server SDK
// key through its API. The provider reads the published snapshot file,
// serves the split, reports exposures and a metric event; a change to the
// second flag reaches it (CONFIGURATION_CHANGED, then the new value); and
// after close() the experiment's results count the provider's users.
//
// Ingest is authenticated with the server SDK key, as in production: the
// origin accepts it on POST /api/v1/events for its own environment.
//
// The binary: BUNTING_BIN, else target/debug/bunting (BUNTING_TARGET_DIR).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { OpenFeature, ProviderEvents } from "@openfeature/server-sdk";
import { BuntingProvider } from "../dist/index.js";
import { root, targetDir, until } from "./helpers.mjs";

const bin = process.env.BUNTING_BIN ?? path.join(targetDir, "debug", "bunting");

// The origin helpers of the edge's end-to-end tests: `bunting serve` on
// SQLite in memory, and its API with the administrator token.
const stack = await import(path.join(root, "tests", "edge", "stack.mjs"));
const api = (base, method, p, body, headers = {}) => stack.api(base, method, p, body, { headers });

async function startOrigin(publishDir) {
  return stack.startOrigin(null, await stack.freePort(), ["--publish-dir", publishDir]);
}

async function published(base, env) {
  await until(async () => {
    const { json } = await api(base, "GET", `${env}/publish`);
    return json.pendingSince === null && json.targets.every((t) => t.publishedVersion === json.snapshotVersion);
  }, 15000, "publication");
}

test("a flag change through the origin reaches the provider; its exposures reach the experiment's results", async () => {
  assert.ok(existsSync(bin), `${bin} is not built (cargo build -p bunting-origin --bin bunting)`);
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-publish-"));
  const origin = await startOrigin(dir);
  try {
    const o = origin.base;
    const p = "/orgs/acme/projects/web";
    const env = `${p}/environments/production`;
    await api(o, "POST", "/orgs", { key: "acme", name: "Acme" });
    await api(o, "POST", "/orgs/acme/projects", { key: "web", name: "Web" });
    await api(o, "POST", `${p}/environments`, { key: "production", name: "Production" });
    await api(o, "POST", `${p}/flags`, { key: "one-page-checkout", flagType: "boolean", variants: { on: true, off: false }, offVariant: "off" });
    const cfg = `${p}/flags/one-page-checkout/environments/production`;
    let { etag } = await api(o, "GET", cfg);
    await api(o, "PUT", cfg, { enabled: true, rules: [], fallthrough: { rollout: [{ variant: "on", weight: 50 }, { variant: "off", weight: 50 }] } }, { "if-match": etag });
    await api(o, "POST", `${p}/flags`, { key: "banner", flagType: "string", variants: { none: "", sale: "Spring sale" }, offVariant: "none" });
    await api(o, "POST", `${p}/metrics`, { key: "purchased", kind: "conversion", event: "purchase" });
    const { json: x } = await api(o, "POST", `${env}/experiments`, { key: "one-page", flag: "one-page-checkout", control: "off", primaryMetric: "purchased" });
    await api(o, "POST", `${env}/experiments/one-page/start`, null, { "if-match": `"${x.version}"` });
    const { json: key } = await api(o, "POST", `${env}/sdk-keys`, { kind: "server", name: "node" });
    await published(o, env);

    const provider = new BuntingProvider({
      sdkKey: key.secret,
      directory: { path: dir, environment: "acme/web/production" },
      ingestUrl: `${o}/api/v1/events`,
      pollIntervalMs: 100,
      flushIntervalMs: 200,
    });
    const changes = [];
    provider.events.addHandler(ProviderEvents.ConfigurationChanged, (d) => changes.push(d.flagsChanged));
    await OpenFeature.setProviderAndWait("e2e", provider);
    const of = OpenFeature.getClient("e2e");

    const USERS = 200;
    const arms = { on: 0, off: 0 };
    for (let i = 0; i < USERS; i++) {
      const ctx = { targetingKey: `user-${i}` };
      const d = await of.getBooleanDetails("one-page-checkout", false, ctx);
      assert.equal(d.reason, "SPLIT", JSON.stringify(d));
      arms[d.variant]++;
      await of.getBooleanDetails("one-page-checkout", false, ctx); // deduplicated
      if (i % 4 === 0) of.track("purchase", ctx, { value: 10 });
    }
    assert.equal(provider.client.status().exposuresDeduplicated, USERS);
    assert.equal((await of.getStringDetails("banner", "x", { targetingKey: "u" })).value, "");

    ({ etag } = await api(o, "GET", `${p}/flags/banner/environments/production`));
    await api(o, "PUT", `${p}/flags/banner/environments/production`, { enabled: true, rules: [], fallthrough: { variant: "sale" } }, { "if-match": etag });
    await until(async () => (await of.getStringValue("banner", "x", { targetingKey: "u" })) === "Spring sale", 15000, "the change");
    assert.deepEqual(changes.at(-1), ["banner"]);

    await OpenFeature.close(); // flushes
    const st = provider.client.status();
    assert.equal(st.exposuresSent, USERS, JSON.stringify(st));
    assert.equal(st.eventsSent, USERS / 4, JSON.stringify(st));
    assert.equal(st.failedRequests, 0, st.lastIngestError);

    const { json: results } = await api(o, "GET", `${env}/experiments/one-page/results`);
    const users = Object.fromEntries(results.arms.map((a) => [a.variant, a.users]));
    assert.deepEqual(users, arms, JSON.stringify(results.arms));
    const primary = results.metrics.find((m) => m.key === "purchased");
    assert.equal(primary.arms.reduce((n, a) => n + (a.conversions ?? 0), 0), USERS / 4);
    console.log(`e2e: ${USERS} users split ${arms.on}/${arms.off} by the provider appear in the results; ` +
      "ingest authenticated with the server SDK key");
  } finally {
    origin.child.kill("SIGTERM");
    await new Promise((r) => origin.child.once("exit", r));
  }
});
