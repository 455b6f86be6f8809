// Change notifications for client SDKs (edge-worker/src/sse.rs): the bulk
// response advertises an event stream (OFREP's `eventStreams`), the
// environment's pointer object writes a `refetchEvaluation` event to every
// connected client when a newer snapshot is published, and a re-fetch with
// `flagConfigEtag` gets the new flags at once (a client that went away is
// dropped without disturbing the others). Read here by a small
// EventSource-style reader over the worker's response stream, in workerd
// through miniflare. Plain polling with ETag keeps working.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { pack, startWorker, post, putKey, putSnapshot } from "./harness.mjs";

const SECRET = "pointer-secret-0123456789";
const KEY = "bnt_client_sse-0123456789";
const BULK = "/ofrep/v1/evaluate/flags";

function snap(environment, version, value) {
  return JSON.stringify({
    schemaVersion: 1, environment, version, generatedAt: "2026-11-25T00:00:00Z",
    flags: [{ key: "f", type: "string", variants: { a: "a", b: "b", c: "c" }, offVariant: "a", fallthrough: { variant: value }, clientSide: true }],
  });
}

/** Publishes a snapshot text to the pointer, packed (the worker reads packed values only). */
const publish = (w, text) =>
  w.fetch("/edge/v1/snapshot", { method: "POST", headers: { Authorization: `Bearer ${SECRET}` }, body: new Uint8Array(pack(text)) });

/**
 * Reads server-sent events from a response body: `next()` resolves to the
 * next event ({ id, event, data }), or rejects after `limitMs`.
 */
function eventReader(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const events = [];
  let pending;
  const parse = () => {
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const e = { id: undefined, event: "message", data: [], retry: undefined, comment: false };
      let fields = 0;
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) { e.comment = true; continue; }
        const i = line.indexOf(":");
        const [name, value] = i < 0 ? [line, ""] : [line.slice(0, i), line.slice(i + 1).replace(/^ /, "")];
        fields++;
        if (name === "data") e.data.push(value);
        else if (name === "id") e.id = value;
        else if (name === "event") e.event = value;
        else if (name === "retry") e.retry = Number(value);
      }
      if (fields) events.push({ ...e, data: e.data.join("\n") });
    }
  };
  return {
    async next(limitMs = 10000) {
      const deadline = performance.now() + limitMs;
      while (!events.some((e) => e.data !== "")) {
        const left = deadline - performance.now();
        if (left <= 0) throw new Error("no event in time");
        let timer;
        // A read cut short by the time limit is kept for the next call.
        pending ??= reader.read();
        const chunk = await Promise.race([
          pending,
          new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no event within ${limitMs} ms`)), left); }),
        ]).finally(() => clearTimeout(timer));
        pending = undefined;
        if (chunk.done) throw new Error("the stream ended");
        buffer += decoder.decode(chunk.value, { stream: true });
        parse();
      }
      const i = events.findIndex((e) => e.data !== "");
      const [e] = events.splice(i, 1);
      return e;
    },
    /** Everything read so far that was not an event with data (prelude, comments). */
    preamble: () => events.filter((e) => e.data === ""),
    close: () => reader.cancel().catch(() => {}),
  };
}

const bulk = (w, query = "", headers = {}) =>
  post(w, `${BULK}${query}`, { context: { targetingKey: "u-1" } }, { key: KEY, headers });

let w;
let streamUri;
before(async () => {
  w = await startWorker({ bindings: { POINTER_SECRET: SECRET, ALLOWED_ORIGINS: "*", SNAPSHOT_TTL_SECONDS: "3600", POINTER_CHECK_SECONDS: "0.5" } });
  await putKey(w.kv, KEY, "p", "client");
  await putSnapshot(w.kv, "p", snap("p", 1, "a"));
});
after(async () => w?.mf.dispose());

test("the bulk response advertises the environment's event stream", async () => {
  const r = await bulk(w);
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.flags[0].value, "a");
  assert.equal(body.eventStreams.length, 1);
  const [stream] = body.eventStreams;
  assert.equal(stream.type, "sse");
  assert.equal(stream.inactivityDelaySec, 120);
  assert.match(stream.endpoint.requestUri, /^\/ofrep\/v1\/events\?environment=p&token=[0-9a-f]{32}$/);
  streamUri = stream.endpoint.requestUri;
  // ETag polling is unchanged: the same flags answer 304.
  const again = await bulk(w, "", { "If-None-Match": r.headers.get("etag") });
  assert.equal(again.status, 304);
});

test("stream tokens are checked", async () => {
  const other = streamUri.replace("environment=p", "environment=q");
  for (const [uri, status] of [
    [other, 403],
    [streamUri.replace(/token=[0-9a-f]+/, "token=00"), 403],
    ["/ofrep/v1/events?environment=p", 400],
    ["/ofrep/v1/events", 400],
  ]) {
    const r = await w.fetch(uri);
    assert.equal(r.status, status, uri);
    assert.equal((await r.json()).errorCode, "GENERAL");
  }
  const post405 = await w.fetch(streamUri, { method: "POST" });
  assert.equal(post405.status, 405);
  assert.equal(post405.headers.get("allow"), "GET, OPTIONS");
  // Without the pointer: no stream advertised, the route closed.
  const plain = await startWorker({ pointer: false, bindings: { POINTER_SECRET: SECRET } });
  try {
    await putKey(plain.kv, KEY, "p", "client");
    await putSnapshot(plain.kv, "p", snap("p", 1, "a"));
    const body = await (await bulk(plain)).json();
    assert.equal(body.eventStreams, undefined);
    assert.equal((await plain.fetch(streamUri)).status, 404);
  } finally {
    await plain.mf.dispose();
  }
});

test("connected clients are told of a publish and re-fetch the new flags at once", async () => {
  const first = await w.fetch(streamUri, { headers: { Origin: "https://app.example" } });
  assert.equal(first.status, 200);
  assert.match(first.headers.get("content-type"), /^text\/event-stream/);
  assert.equal(first.headers.get("access-control-allow-origin"), "*");
  const second = await w.fetch(streamUri);
  const a = eventReader(first);
  const b = eventReader(second);
  try {
    const before = await (await bulk(w)).json();
    assert.equal(before.flags[0].value, "a");
    const t0 = performance.now();
    assert.equal((await publish(w, snap("p", 2, "b"))).status, 200);
    const [ea, eb] = await Promise.all([a.next(), b.next()]);
    const pushMs = performance.now() - t0;
    assert.equal(a.preamble()[0].retry, 1000);
    for (const e of [ea, eb]) {
      assert.equal(e.event, "message");
      assert.equal(e.id, "2");
      const data = JSON.parse(e.data);
      assert.equal(data.type, "refetchEvaluation");
      assert.equal(data.etag, "2");
      assert.equal(typeof data.lastModified, "number");
    }
    // The client's re-fetch names the version: served at once, without
    // waiting for this isolate's next pointer check.
    const etag = JSON.parse(ea.data).etag;
    const r = await bulk(w, `?flagConfigEtag=${encodeURIComponent(etag)}&flagConfigLastModified=1`);
    assert.equal(r.status, 200);
    assert.equal((await r.json()).flags[0].value, "b");
    console.log(`sse: event at both clients ${pushMs.toFixed(0)} ms after the publish`);
    // A publish of the same version again is no change: no event; the next one is.
    await publish(w, snap("p", 2, "b"));
    await publish(w, snap("p", 3, "c"));
    assert.equal((await a.next()).id, "3");
    assert.equal((await b.next()).id, "3");
  } finally {
    a.close();
    b.close();
  }
});

test("a client reconnecting with an older Last-Event-ID gets the missed event at once", async () => {
  const r = await w.fetch(streamUri, { headers: { "Last-Event-ID": "1" } });
  const events = eventReader(r);
  try {
    const e = await events.next();
    assert.equal(e.id, "3");
    assert.equal(JSON.parse(e.data).type, "refetchEvaluation");
  } finally {
    events.close();
  }
  // Up to date: nothing at once (the next publish brings the next event).
  const current = eventReader(await w.fetch(streamUri, { headers: { "Last-Event-ID": "3" } }));
  try {
    await assert.rejects(current.next(300), /no event/);
    await publish(w, snap("p", 4, "a"));
    assert.equal((await current.next()).id, "4");
  } finally {
    current.close();
  }
});

test("a client that goes away does not keep the others from their events", async () => {
  const gone = eventReader(await w.fetch(streamUri, { headers: { "Last-Event-ID": "4" } }));
  const stays = eventReader(await w.fetch(streamUri, { headers: { "Last-Event-ID": "4" } }));
  try {
    await gone.close();
    // The object's next write to the cancelled stream fails; it drops
    // that stream and writes to the others as before, publish after publish.
    for (const [version, value] of [[5, "b"], [6, "c"]]) {
      assert.equal((await publish(w, snap("p", version, value))).status, 200);
      const e = await stays.next();
      assert.equal(e.id, String(version));
      assert.equal(JSON.parse(e.data).type, "refetchEvaluation");
    }
    // A new client still connects and is told of the next publish.
    const late = eventReader(await w.fetch(streamUri, { headers: { "Last-Event-ID": "6" } }));
    try {
      assert.equal((await publish(w, snap("p", 7, "a"))).status, 200);
      assert.equal((await late.next()).id, "7");
      assert.equal((await stays.next()).id, "7");
    } finally {
      late.close();
    }
  } finally {
    stays.close();
  }
});
