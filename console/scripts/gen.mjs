// Generates what the console's TypeScript is checked against, into src/gen/
// (not committed):
// - openapi.d.ts: the API's types from docs/openapi.json (openapi-typescript),
//   so an API change that breaks the console fails `tsc`;
// - core/: the core's web WebAssembly build (`cargo xtask wasm` writes it to
//   target/wasm/web; BUNTING_WASM_WEB points elsewhere), so the browser runs
//   the engine the edge runs.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const consoleDir = path.join(here, "..");
const root = path.join(consoleDir, "..");
const gen = path.join(consoleDir, "src", "gen");
mkdirSync(gen, { recursive: true });

execFileSync(
  process.execPath,
  [
    path.join(consoleDir, "node_modules", "openapi-typescript", "bin", "cli.js"),
    path.join(root, "docs", "openapi.json"),
    "--empty-objects-unknown",
    "-o",
    path.join(gen, "openapi.d.ts"),
  ],
  { stdio: "inherit" },
);

const web = process.env.BUNTING_WASM_WEB ?? path.join(root, "target", "wasm", "web");
if (!existsSync(path.join(web, "bunting_core.js"))) {
  console.error(`${web}/bunting_core.js is missing: build the engine with \`cargo xtask wasm\``);
  process.exit(1);
}
rmSync(path.join(gen, "core"), { recursive: true, force: true });
cpSync(web, path.join(gen, "core"), {
  recursive: true,
  filter: (p) => !p.endsWith("package.json") && !p.endsWith(".gitignore"),
});
console.log(`copied the engine's web build from ${path.relative(root, web)}`);
