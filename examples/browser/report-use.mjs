// An OpenFeature hook that reports the flags an application *used* to the
// edge's exposure endpoint (`POST /exposures`), batched: the edge records an
// exposure only for flags reported this way (and for single-flag
// evaluations), never for a bulk fetch. Works with the web SDK
// (`@openfeature/web-sdk` + `@openfeature/ofrep-web-provider`) and the server
// SDK alike: `after` runs once a flag's value was handed to the application.
//
//   import { reportUse } from "./report-use.mjs";
//   OpenFeature.addHooks(reportUse({ baseUrl: "https://flags.example.com", sdkKey: "<client key>" }));
//
// Flags used within `delayMs` are sent together, one request per evaluation
// context (at most 100 flags each, the endpoint's limit); a flag used again
// in the same batch is sent once. The edge evaluates each flag again for the
// context (it never trusts a variant the client claims) and deduplicates per
// user, flag and variant, so reporting on every render is fine. Errors are
// passed to `onError` and never reach the application.

/** Most flags in one report (the endpoint refuses more). */
export const MAX_FLAGS = 100;

/**
 * The hook. `baseUrl`: the Worker's URL; `sdkKey`: the SDK key;
 * `delayMs` (default 1000): how long flags wait to be sent together;
 * `credentials` (default "include"): send the anonymous-id cookie
 * cross-origin (see docs/edge.md); `fetch`: the fetch implementation;
 * `onError(error)`: failed reports (default: ignored).
 * Returns the hook with a `flush()` method (e.g. on `pagehide`).
 */
export function reportUse({ baseUrl, sdkKey, delayMs = 1000, credentials = "include", fetch: fetchImpl = globalThis.fetch, onError = () => {} }) {
  const url = new URL("exposures", baseUrl.endsWith("/") ? baseUrl : `${baseUrl}/`).href;
  const pending = new Map(); // JSON of the context -> { context, flags: Set }
  let timer;

  async function send(context, flags) {
    const r = await fetchImpl(url, {
      method: "POST",
      credentials,
      keepalive: true, // still sent when the page is closing
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${sdkKey}` },
      body: JSON.stringify({ context, flags }),
    });
    if (r.status !== 202) throw new Error(`POST ${url}: HTTP ${r.status} ${await r.text()}`);
    return r.json();
  }

  async function flush() {
    clearTimeout(timer);
    timer = undefined;
    const batches = [...pending.values()];
    pending.clear();
    const sent = [];
    for (const { context, flags } of batches) {
      const all = [...flags];
      for (let i = 0; i < all.length; i += MAX_FLAGS) {
        sent.push(send(context, all.slice(i, i + MAX_FLAGS)).catch((e) => onError(e)));
      }
    }
    await Promise.all(sent);
  }

  return {
    after(hookContext, details) {
      if (details.errorCode) return; // nothing was served from a variant
      const context = hookContext.context ?? {};
      const id = JSON.stringify(context);
      let batch = pending.get(id);
      if (!batch) pending.set(id, (batch = { context, flags: new Set() }));
      batch.flags.add(details.flagKey);
      timer ??= setTimeout(flush, delayMs);
    },
    flush,
  };
}
