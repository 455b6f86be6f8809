// Exposure pipeline throughput through Cloudflare Queues, locally: the built
// worker in workerd (miniflare's local queues, the worker consuming its own
// queue) and a fake ingest endpoint in this process that answers 204.
//
//   node tests/edge/queue-bench.mjs [REPORTS] [CONCURRENCY] [direct]
//
// Sends REPORTS exposure reports (POST /exposures, one split flag, distinct
// users; default 5000) with CONCURRENCY in flight (default 32), and prints
// how many the worker accepted per second (202 once queued) and how many
// exposures per second reached the ingest endpoint end to end, with the
// number of ingest POSTs the consumer made. `direct`: without the queue
// binding (the in-memory forwarder), for comparison. Not a test: figures for
// docs/performance.md.
import os from "node:os";
import { startWorker, putKey, putSnapshot, post, readJson } from "./harness.mjs";

const reports = Number(process.argv[2] ?? 5000);
const concurrency = Number(process.argv[3] ?? 32);
const direct = process.argv[4] === "direct";
const KEY = "sdk-bench";
let delivered = 0;
let posts = 0;
let done;
const allDelivered = new Promise((r) => { done = r; });

const w = await startWorker({
  checkOfrep: false,
  bindings: { INGEST_URL: "https://ingest.example/v1/ingest", INGEST_SECRET: "s", INGEST_FLUSH_SECONDS: "0" },
  workerOptions: direct ? {} : {
    queueProducers: { INGEST_QUEUE: { queueName: "bunting-ingest" } },
    queueConsumers: { "bunting-ingest": { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 10 } },
  },
  outbound: async (request) => {
    const body = await request.json();
    posts++;
    delivered += body.exposures?.length ?? 0;
    if (delivered >= reports) done();
    return new Response(null, { status: 204 });
  },
});
try {
  await putKey(w.kv, KEY, "production", "server");
  await putSnapshot(w.kv, "production", readJson("examples/demo-snapshot.json"));
  let next = 0;
  const t0 = performance.now();
  const workers = Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < reports; i = next++) {
      const r = await post(w, "/exposures", { context: { targetingKey: `bench-${i}` }, flags: ["checkout-button-copy"] }, { key: KEY });
      const b = await r.json();
      if (r.status !== 202 || b.recorded !== 1) throw new Error(`report ${i}: ${r.status} ${JSON.stringify(b)}`);
    }
  });
  await Promise.all(workers);
  const accepted = performance.now() - t0;
  await allDelivered;
  const total = performance.now() - t0;
  console.log(JSON.stringify({
    path: direct ? "direct" : "queue", reports, concurrency,
    acceptedPerSecond: Math.round(reports / (accepted / 1000)),
    deliveredPerSecond: Math.round(reports / (total / 1000)),
    acceptMs: Math.round(accepted), endToEndMs: Math.round(total), ingestPosts: posts,
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model}`, node: process.version,
    date: new Date().toISOString().slice(0, 10),
  }));
} finally {
  await w.mf.dispose();
}
