// Evaluates every flag of a snapshot for a set of named contexts through the
// wasm-bindgen build of bunting-core (target/wasm/js, made by `cargo xtask
// wasm`) and prints the results as JSON: {"<user>": [evaluation, ...], ...}.
//
//   node examples/node/evaluate.cjs SNAPSHOT CONTEXTS [NOW]
//
// NOW is RFC 3339 or Unix milliseconds and defaults to the current time.
// BUNTING_CORE_JS overrides the path of the generated bunting_core.js.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

function main(argv) {
  const [snapshotPath, contextsPath, nowArg] = argv;
  if (!snapshotPath || !contextsPath) {
    throw new Error("usage: evaluate.cjs SNAPSHOT CONTEXTS [NOW]");
  }
  const module =
    process.env.BUNTING_CORE_JS ||
    path.join(__dirname, "..", "..", "target", "wasm", "js", "bunting_core.js");
  const { Engine } = require(path.resolve(module));

  let nowMs = Date.now();
  if (nowArg !== undefined) {
    nowMs = /^-?\d+$/.test(nowArg) ? Number(nowArg) : Date.parse(nowArg);
    if (Number.isNaN(nowMs)) throw new Error(`NOW must be RFC 3339 or Unix milliseconds, not ${nowArg}`);
  }

  const engine = new Engine(fs.readFileSync(snapshotPath, "utf8"), false);
  const contexts = JSON.parse(fs.readFileSync(contextsPath, "utf8"));
  const out = {};
  for (const [name, context] of Object.entries(contexts)) {
    out[name] = engine.evaluateAll(context, nowMs);
  }
  engine.free();
  process.stdout.write(JSON.stringify(out, null, 2) + "\n");
}

try {
  main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`evaluate.cjs: ${e && e.message ? e.message : e}\n`);
  process.exit(1);
}
