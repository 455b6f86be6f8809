// Snapshots served from their tables alone: the origin puts each packed
// `snapshot:<env>` and, after it, the same snapshot without its JSON text
// under `snapshot-tables:<env>` (tens of kilobytes where the whole value
// is hundreds). The worker in workerd (miniflare) checks the tables, loads
// a new version from them, reads the whole value only for the text
// (`/sdk/v1/snapshot`) or when the tables do not serve (none, or older
// than the whole value: left by an origin of an earlier release), and
// answers exactly as from the whole value. Needs target/debug/bunting.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { EXAMPLE_CONTEXTS as CONTEXTS, sealedExample, startWorker, putKey, putSnapshot, putSnapshotAndTables, post } from "./harness.mjs";

const ENV = "production";
const SERVER = "bnt_server_tables-0123456789";
const OPERATOR = "tables-operator";
const sealed = (version) => sealedExample(ENV, version);

let w; // served from the tables
let whole; // served from the whole value alone (an origin of an earlier release)

before(async () => {
  // TTL 0: every request checks KV. No pointer: KV alone gives the text.
  const bindings = { SNAPSHOT_TTL_SECONDS: "0", OPERATOR_SECRET: OPERATOR };
  [w, whole] = await Promise.all([
    startWorker({ bindings, pointer: false }),
    startWorker({ bindings, pointer: false }),
  ]);
  await Promise.all([putKey(w.kv, SERVER, ENV, "server"), putKey(whole.kv, SERVER, ENV, "server")]);
});
after(async () => {
  await w?.mf.dispose();
  await whole?.mf.dispose();
});

/** `/healthz` of ENV in `worker` after one OFREP request (which checks KV). */
async function health(worker) {
  const touch = await post(worker, "/ofrep/v1/evaluate/flags", { context: CONTEXTS[0] }, { key: SERVER });
  assert.equal(touch.status, 200);
  await touch.body?.cancel();
  const r = await worker.fetch("/healthz", { headers: { Authorization: `Bearer ${OPERATOR}` } });
  assert.equal(r.status, 200);
  return (await r.json()).environments[ENV];
}

/** Every flag's bulk answer and a single flag's, for each context. */
async function answers(worker) {
  const out = [];
  for (const context of CONTEXTS) {
    const r = await post(worker, "/ofrep/v1/evaluate/flags", { context }, { key: SERVER });
    assert.equal(r.status, 200);
    out.push(await r.json());
    const one = await post(worker, "/ofrep/v1/evaluate/flags/new-checkout", { context }, { key: SERVER });
    out.push([one.status, await one.json()]);
  }
  return out;
}

/** `GET /sdk/v1/snapshot` of `worker`: status, text and ETag. */
async function snapshot(worker) {
  const r = await worker.fetch("/sdk/v1/snapshot", { headers: { Authorization: `Bearer ${SERVER}` } });
  return [r.status, await r.text(), r.headers.get("etag")];
}

test("the tables alone serve the same answers; the text is read when asked for", async () => {
  const v1 = sealed(1);
  await putSnapshotAndTables(w.kv, ENV, v1);
  await putSnapshot(whole.kv, ENV, v1);
  let h = await health(w);
  assert.deepEqual([h.version, h.source, h.format, h.document, h.status], [1, "kv", "packed", false, "ok"]);
  assert.equal((await health(whole)).document, true, "a whole value brings its text");
  assert.deepEqual(await answers(w), await answers(whole));

  // The text, read from the whole value on demand, byte for byte.
  assert.deepEqual(await snapshot(w), await snapshot(whole));
  assert.deepEqual(await snapshot(w), [200, v1, `"${JSON.parse(v1).checksum}"`]);
  h = await health(w);
  assert.deepEqual([h.version, h.document, h.status], [1, true, "ok"]);

  // A new version: loaded from its tables, without its text.
  const v2 = sealed(2);
  await putSnapshotAndTables(w.kv, ENV, v2);
  await putSnapshot(whole.kv, ENV, v2);
  h = await health(w);
  assert.deepEqual([h.version, h.document, h.status], [2, false, "ok"]);
  assert.deepEqual(await answers(w), await answers(whole));
  assert.deepEqual(await snapshot(w), [200, v2, `"${JSON.parse(v2).checksum}"`]);
});

test("tables older than the whole value do not serve; without tables the whole value does", async () => {
  const v3 = sealed(3);
  await putSnapshotAndTables(w.kv, ENV, v3);
  assert.deepEqual([(await health(w)).version, (await health(w)).document], [3, false]);
  // An origin of an earlier release publishes version 4 whole, leaving
  // version 3's tables: the text asked for brings version 4, and the
  // older tables do not serve again.
  const v4 = sealed(4);
  await putSnapshot(w.kv, ENV, v4);
  assert.equal((await health(w)).version, 3, "the tables are checked, the whole value is not yet due");
  assert.deepEqual(await snapshot(w), [200, v4, `"${JSON.parse(v4).checksum}"`]);
  let h = await health(w);
  assert.deepEqual([h.version, h.document, h.status, h.lastError], [4, true, "ok", null]);
  // Every check reads the whole value now: version 5 published whole serves.
  const v5 = sealed(5);
  await putSnapshot(w.kv, ENV, v5);
  h = await health(w);
  assert.deepEqual([h.version, h.document], [5, true]);

  // Without the tables key (a JSON text was published since, which
  // deletes it): the whole value, as before.
  await w.kv.delete(`snapshot-tables:${ENV}`);
  const v6 = sealed(6);
  await putSnapshot(w.kv, ENV, v6);
  h = await health(w);
  assert.deepEqual([h.version, h.document, h.status], [6, true, "ok"]);
  // Tables again, newer: they serve.
  const v7 = sealed(7);
  await putSnapshotAndTables(w.kv, ENV, v7);
  h = await health(w);
  assert.deepEqual([h.version, h.document], [7, false]);
});
