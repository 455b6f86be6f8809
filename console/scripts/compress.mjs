// Writes FILE.gz (gzip -9) beside each file of dist/ worth compressing, so
// `bunting serve` sends the precompressed copy to browsers that accept gzip
// (origin/src/console.rs) without compressing at each request.
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { constants, gzipSync } from "node:zlib";

const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "dist");
const worth = /\.(js|css|html|wasm|svg|json)$/;
let raw = 0;
let packed = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (worth.test(name) && statSync(p).size > 1024) {
      const bytes = readFileSync(p);
      const gz = gzipSync(bytes, { level: constants.Z_BEST_COMPRESSION });
      if (gz.length < bytes.length * 0.9) {
        writeFileSync(`${p}.gz`, gz);
        raw += bytes.length;
        packed += gz.length;
      }
    }
  }
}
walk(dist);
console.log(`precompressed ${(raw / 1024).toFixed(0)} KiB into ${(packed / 1024).toFixed(0)} KiB of .gz files`);
