// npm run build: copies the engine (wasm-bindgen's Node build, made by
// `cargo xtask wasm` into target/wasm/js/) into dist/engine/, then compiles
// src/ with tsc. The glue is renamed .cjs: it is CommonJS in an ESM package.
// BUNTING_TARGET_DIR overrides the repository's target/ directory.
import { copyFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const pkg = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const target = process.env.BUNTING_TARGET_DIR ?? path.resolve(pkg, "..", "..", "target");
const js = path.join(target, "wasm", "js");
for (const f of ["bunting_core.js", "bunting_core_bg.wasm"]) {
  if (!existsSync(path.join(js, f))) {
    console.error(`${path.join(js, f)} is missing: run \`cargo xtask wasm\` first (or set BUNTING_TARGET_DIR)`);
    process.exit(1);
  }
}
const dist = path.join(pkg, "dist");
rmSync(dist, { recursive: true, force: true });
mkdirSync(path.join(dist, "engine"), { recursive: true });
copyFileSync(path.join(js, "bunting_core.js"), path.join(dist, "engine", "bunting_core.cjs"));
copyFileSync(path.join(js, "bunting_core_bg.wasm"), path.join(dist, "engine", "bunting_core_bg.wasm"));
execFileSync(process.execPath, [path.join(pkg, "node_modules", "typescript", "bin", "tsc"), "-p", path.join(pkg, "tsconfig.json")], {
  stdio: "inherit",
});
console.log(`built ${path.relative(process.cwd(), dist) || "."} with the engine from ${js}`);
