// A lean load client for tests/edge/bench.mjs (BENCH_CLIENT=raw): keep-alive
// HTTP/1.1 over node:net, closed loop (each connection sends its next request
// when the previous answer is complete), so that the client itself adds as
// little as it can to the latencies measured. NOT a test, and no general
// HTTP client: one prebuilt request per connection, written again and again;
// reads go into one reused buffer (net's `onread`) and are parsed byte by
// byte by ResponseParser (Content-Length and chunked bodies), without
// allocating per response; latencies are kept in a Float64Array.
import { randomBytes } from "node:crypto";
import net from "node:net";

const CR = 13, LF = 10, COLON = 58, SEMI = 59;
// States of ResponseParser.
const HEAD = 0, BODY = 1, CHUNK_SIZE = 2, CHUNK_DATA = 3, CHUNK_END = 4, TRAILERS = 5;

const ascii = (s) => Buffer.from(s, "latin1");
const CONTENT_LENGTH = ascii("content-length");
const TRANSFER_ENCODING = ascii("transfer-encoding");
const CONNECTION = ascii("connection");

/** Whether buf[start, end) is `name` (lower-case ASCII), ignoring case. */
function nameIs(buf, start, end, name) {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const c = buf[start + i];
    if ((c >= 65 && c <= 90 ? c | 0x20 : c) !== name[i]) return false;
  }
  return true;
}

/** Whether buf[start, end) contains `word` (lower-case ASCII), ignoring case. */
function hasWord(buf, start, end, word) {
  outer: for (let i = start; i + word.length <= end; i++) {
    for (let j = 0; j < word.length; j++) {
      const c = buf[i + j];
      if ((c >= 65 && c <= 90 ? c | 0x20 : c) !== word[j]) continue outer;
    }
    return true;
  }
  return false;
}
const CHUNKED = ascii("chunked");
const CLOSE = ascii("close");

/**
 * Parses a stream of HTTP/1.1 responses (to requests other than HEAD) fed
 * in pieces of any size. For each complete response it calls
 * `onResponse(status, body, close, chunked)`: `body` is a Buffer when
 * `capture` was true at its start (else null), `close` whether it said
 * `Connection: close`, `chunked` whether its body came chunked. Bodies need a Content-Length or chunked transfer encoding (a body
 * delimited by closing the connection is an error); 1xx answers are
 * skipped; 204 and 304 have none. Throws on a malformed response.
 */
export class ResponseParser {
  constructor(onResponse, { maxLine = 16 * 1024 } = {}) {
    this.onResponse = onResponse;
    this.capture = false;
    this.line = Buffer.alloc(maxLine);
    this.state = HEAD;
    this.#reset();
  }

  #reset() {
    this.state = HEAD;
    this.lineLen = 0;
    this.firstLine = true;
    this.status = 0;
    this.length = -1;
    this.chunked = false;
    this.close = false;
    this.remaining = 0;
    this.parts = null;
  }

  /** Feeds buf[start, end); data after a response starts the next one. */
  feed(buf, start = 0, end = buf.length) {
    let i = start;
    while (i < end) {
      const s = this.state;
      if (s === BODY || s === CHUNK_DATA) {
        const n = Math.min(this.remaining, end - i);
        if (this.parts) this.parts.push(Buffer.from(buf.subarray(i, i + n))); // `buf` may be reused
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) {
          if (s === BODY) this.#complete();
          else this.state = CHUNK_END;
        }
        continue;
      }
      // A line: the status line, a header, a chunk size, a chunk's end, a trailer.
      const c = buf[i++];
      if (c !== LF) {
        if (this.lineLen === this.line.length) throw new Error("HTTP response line too long");
        this.line[this.lineLen++] = c;
        continue;
      }
      let len = this.lineLen;
      if (len > 0 && this.line[len - 1] === CR) len--;
      this.lineLen = 0;
      this.#lineDone(len);
    }
  }

  #lineDone(len) {
    const line = this.line;
    switch (this.state) {
      case HEAD:
        if (this.firstLine) {
          // "HTTP/1.1 200 OK"
          if (len < 12 || line[0] !== 72 || line[8] !== 32) throw new Error(`bad HTTP status line: ${line.toString("latin1", 0, len)}`);
          this.status = (line[9] - 48) * 100 + (line[10] - 48) * 10 + (line[11] - 48);
          this.firstLine = false;
          this.parts = this.capture ? [] : null;
          return;
        }
        if (len > 0) return this.#header(len);
        // The end of the head.
        if (this.status < 200) return this.#reset(); // 100 Continue, 103 Early Hints: the answer follows
        if (this.chunked) {
          this.state = CHUNK_SIZE;
        } else if (this.status === 204 || this.status === 304 || this.length === 0) {
          this.#complete();
        } else if (this.length > 0) {
          this.state = BODY;
          this.remaining = this.length;
        } else {
          throw new Error(`HTTP ${this.status} response without Content-Length or chunked encoding`);
        }
        return;
      case CHUNK_SIZE: {
        let size = 0, digits = 0;
        for (let i = 0; i < len; i++) {
          const c = line[i];
          if (c === SEMI || c === 32 || c === 9) break; // chunk extensions
          const d = c >= 48 && c <= 57 ? c - 48 : (c | 0x20) >= 97 && (c | 0x20) <= 102 ? (c | 0x20) - 87 : -1;
          if (d < 0) throw new Error(`bad chunk size: ${line.toString("latin1", 0, len)}`);
          size = size * 16 + d;
          digits++;
        }
        if (!digits) throw new Error("empty chunk size");
        if (size === 0) {
          this.state = TRAILERS;
        } else {
          this.state = CHUNK_DATA;
          this.remaining = size;
        }
        return;
      }
      case CHUNK_END:
        if (len !== 0) throw new Error("chunk data longer than its size");
        this.state = CHUNK_SIZE;
        return;
      case TRAILERS:
        if (len === 0) this.#complete();
        return;
    }
  }

  #header(len) {
    const line = this.line;
    let colon = 0;
    while (colon < len && line[colon] !== COLON) colon++;
    if (colon === 0 || colon === len) throw new Error(`bad HTTP header: ${line.toString("latin1", 0, len)}`);
    let v = colon + 1;
    while (v < len && (line[v] === 32 || line[v] === 9)) v++;
    if (nameIs(line, 0, colon, CONTENT_LENGTH)) {
      let n = 0;
      for (let i = v; i < len; i++) {
        const c = line[i];
        if (c === 32 || c === 9) break;
        if (c < 48 || c > 57) throw new Error(`bad Content-Length: ${line.toString("latin1", 0, len)}`);
        n = n * 10 + (c - 48);
      }
      this.length = n;
    } else if (nameIs(line, 0, colon, TRANSFER_ENCODING)) {
      this.chunked = hasWord(line, v, len, CHUNKED);
    } else if (nameIs(line, 0, colon, CONNECTION)) {
      this.close = hasWord(line, v, len, CLOSE);
    }
  }

  #complete() {
    const { status, parts, close, chunked } = this;
    this.#reset();
    this.onResponse(status, parts ? Buffer.concat(parts) : null, close, chunked);
  }
}

/**
 * The bytes of one POST request, as autocannon builds them (Host,
 * Connection: keep-alive, the given headers, Content-Length). With `unique`,
 * the body's `[<id>]` (one) becomes a 33-byte id, like autocannon's
 * idReplacement (hyperid, fixed length), that `nextId` changes in place:
 * returns { request, idEnd } (idEnd: the offset after the id's last digit).
 */
export function buildRequest({ host, path, headers, body, unique = false }) {
  let bodyText = body;
  if (unique) {
    if (body.split("[<id>]").length !== 2) throw new Error("a unique body needs exactly one [<id>]");
    // 13 random url-safe characters (a connection's own), then a 20-digit counter.
    const prefix = randomBytes(10).toString("base64url").slice(0, 13);
    bodyText = body.replace("[<id>]", `${prefix}${"0".repeat(20)}`);
  }
  const bodyBuf = Buffer.from(bodyText);
  const head = [`POST ${path} HTTP/1.1`, `Host: ${host}`, "Connection: keep-alive"];
  for (const [k, v] of Object.entries(headers)) head.push(`${k}: ${v}`);
  head.push(`Content-Length: ${bodyBuf.length}`);
  const headBuf = Buffer.from(`${head.join("\r\n")}\r\n\r\n`, "latin1");
  const request = Buffer.concat([headBuf, bodyBuf]);
  const idEnd = unique ? headBuf.length + Buffer.byteLength(body.slice(0, body.indexOf("[<id>]"))) + 33 : -1;
  return { request, idEnd };
}

/** Increments the decimal counter ending at `idEnd` in `request`, in place. */
export function nextId(request, idEnd) {
  let i = idEnd - 1;
  while (request[i] === 57) request[i--] = 48; // "9" → "0", carry
  request[i]++;
}

/**
 * Drives `url` + `path` with `connections` closed-loop keep-alive
 * connections for `duration` seconds. Latencies (ms, from writing a request
 * to its answer's last byte) of 200 answers only; other statuses are
 * counted. `check(status, bodyText)` judges the first answer (it throws to
 * fail the run). Resolves to the figures bench.mjs prints.
 */
export function runRaw({ url, path, headers, body, unique = false, connections, duration, check }) {
  const { hostname, port, host } = new URL(url);
  return new Promise((resolve, reject) => {
    let lat = new Float64Array(1 << 16);
    let count = 0, non200 = 0, errors = 0, responses = 0, chunkedResponses = 0, bytes = 0, open = connections;
    let failed = null;
    let checked = !check;
    const start = process.hrtime.bigint();
    const end = start + BigInt(Math.round(duration * 1e9));
    let last = start;
    const finish = () => {
      if (--open > 0) return;
      if (failed) return reject(failed);
      const seconds = Number(last - start) / 1e9;
      const sorted = lat.subarray(0, count).sort();
      const q = (p) => (count ? sorted[Math.min(count - 1, Math.max(0, Math.ceil(p * count) - 1))] : NaN);
      resolve({
        requests: count, non2xx: non200, errors, timeouts: 0,
        rps: count / seconds, chunkedResponses,
        bytesPerResponse: responses ? bytes / responses : NaN,
        p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: count ? sorted[count - 1] : NaN,
      });
    };
    for (let c = 0; c < connections; c++) {
      const { request, idEnd } = buildRequest({ host, path, headers, body, unique });
      let sent = 0n;
      let done = false;
      const stop = (err) => {
        if (done) return;
        done = true;
        if (err) {
          errors++;
          failed ??= err;
        }
        socket.destroy();
        finish();
      };
      const send = () => {
        if (unique) nextId(request, idEnd);
        sent = process.hrtime.bigint();
        socket.write(request);
      };
      const parser = new ResponseParser((status, answer, close, chunked) => {
        const t = process.hrtime.bigint();
        responses++;
        if (chunked) chunkedResponses++;
        if (status === 200) {
          if (count === lat.length) {
            const grown = new Float64Array(lat.length * 2);
            grown.set(lat);
            lat = grown;
          }
          lat[count++] = Number(t - sent) / 1e6;
        } else {
          non200++;
        }
        if (t > last) last = t;
        if (answer) {
          parser.capture = false;
          try {
            check(status, answer.toString("utf8"));
          } catch (e) {
            return stop(e);
          }
        }
        if (close) return stop(new Error("the server closed the keep-alive connection"));
        if (t >= end) return stop();
        send();
      });
      if (!checked) {
        parser.capture = true;
        checked = true;
      }
      const socket = net.connect({
        host: hostname, port: Number(port), noDelay: true,
        onread: {
          buffer: Buffer.allocUnsafe(64 * 1024),
          callback: (n, buf) => {
            bytes += n;
            try {
              parser.feed(buf, 0, n);
            } catch (e) {
              stop(e);
              return false;
            }
          },
        },
      });
      socket.on("connect", send);
      socket.on("error", (e) => stop(e));
      socket.on("close", () => stop(done ? null : new Error("connection closed mid-run")));
    }
  });
}
