// The response parser and request builder of raw-client.mjs (bench.mjs's
// BENCH_CLIENT=raw) on fixed bytes: no server, nothing timed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { buildRequest, nextId, ResponseParser } from "./raw-client.mjs";

/** Feeds `pieces` (strings) to a parser capturing every body; the answers seen. */
function parse(pieces, { capture = true } = {}) {
  const seen = [];
  const p = new ResponseParser((status, body, close) => {
    seen.push({ status, body: body?.toString("utf8") ?? null, close });
    p.capture = capture;
  });
  p.capture = capture;
  for (const piece of pieces) {
    const buf = Buffer.from(piece, "latin1");
    // Also at an offset inside a larger buffer, as net's `onread` hands it over.
    const big = Buffer.concat([Buffer.from("xx"), buf, Buffer.from("yy")]);
    p.feed(big, 2, 2 + buf.length);
  }
  return seen;
}

/** Every way of cutting `text` in two, and byte by byte. */
function splits(text) {
  const out = [[...text]];
  for (let i = 1; i < text.length; i++) out.push([text.slice(0, i), text.slice(i)]);
  return out;
}

const okBody = '{"key":"flag-0","value":"control","reason":"SPLIT","variant":"control","metadata":{}}';
const ok = `HTTP/1.1 200 OK\r\nContent-Length: ${okBody.length}\r\ncontent-type: application/json\r\n\r\n${okBody}`;
const notFound = 'HTTP/1.1 404 Not Found\r\ncontent-length: 46\r\nContent-Type: application/json\r\n\r\n{"key":"nope","errorCode":"FLAG_NOT_FOUND"}   ';

test("Content-Length answers, back to back, cut anywhere", () => {
  const text = ok + notFound + ok;
  for (const pieces of splits(text)) {
    assert.deepEqual(parse(pieces), [
      { status: 200, body: okBody, close: false },
      { status: 404, body: '{"key":"nope","errorCode":"FLAG_NOT_FOUND"}   ', close: false },
      { status: 200, body: okBody, close: false },
    ]);
  }
});

test("chunked answers with extensions and trailers, cut anywhere", () => {
  const chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5\r\nhello\r\n" + "A;ext=1\r\n, world!!!\r\n" + "0\r\nX-Trailer: 1\r\n\r\n";
  const bare = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, CHUNKED\r\n\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
  for (const pieces of splits(chunked + bare + ok)) {
    assert.deepEqual(parse(pieces), [
      { status: 200, body: "hello, world!!!", close: false },
      { status: 200, body: "abcdefghijklmnopqrstuvwxyz", close: false },
      { status: 200, body: okBody, close: false },
    ]);
  }
});

test("bodiless answers, interim 100, Connection: close, no capture", () => {
  const text = "HTTP/1.1 100 Continue\r\n\r\n" + "HTTP/1.1 204 No Content\r\n\r\n" +
    "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n" + "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n" +
    "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\n{}";
  for (const pieces of splits(text)) {
    assert.deepEqual(parse(pieces, { capture: false }).map((r) => [r.status, r.body, r.close]), [
      [204, null, false], [304, null, false], [401, null, false], [200, null, true],
    ]);
  }
});

test("malformed answers throw", () => {
  assert.throws(() => parse(["HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"]), /without Content-Length/);
  assert.throws(() => parse(["garbage\r\n"]), /status line/);
  assert.throws(() => parse(["HTTP/1.1 200 OK\r\nno colon here\r\n"]), /bad HTTP header/);
  assert.throws(() => parse(["HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n"]), /Content-Length/);
  assert.throws(() => parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]), /chunk size/);
  assert.throws(() => parse(["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n"]), /longer than its size/);
});

test("requests are autocannon's bytes; a unique body's id counts up in place", () => {
  const headers = { "content-type": "application/json", authorization: "Bearer k" };
  const { request, idEnd } = buildRequest({ host: "127.0.0.1:8787", path: "/p", headers, body: '{"a":"x"}' });
  assert.equal(idEnd, -1);
  assert.equal(request.toString(), "POST /p HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nConnection: keep-alive\r\n" +
    'content-type: application/json\r\nauthorization: Bearer k\r\nContent-Length: 9\r\n\r\n{"a":"x"}');

  const body = '{"context":{"targetingKey":"user-[<id>]","é":1}}';
  const u = buildRequest({ host: "h", path: "/p", headers: {}, body, unique: true });
  const text = () => u.request.toString("utf8");
  const [head, sent] = text().split("\r\n\r\n");
  // hyperid's fixed length: 33 bytes for the 6 of "[<id>]", as autocannon's Content-Length says.
  assert.match(head, new RegExp(`Content-Length: ${Buffer.byteLength(body) + 27}$`));
  assert.equal(Buffer.byteLength(sent), Buffer.byteLength(body) + 27);
  const id = () => JSON.parse(text().split("\r\n\r\n")[1]).context.targetingKey;
  assert.match(id(), /^user-[A-Za-z0-9_-]{13}0{20}$/);
  const prefix = id().slice(0, 18);
  for (let i = 0; i < 1000; i++) nextId(u.request, u.idEnd);
  assert.equal(id(), `${prefix}${"0".repeat(16)}1000`);
  for (let i = 0; i < 9000; i++) nextId(u.request, u.idEnd);
  assert.equal(id(), `${prefix}${"0".repeat(15)}10000`);
  // Another connection's request: another prefix.
  const other = buildRequest({ host: "h", path: "/p", headers: {}, body, unique: true });
  assert.notEqual(JSON.parse(other.request.toString().split("\r\n\r\n")[1]).context.targetingKey.slice(0, 18), prefix);
});
