// Packed snapshots in KV (bunting-core's `packed` form, written by
// `bunting pack`), served by the worker in workerd through miniflare:
// `/sdk/v1/snapshot` still the published JSON byte for byte, `/healthz`
// naming the form, a damaged value rejected while the previous snapshot
// keeps serving, and a JSON text refused (the worker reads packed values
// only) with what to do, before and after a packed one. Needs
// target/debug/bunting (`cargo build -p bunting-origin`, or BUNTING_BIN).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { EXAMPLE_CONTEXTS as CONTEXTS, bin, sealedExample, startWorker, putKey, putJsonSnapshot, post } from "./harness.mjs";

const ENV = "production";
const SERVER = "bnt_server_packed-0123456789";
const OPERATOR = "packed-operator";
let w;
let dir;

const sealed = (version) => sealedExample(ENV, version);

/** `bunting pack` of a snapshot text: the packed bytes. */
function pack(text, name) {
  const input = path.join(dir, `${name}.json`);
  const output = path.join(dir, `${name}.bin`);
  writeFileSync(input, text);
  execFileSync(bin, ["pack", input, "--output", output], { stdio: ["ignore", "ignore", "pipe"] });
  return readFileSync(output);
}

/** Puts bytes into KV as `snapshot:<ENV>` (an ArrayBuffer of their own:
 * miniflare's proxy does not take a Node Buffer). */
const putBytes = (bytes) => w.kv.put(`snapshot:${ENV}`, new Uint8Array(bytes).buffer);

/** `/healthz` for ENV after one OFREP request (which reads KV: /healthz does not). */
async function health() {
  const touch = await post(w, "/ofrep/v1/evaluate/flags", { context: CONTEXTS[0] }, { key: SERVER });
  assert.equal(touch.status, 200);
  const r = await w.fetch("/healthz", { headers: { Authorization: `Bearer ${OPERATOR}` } });
  assert.equal(r.status, 200);
  return (await r.json()).environments[ENV];
}

/** Every flag's OFREP answer for each context (bulk evaluation). */
async function answers() {
  const out = [];
  for (const context of CONTEXTS) {
    const r = await post(w, "/ofrep/v1/evaluate/flags", { context }, { key: SERVER });
    assert.equal(r.status, 200);
    const body = await r.json();
    out.push(body.flags.map(({ key, value, variant, reason, metadata }) => ({ key, value, variant, reason, metadata })));
  }
  return out;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "bunting-packed-"));
  // TTL 0: every request reads KV, so each put is served by the next request.
  w = await startWorker({ bindings: { SNAPSHOT_TTL_SECONDS: "0", OPERATOR_SECRET: OPERATOR } });
  await putKey(w.kv, SERVER, ENV, "server");
});
after(async () => {
  await w?.mf.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a JSON snapshot is refused; its packed form serves, the JSON still what server SDKs get", async () => {
  const v1 = sealed(1);
  await putJsonSnapshot(w.kv, ENV, v1);
  const refused = await post(w, "/ofrep/v1/evaluate/flags", { context: CONTEXTS[0] }, { key: SERVER });
  assert.equal(refused.status, 503);
  assert.match((await refused.json()).errorDetails, /the snapshot value is JSON: this worker reads packed snapshots only; republish it packed/);
  const none = await w.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${SERVER}` } });
  assert.equal(none.status, 503);
  await none.body?.cancel();
  const unhealthy = await (await w.fetch("/healthz", { headers: { Authorization: `Bearer ${OPERATOR}` } })).json();
  assert.equal(unhealthy.environments[ENV].status, "unavailable");
  assert.match(unhealthy.environments[ENV].lastError, /is JSON/);

  await putBytes(pack(v1, "v1"));
  const fromV1 = await answers();
  assert.equal((await health()).format, "packed");

  const v2 = sealed(2);
  const packed = pack(v2, "v2");
  assert.equal(packed.subarray(0, 4).toString("latin1"), "BSNP", "the packed form's magic");
  assert.ok(packed.length < Buffer.byteLength(v2) * 2, `${packed.length} bytes for ${Buffer.byteLength(v2)} of JSON`);
  await putBytes(packed);

  const h = await health();
  assert.equal(h.version, 2);
  assert.equal(h.format, "packed");
  assert.equal(h.status, "ok");
  assert.equal(h.lastError, null);
  assert.deepEqual(await answers(), fromV1, "the same flags: the same values, variants, reasons and metadata");

  // The snapshot endpoint serves the JSON the packed value carries, byte for byte.
  const r = await w.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${SERVER}` } });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), v2);
  assert.equal(r.headers.get("etag"), `"${JSON.parse(v2).checksum}"`);
});

test("a damaged packed value is rejected and the served snapshot stays", async () => {
  const v3 = pack(sealed(3), "v3");
  await putBytes(v3);
  assert.equal((await health()).version, 3);
  const before = await answers();

  const v4 = Buffer.from(pack(sealed(4), "v4"));
  v4[48] ^= 0x55; // a byte of the packed part (past the header and its digest)
  await putBytes(v4);
  const h = await health();
  assert.equal(h.version, 3, "still the last good snapshot");
  assert.equal(h.status, "stale");
  assert.match(h.lastError, /packed|damaged|corrupt/i);
  assert.deepEqual(await answers(), before);

  // Truncated: the same.
  await putBytes(pack(sealed(5), "v5").subarray(0, 100));
  assert.equal((await health()).version, 3);

  // JSON after packed: refused, the packed snapshot keeps serving.
  await putJsonSnapshot(w.kv, ENV, sealed(6));
  const refused = await health();
  assert.equal(refused.version, 3);
  assert.equal(refused.format, "packed");
  assert.equal(refused.status, "stale");
  assert.match(refused.lastError, /the snapshot value is JSON: this worker reads packed snapshots only/);
  assert.deepEqual(await answers(), before);

  // Republished packed: served.
  await putBytes(pack(sealed(6), "v6"));
  const back = await health();
  assert.equal(back.version, 6);
  assert.equal(back.format, "packed");
  assert.equal(back.status, "ok");
});
