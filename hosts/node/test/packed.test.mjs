// Packed values through the KV source (a fake Cloudflare KV REST API on
// 127.0.0.1) and the directory source (a real file): the checked-in
// fixture tests/conformance/packed/ (cases.json) is accepted and evaluates
// as its JSON does; every refused value it lists is refused with a
// PackedSnapshotError (a SourceError), the last good snapshot serving.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  BuntingClient,
  DirectorySource,
  Engine,
  KvSource,
  PACKED_FORMAT_VERSION,
  PackedSnapshotError,
  SourceError,
  encodeKey,
  packedDocument,
} from "../dist/index.js";
import { root, server } from "./helpers.mjs";

const FIXTURE = path.join(root, "tests", "conformance", "packed");
const CASES = JSON.parse(readFileSync(path.join(FIXTURE, "cases.json"), "utf8"));
const ENV = CASES.environment;
const JSON_BYTES = readFileSync(path.join(FIXTURE, CASES.snapshot));
const PACKED = readFileSync(path.join(FIXTURE, CASES.packed));
const VERSION = JSON.parse(JSON_BYTES.toString("utf8")).version;
const NOW = Date.parse("2026-11-30T00:00:00Z"); // a fixed clock for schedules
const read = (file) => readFileSync(path.join(FIXTURE, file));

const closers = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** What every flag evaluates to for each of the fixture's contexts. */
function answers(evaluateAll) {
  return CASES.contexts.map((ctx) => evaluateAll(ctx));
}

const jsonEngine = new Engine(JSON_BYTES.toString("utf8"));
const expected = answers((ctx) => jsonEngine.evaluateAll(ctx, NOW));

/** A fake Cloudflare KV serving `state.value` (bytes) for the environment's key. */
async function fakeKv(value) {
  const kv = await server((req, res) => {
    assert.ok(req.url.endsWith(`/values/${encodeURIComponent(`snapshot:${ENV}`)}`), req.url);
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(kv.value);
  });
  kv.value = value;
  closers.push(kv.close);
  return kv;
}

/** A publish directory holding `value` as the environment's file, replaced atomically by `publish`. */
function publishDir(value) {
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-packed-"));
  const file = path.join(dir, encodeKey(`snapshot:${ENV}`));
  const publish = (bytes) => {
    writeFileSync(`${file}.tmp`, bytes);
    renameSync(`${file}.tmp`, file);
  };
  publish(value);
  return { dir, publish };
}

function client(options) {
  const c = new BuntingClient({ pollIntervalMs: 3_600_000, initTimeoutMs: 2000, requestTimeoutMs: 2000, ...options });
  closers.push(() => c.close());
  return c;
}

/**
 * The packed fixture serves as its JSON does; each refused value is
 * refused by the source with its problem and by the client fail-static.
 */
async function checkSource(c, source, publish) {
  await c.start();
  assert.equal(c.status().status, "ready", c.status().lastError);
  assert.equal(c.status().snapshotVersion, VERSION);
  assert.deepEqual(answers((ctx) => c.evaluateAll(ctx, { now: NOW })), expected);
  const signal = AbortSignal.timeout(2000);
  for (const kase of CASES.refused) {
    publish(read(kase.file));
    await assert.rejects(source.fetch(undefined, signal), (e) => {
      assert.ok(e instanceof PackedSnapshotError && e instanceof SourceError, kase.name);
      assert.equal(e.problem, kase.problem, kase.name);
      assert.ok(e.message.includes(kase.message), `${kase.name}: ${e.message}`);
      return true;
    });
    await c.refresh();
    const s = c.status();
    assert.equal(s.status, "stale", kase.name);
    assert.equal(s.snapshotVersion, VERSION, kase.name);
    assert.ok(s.lastError.includes(kase.message), `${kase.name}: ${s.lastError}`);
    assert.deepEqual(answers((ctx) => c.evaluateAll(ctx, { now: NOW })), expected, kase.name);
  }
  // Published as JSON again: the same version, nothing to load, READY.
  publish(JSON_BYTES);
  await c.refresh();
  assert.equal(c.status().status, "ready");
  assert.equal(c.status().snapshotVersion, VERSION);
}

test("kv source: a packed value is read as the JSON it carries; refused ones keep the last good snapshot", async () => {
  const kv = await fakeKv(PACKED);
  const options = { accountId: "acct", namespaceId: "ns", apiToken: "cf-token", environment: ENV, apiBase: kv.url };
  await checkSource(client({ kv: options }), new KvSource(options), (bytes) => {
    kv.value = bytes;
  });
});

test("directory source: a packed file is read as the JSON it carries; refused ones keep the last good snapshot", async () => {
  const { dir, publish } = publishDir(PACKED);
  const options = { path: dir, environment: ENV };
  await checkSource(client({ directory: options }), new DirectorySource(options), publish);
});

test("bootstrap file: a packed one (a copy of a KV value) serves as the JSON it carries", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "bunting-packed-bootstrap-"));
  const bootstrapFile = path.join(dir, "snapshot.bsnp");
  writeFileSync(bootstrapFile, PACKED);
  // A source that is down: nothing answers on a closed port.
  const closed = await server(() => {});
  const edgeUrl = closed.url;
  await closed.close();
  const c = client({ edgeUrl, sdkKey: "k", bootstrapFile });
  await c.start();
  const s = c.status();
  assert.equal(s.status, "stale", s.lastError);
  assert.equal(s.loadedFrom, "bootstrap");
  assert.equal(s.snapshotVersion, VERSION);
  assert.deepEqual(answers((ctx) => c.evaluateAll(ctx, { now: NOW })), expected);
});

test("packedDocument: the fixture's document byte for byte; headers no packer writes are refused", () => {
  assert.equal(PACKED_FORMAT_VERSION, 2);
  assert.deepEqual(Buffer.from(packedDocument(PACKED), "utf8"), JSON_BYTES);
  const refused = (bytes, problem, message) =>
    assert.throws(() => packedDocument(Uint8Array.from(bytes)), (e) => e.problem === problem && message.test(e.message));
  const magic = [0x42, 0x53, 0x4e, 0x50];
  refused([...magic, 1, 0], "truncated", /ends early/);
  refused([...magic, 1, 0, 0, ...Array(11).fill(0xff)], "corrupt", /over 64 bits/);
  refused([...magic, 1, 0, 7, 1], "corrupt", /digest marker/);
  // A length reaching back into the header (or the digest) is past the end.
  refused([...magic, 1, 0, 1, 3, ...Array(33).fill(0x78)], "truncated", /ends early/);
  // Lengths over 2^53 are past the end too, not wrapped.
  refused([...magic, 1, 0, 0, ...Array(9).fill(0xff), 0x01, 0x7b, 0x7d], "truncated", /ends early/);
  assert.equal(packedDocument(Uint8Array.from([...magic, 1, 0, 0, 3, 0x7b, 0x7d])), "{}");
  // Both versions' headers read alike (version 2's tables hold precompiled conditions).
  assert.equal(packedDocument(Uint8Array.from([...magic, 2, 0, 0, 3, 0x7b, 0x7d])), "{}");
  refused([...magic, 0, 0, 0, 3, 0x7b, 0x7d], "version", /format version 0 is not one this package reads \(1 to 2\)/);
});
