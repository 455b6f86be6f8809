// A real OpenFeature client against the worker: @openfeature/server-sdk with
// @openfeature/ofrep-provider over HTTP on a loopback port (miniflare serves
// the worker in workerd).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { OpenFeature, ErrorCode, StandardResolutionReasons } from "@openfeature/server-sdk";
import { OFREPProvider } from "@openfeature/ofrep-provider";
import { startWorker, putKey, putSnapshot, readJson } from "./harness.mjs";

const KEY = "sdk-openfeature";
let w;
let client;
let badClient;
let brokenClient;

before(async () => {
  w = await startWorker({ listen: true });
  await putKey(w.kv, KEY, "production", "server");
  const demo = readJson("examples/demo-snapshot.json");
  await putSnapshot(w.kv, "production", demo);
  // Another environment whose snapshot has one broken flag (lenient load).
  const broken = structuredClone(demo);
  broken.environment = "broken";
  broken.flags.push({ key: "broken-flag", type: "boolean", variants: { on: true, off: false }, offVariant: "off",
    rules: [{ condition: "country in [", serve: { variant: "on" } }], fallthrough: { variant: "off" } });
  await putKey(w.kv, "sdk-broken", "broken", "server");
  await putSnapshot(w.kv, "broken", broken);
  const baseUrl = new URL(w.url).origin;
  await OpenFeature.setProviderAndWait("edge", new OFREPProvider({ baseUrl, headers: [["Authorization", `Bearer ${KEY}`]] }));
  await OpenFeature.setProviderAndWait("broken", new OFREPProvider({ baseUrl, headers: [["Authorization", "Bearer sdk-broken"]] }));
  await OpenFeature.setProviderAndWait("bad-key", new OFREPProvider({ baseUrl, headers: { Authorization: "Bearer wrong" } }));
  client = OpenFeature.getClient("edge");
  badClient = OpenFeature.getClient("bad-key");
  brokenClient = OpenFeature.getClient("broken");
});
after(async () => {
  await OpenFeature.close();
  await w?.mf.dispose();
});

test("boolean: kill switch", async () => {
  const d = await client.getBooleanDetails("instant-payouts", true, { targetingKey: "user-alice", country: "US" });
  assert.equal(d.value, false);
  assert.equal(d.reason, StandardResolutionReasons.DISABLED);
  assert.equal(d.variant, "off");
  assert.equal(d.errorCode, undefined);
  assert.equal(d.flagMetadata.owner, "payments");
});

test("string: targeting match with rule id in the metadata", async () => {
  const d = await client.getStringDetails("holiday-promo", "fallback", { targetingKey: "user-chen", country: "CA" });
  assert.equal(d.value, "Free shipping on every order");
  assert.equal(d.reason, StandardResolutionReasons.TARGETING_MATCH);
  assert.equal(d.variant, "free-shipping");
  assert.equal(d.flagMetadata.ruleId, "north-america");
});

test("string: split", async () => {
  const d = await client.getStringDetails("checkout-button-copy", "Buy", { targetingKey: "user-42" });
  assert.equal(d.reason, StandardResolutionReasons.SPLIT);
  assert.ok(["Buy now", "Complete your order", "Let's do this"].includes(d.value));
  const again = await client.getStringValue("checkout-button-copy", "Buy", { targetingKey: "user-42" });
  assert.equal(again, d.value);
});

test("object: semver rule", async () => {
  const d = await client.getObjectDetails("recommendations-config", {}, { targetingKey: "u1", app: { version: "4.3.1" } });
  assert.equal(d.value.model, "two-tower-2026-10");
  assert.equal(d.value.carousel, true);
});

test("boolean: gradual ramp", async () => {
  const d = await client.getBooleanDetails("new-search", false, { targetingKey: "user-dana" });
  assert.equal(typeof d.value, "boolean");
  assert.equal(d.reason, StandardResolutionReasons.SPLIT);
});

test("error: unknown flag gives the default with FLAG_NOT_FOUND", async () => {
  const d = await client.getBooleanDetails("no-such-flag", true, { targetingKey: "u1" });
  assert.equal(d.value, true);
  assert.equal(d.reason, StandardResolutionReasons.ERROR);
  assert.equal(d.errorCode, ErrorCode.FLAG_NOT_FOUND);
});

test("error: wrong type gives the default with TYPE_MISMATCH", async () => {
  const d = await client.getNumberDetails("holiday-promo", 7, { targetingKey: "u1" });
  assert.equal(d.value, 7);
  assert.equal(d.errorCode, ErrorCode.TYPE_MISMATCH);
});

test("error: a bad SDK key gives the default with GENERAL", async () => {
  const d = await badClient.getBooleanDetails("instant-payouts", true, { targetingKey: "u1" });
  assert.equal(d.value, true);
  assert.equal(d.reason, StandardResolutionReasons.ERROR);
  assert.equal(d.errorCode, ErrorCode.GENERAL);
});

test("error: a broken flag gives PARSE_ERROR; the rest of its snapshot serves", async () => {
  const d = await brokenClient.getBooleanDetails("broken-flag", true, { targetingKey: "u1" });
  assert.equal(d.value, true);
  assert.equal(d.reason, StandardResolutionReasons.ERROR);
  assert.equal(d.errorCode, ErrorCode.PARSE_ERROR);
  const ok = await brokenClient.getBooleanDetails("instant-payouts", true, { targetingKey: "u1" });
  assert.equal(ok.value, false);
  assert.equal(ok.reason, StandardResolutionReasons.DISABLED);
});

test("error: a non-string targeting key gives INVALID_CONTEXT", async () => {
  const d = await client.getStringDetails("checkout-button-copy", "Buy", { targetingKey: 42 });
  assert.equal(d.value, "Buy");
  assert.equal(d.errorCode, ErrorCode.INVALID_CONTEXT);
});
