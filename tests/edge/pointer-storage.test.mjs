// The pointer Durable Object's storage functions (edge-worker/src/pointer_storage.mjs),
// run directly against an in-memory storage with the Durable Object storage API's
// shape: how a value is cut into stored chunks and read back, `latest`, and the
// previous version's chunks deleted. The worker tests (pointer.test.mjs) cover the
// object end to end in workerd; the JSON-text path runs only in `json-snapshots`
// builds, so it is checked here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readChunks, readLatest, storeValue } from "../../edge-worker/src/pointer_storage.mjs";

/** A Durable Object storage in memory: `get`, `put`, `delete` of a key list. */
function memoryStorage() {
  const map = new Map();
  return {
    map,
    async get(key) {
      return map.get(key);
    },
    async put(key, value) {
      map.set(key, value);
    },
    async delete(keys) {
      assert.ok(keys.length <= 128, `at most 128 keys per delete, got ${keys.length}`);
      let n = 0;
      for (const k of keys) n += map.delete(k) ? 1 : 0;
      return n;
    },
  };
}

const utf8 = (s) => new TextEncoder().encode(s);
const pieces = (storage, family, version) =>
  [...storage.map.entries()].filter(([k]) => k.startsWith(`${family}:${version}:`)).map(([, v]) => v);

test("a JSON text is stored as strings cut between characters, and read back whole", async () => {
  const text = `{"k": "${"é€😀".repeat(100)}"}`;
  const s = memoryStorage();
  await storeValue(s, "7", 7, utf8(text), true, 7, "", 0);
  const stored = pieces(s, "snapshot", 7);
  assert.ok(stored.every((p) => typeof p === "string" && p.length > 0 && utf8(p).length <= 7));
  assert.equal(stored.join(""), text);
  assert.deepEqual(s.map.get("latest"), [7, stored.length]);
  assert.deepEqual(await readChunks(s, "7", stored.length), utf8(text));
});

test("cuts as the object always cut: small cases", async () => {
  let s = memoryStorage();
  await storeValue(s, "1", 1, utf8('{"a":1}'), true, 4, "", 0);
  assert.deepEqual(pieces(s, "snapshot", 1), ['{"a"', ":1}"]);

  s = memoryStorage();
  await storeValue(s, "1", 1, new Uint8Array(0), true, 4, "", 0);
  assert.deepEqual(pieces(s, "snapshot", 1), [""], "an empty value is one empty piece");
  assert.deepEqual(s.map.get("latest"), [1, 1]);

  s = memoryStorage();
  await storeValue(s, "1", 1, utf8("BSNP\x01"), false, 4, "", 0);
  assert.deepEqual(pieces(s, "packed", 1), [utf8("BSNP"), new Uint8Array([1])]);
});

test("a byte order mark and characters across a cut survive", async () => {
  const cut = 100 * 1024;
  for (const text of ["\ufeff{\"x\":1}", "{" + "b".repeat(cut - 1) + "\ufeff" + "c}", "{" + "a".repeat(cut - 2) + "€" + "😀".repeat(5) + "}"]) {
    const s = memoryStorage();
    await storeValue(s, "3", 3, utf8(text), true, cut, "", 0);
    const n = s.map.get("latest")[1];
    assert.deepEqual(await readChunks(s, "3", n), utf8(text));
  }
});

test("a packed value is stored as byte copies and read back whole", async () => {
  const value = new Uint8Array(250 * 1024);
  value.set(utf8("BSNP"));
  for (let i = 4; i < value.length; i++) value[i] = i % 251;
  const s = memoryStorage();
  await storeValue(s, "9", 9, value, false, 100 * 1024, "", 0);
  const stored = pieces(s, "packed", 9);
  assert.equal(stored.length, 3);
  for (const p of stored) assert.equal(p.buffer.byteLength, p.length, "a copy, not a view of the whole value");
  assert.deepEqual(await readChunks(s, "9", 3), value);
});

test("the previous version's chunks of both families go, 128 keys per delete", async () => {
  const s = memoryStorage();
  for (let i = 0; i < 70; i++) {
    s.map.set(`snapshot:4:${i}`, "x");
    s.map.set(`packed:4:${i}`, new Uint8Array([1]));
  }
  s.map.set("packed:3:0", new Uint8Array([1]));
  await storeValue(s, "5", 5, utf8("BSNPz"), false, 100, "4", 70);
  assert.deepEqual([...s.map.keys()].sort(), ["latest", "packed:3:0", "packed:5:0"]);
});

test("a version beyond 2^53 stores its chunks but not `latest`", async () => {
  const s = memoryStorage();
  s.map.set("latest", [4, 1]);
  await assert.rejects(storeValue(s, "9007199254740993", NaN, utf8("BSNPq"), false, 100, "4", 1), /can't be represented/);
  assert.deepEqual(s.map.get("latest"), [4, 1], "the previous snapshot stays whole");
});

test("`latest` is read as digits, or null when it is not [version, chunks]", async () => {
  const s = memoryStorage();
  assert.equal(await readLatest(s), undefined);
  for (const [stored, read] of [
    [[5, 2], "5 2"],
    [[18446744073709551615n, 1n], "18446744073709551615 1"],
    [[6, 0, "later items ignored"], "6 0"],
    [[-3n, 1], null],
    [["5", 1], null],
    [[1.5, 1], null],
    [[5], null],
    [{ 0: 5, 1: 1 }, null],
  ]) {
    s.map.set("latest", stored);
    assert.equal(await readLatest(s), read, JSON.stringify(stored, (_, v) => (typeof v === "bigint" ? `${v}n` : v)));
  }
});

test("chunks are read from the family chunk 0 is found in; other values are an error", async () => {
  const s = memoryStorage();
  s.map.set("packed:2:0", utf8("BSNP"));
  s.map.set("packed:2:1", utf8("xyz").buffer);
  assert.deepEqual(await readChunks(s, "2", 2), utf8("BSNPxyz"));
  s.map.set("snapshot:8:0", '{"a"');
  s.map.set("snapshot:8:1", ":1}");
  assert.deepEqual(await readChunks(s, "8", 2), utf8('{"a":1}'));
  s.map.set("snapshot:6:0", "{");
  s.map.set("snapshot:6:1", { a: 1 });
  await assert.rejects(readChunks(s, "6", 2), /neither a string nor bytes/);
});
