// The harness floor of tests/edge/bench.mjs (BENCH_FLOOR): a trivial OFREP
// worker in plain JavaScript, NOT a product and not bunting. bench.mjs runs
// it in workerd through miniflare exactly as it runs bunting's worker (same
// miniflare, compatibility date, request.cf and loopback listener), so what
// it costs per request is what any worker costs in that harness: the client,
// the loopback, miniflare's entry worker and workerd's HTTP handling.
//
// It does the least an OFREP answer needs: checks the bearer token against a
// fixed set, parses the JSON body, looks the flag up in a small map and
// returns a prebuilt answer (bulk: one fixed 50-flag body, whatever the
// context). Nothing is evaluated, read from KV, hashed or cached.

/** The SDK keys bench.mjs sends (its ENVS). */
const KEYS = new Set(["sdk-bench-1000", "sdk-bench-50"]);

const FLAG_COUNT = 50;
/** flag-<i> → its serialized OFREP success answer. */
const ANSWERS = new Map();
const entries = [];
for (let i = 0; i < FLAG_COUNT; i++) {
  const variant = i % 10 === 9 ? "treatment" : "control";
  const answer = { key: `flag-${i}`, value: variant, reason: "SPLIT", variant, metadata: {} };
  ANSWERS.set(answer.key, JSON.stringify(answer));
  entries.push(answer);
}
const BULK = JSON.stringify({ flags: entries });

const SINGLE = "/ofrep/v1/evaluate/flags/";
const BULK_PATH = "/ofrep/v1/evaluate/flags";
const JSON_HEADERS = { "content-type": "application/json" };

const json = (status, text) => new Response(text, { status, headers: JSON_HEADERS });
const failure = (status, key, errorCode, errorDetails) =>
  json(status, JSON.stringify(key === null ? { errorCode, errorDetails } : { key, errorCode, errorDetails }));

export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    let key = null;
    if (pathname.startsWith(SINGLE) && pathname.length > SINGLE.length) {
      try {
        key = decodeURIComponent(pathname.slice(SINGLE.length));
      } catch {
        return new Response("not found", { status: 404 });
      }
    } else if (pathname !== BULK_PATH) {
      return new Response("not found", { status: 404 });
    }
    if (request.method !== "POST") return new Response(null, { status: 405, headers: { allow: "POST" } });
    const auth = request.headers.get("authorization") ?? "";
    if (!auth.startsWith("Bearer ") || !KEYS.has(auth.slice(7))) return new Response(null, { status: 401 });

    let body;
    try {
      body = JSON.parse(await request.text());
    } catch (e) {
      return failure(400, key, "PARSE_ERROR", `the body is not JSON: ${e.message}`);
    }
    const context = body?.context;
    if (context === null || typeof context !== "object" || Array.isArray(context)) {
      return failure(400, key, "INVALID_CONTEXT", "the body has no context object");
    }
    if (key === null) return json(200, BULK);
    const answer = ANSWERS.get(key);
    if (answer === undefined) return failure(404, key, "FLAG_NOT_FOUND", `no flag ${key}`);
    return json(200, answer);
  },
};
