// The OFREP validator itself (ofrep-schema.mjs + ofrep/schema.json), fed
// hand-written bodies: no worker needed. Every other edge test trusts it to
// refuse what OFREP refuses, so pin that here.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ofrepViolations } from "./ofrep-schema.mjs";

const SINGLE = "/ofrep/v1/evaluate/flags/checkout";
const BULK = "/ofrep/v1/evaluate/flags";

function check(status, body, { url = SINGLE, method = "POST", contentType = "application/json" } = {}) {
  const text = typeof body === "string" ? body : JSON.stringify(body);
  return ofrepViolations({ method, url, status, contentType, body: text });
}
const ok = (...args) => assert.deepEqual(check(...args), [], JSON.stringify(args[1]));
const bad = (pattern, ...args) => {
  const problems = check(...args);
  assert.ok(problems.length > 0, `accepted: ${JSON.stringify(args[1])}`);
  assert.match(problems.join("\n"), pattern);
};

const success = { key: "checkout", value: true, reason: "TARGETING_MATCH", variant: "on", metadata: { owner: "web", ruleId: "us", weight: 0.5, beta: false } };
const failure = { key: "checkout", errorCode: "TARGETING_KEY_MISSING", errorDetails: "no targetingKey" };

test("single evaluation: every OFREP value type, reason and code default passes", () => {
  for (const value of [true, "blue", 25, 2.5, 0, { a: [1, 2], b: null }, {}]) ok(200, { ...success, value });
  for (const reason of ["STATIC", "TARGETING_MATCH", "SPLIT", "DISABLED", "UNKNOWN"]) ok(200, { ...success, reason });
  const { value: _, ...codeDefault } = success;
  ok(200, codeDefault);
  ok(200, { key: "checkout", reason: "STATIC" });
});

test("single evaluation: a reason outside OFREP's is refused (DEFAULT)", () => {
  bad(/reason.*allowed values/, 200, { ...success, reason: "DEFAULT" });
  bad(/reason.*allowed values/, 200, { ...success, reason: "ERROR" });
  bad(/required property 'reason'/, 200, { key: "checkout", value: true });
});

test("single evaluation: a missing key is refused, success or error", () => {
  const { key: _, ...noKey } = success;
  bad(/required property 'key'/, 200, noKey);
  bad(/required property 'key'/, 400, { errorCode: "GENERAL", errorDetails: "x" });
  bad(/required property 'key'/, 404, { errorCode: "FLAG_NOT_FOUND" });
  bad(/key must be string/, 200, { ...success, key: 7 });
});

test("single evaluation: values and metadata outside OFREP's types are refused", () => {
  bad(/value must be boolean,string,number,object/, 200, { ...success, value: null });
  bad(/value must be boolean,string,number,object/, 200, { ...success, value: [1] });
  bad(/variant must be string/, 200, { ...success, variant: 1 });
  bad(/metadata must be object/, 200, { ...success, metadata: "x" });
  bad(/metadata\/tags must be boolean,string,number/, 200, { ...success, metadata: { tags: ["a"] } });
  bad(/metadata\/x must be boolean,string,number/, 200, { ...success, metadata: { x: null } });
  bad(/must be object/, 200, [success]);
});

test("single evaluation errors: OFREP's codes pass, others are refused", () => {
  for (const errorCode of ["PARSE_ERROR", "TARGETING_KEY_MISSING", "INVALID_CONTEXT", "GENERAL"]) ok(400, { ...failure, errorCode });
  ok(400, { ...failure, errorCode: "GENERAL", metadata: { buntingErrorCode: "TYPE_MISMATCH" } });
  ok(404, { key: "nope", errorCode: "FLAG_NOT_FOUND", errorDetails: "no flag nope" });
  bad(/errorCode.*allowed values/, 400, { ...failure, errorCode: "TYPE_MISMATCH" });
  bad(/errorCode.*allowed values/, 400, { ...failure, errorCode: "FLAG_NOT_FOUND" });
  bad(/errorCode.*allowed values/, 400, { ...failure, errorCode: "NOPE" });
  bad(/required property 'errorCode'/, 400, { key: "checkout" });
  bad(/errorCode must be equal to constant/, 404, { key: "nope", errorCode: "GENERAL" });
  bad(/errorDetails must be string/, 400, { ...failure, errorDetails: { why: "x" } });
  ok(500, { errorDetails: "boom" });
  ok(500, {});
  bad(/errorDetails must be string/, 500, { errorDetails: 1 });
});

test("bulk: each entry exactly one of a success or a failure, each with its key", () => {
  ok(200, { flags: [] }, { url: BULK });
  ok(200, { flags: [success, failure, { key: "c", reason: "STATIC" }], metadata: { version: "v1" } }, { url: BULK });
  ok(200, { flags: [success], eventStreams: [{ type: "sse", url: "https://sse.test/s?c=1", inactivityDelaySec: 60 }, { type: "sse", endpoint: { requestUri: "/s" } }] }, { url: BULK });
  bad(/required property 'flags'/, 200, {}, { url: BULK });
  bad(/flags must be array/, 200, { flags: { checkout: success } }, { url: BULK });
  const { key: _, ...noKey } = success;
  bad(/flags\/1 .*oneOf/, 200, { flags: [success, noKey] }, { url: BULK });
  bad(/flags\/0 .*oneOf/, 200, { flags: [{ ...success, reason: "DEFAULT" }] }, { url: BULK });
  bad(/flags\/0 .*oneOf/, 200, { flags: [{ ...failure, errorCode: "TYPE_MISMATCH" }] }, { url: BULK });
  bad(/flags\/0 .*oneOf/, 200, { flags: [{ ...success, errorCode: "GENERAL" }] }, { url: BULK });
  bad(/eventStreams\/0 .*oneOf/, 200, { flags: [], eventStreams: [{ type: "sse" }] }, { url: BULK });
  bad(/eventStreams\/0 .*oneOf/, 200, { flags: [], eventStreams: [{ type: "sse", url: "https://a.test/", endpoint: { requestUri: "/s" } }] }, { url: BULK });
  bad(/requestUri must match pattern/, 200, { flags: [], eventStreams: [{ type: "sse", endpoint: { requestUri: "s" } }] }, { url: BULK });
  bad(/metadata\/v must be boolean,string,number/, 200, { flags: [], metadata: { v: {} } }, { url: BULK });
});

test("bulk errors and 304", () => {
  ok(400, { errorCode: "INVALID_CONTEXT", errorDetails: "context must be an object" }, { url: BULK });
  bad(/required property 'errorCode'/, 400, { errorDetails: "x" }, { url: BULK });
  ok(304, "", { url: BULK, contentType: null });
  bad(/304 with a body/, 304, { flags: [] }, { url: BULK });
});

test("bodies must be JSON, sent as JSON", () => {
  bad(/Content-Type text\/plain/, 200, success, { contentType: "text/plain" });
  bad(/Content-Type null/, 200, success, { contentType: null });
  ok(200, success, { contentType: "application/json; charset=utf-8" });
  bad(/not JSON/, 200, "{key:", {});
});

test("what OFREP does not define is not judged", () => {
  ok(401, "unauthorized", { contentType: "text/plain" });
  ok(429, "", { url: BULK });
  ok(405, "nope", { contentType: "text/plain" });
  ok(503, { error: "x" }, { url: BULK });
  ok(200, "ok", { url: "/healthz", method: "GET", contentType: "text/plain" });
  ok(204, "", { method: "OPTIONS" });
  ok(200, { anything: 1 }, { method: "GET" });
  ok(200, { anything: 1 }, { url: "/ofrep/v1/evaluate/flags/a/b" });
});
