// The console's build: `npm run build` (gen + tsc + this) writes console/dist/,
// which `bunting serve` embeds. Everything the page loads is in dist/: no CDN,
// no fonts from the internet (the origin's CSP allows only 'self').
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  oxc: {
    jsx: { runtime: "automatic", importSource: "preact" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The engine's .wasm is always a separate file (streaming compile).
    assetsInlineLimit: (file) => (file.endsWith(".wasm") ? false : undefined),
    reportCompressedSize: true,
    sourcemap: false,
  },
  server: {
    // `npm run dev`: the API of a local `bunting serve` (cargo xtask demo).
    proxy: {
      "/api": "http://127.0.0.1:8080",
      "/auth": "http://127.0.0.1:8080",
    },
  },
});
