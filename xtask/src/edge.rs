//! `cargo xtask edge`: the Cloudflare Worker (`edge-worker/`) built with
//! worker-build, fully offline: worker-build is told where wasm-bindgen
//! (the CLI matching `Cargo.lock`, from `cargo xtask setup`) and esbuild (the
//! native binary wrangler brings from npm) are, so it downloads nothing, and
//! wasm-opt is skipped (`--no-opt`; the `wasm` profile already optimizes for
//! size). Then `tests/edge/` runs the built worker in workerd via miniflare.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::setup::Tools;
use crate::util::{Ctx, find_tool, rel, version_of};
use crate::wasm::{gzipped_len, kib};

/// The worker-build release matching the `worker` crate in `Cargo.lock`.
pub(crate) const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The crate directory and where worker-build writes.
const CRATE_DIR: &str = "edge-worker";
const BUILD_DIR: &str = "edge-worker/build";

/// Environment that keeps worker-build, wrangler and miniflare offline and
/// non-interactive.
pub(crate) fn offline_env(ctx: &Ctx, cmd: &mut Command, tools: &Tools) {
    cmd.env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1")
        .env("WASM_BINDGEN_BIN", &tools.wasm_bindgen)
        .env("ESBUILD_BIN", ctx.root.join("node_modules/.bin/esbuild"));
}

/// worker-build at [`WORKER_BUILD_VERSION`], installed if missing.
pub(crate) fn setup(ctx: &Ctx) -> Result<PathBuf> {
    let present = || {
        let path = find_tool("worker-build")?;
        let v = version_of(&path)?;
        // `worker-build --version` prints just the version, e.g. "0.8.7".
        (v.split_whitespace().last() == Some(WORKER_BUILD_VERSION)).then_some(path)
    };
    if let Some(p) = present() {
        println!("ok: worker-build {WORKER_BUILD_VERSION} is installed");
        return Ok(p);
    }
    ctx.step(
        &format!("install worker-build {WORKER_BUILD_VERSION} (takes minutes, once)"),
        ctx.cargo(&[
            "install",
            "worker-build",
            "--version",
            WORKER_BUILD_VERSION,
            "--locked",
        ]),
    )?;
    present().with_context(|| {
        format!("worker-build {WORKER_BUILD_VERSION} was installed but is not on PATH or in $CARGO_HOME/bin")
    })
}

/// Builds the worker into `edge-worker/build/` and prints its size.
pub(crate) fn build(ctx: &Ctx, tools: &Tools) -> Result<PathBuf> {
    let worker_build = setup(ctx)?;
    let esbuild = ctx.root.join("node_modules/.bin/esbuild");
    if !esbuild.exists() {
        bail!(
            "{} is missing: `npm ci` in the workspace root installs it (cargo xtask setup does)",
            esbuild.display()
        );
    }
    let mut cmd = ctx.cmd(&worker_build, &["--profile", "wasm", "--no-opt"]);
    cmd.current_dir(ctx.root.join(CRATE_DIR));
    offline_env(ctx, &mut cmd, tools);
    ctx.step("build the edge worker (worker-build, profile wasm)", cmd)?;

    let out = ctx.root.join(BUILD_DIR);
    ctx.section("edge worker size");
    println!("  {:<48} {:>12} {:>12}", "artifact", "raw", "gzip -9");
    for f in ["index_bg.wasm", "index.js"] {
        let path = out.join(f);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        println!(
            "  {:<48} {:>12} {:>12}",
            rel(&path, &ctx.root),
            kib(bytes.len()),
            kib(gzipped_len(&bytes)?)
        );
    }
    Ok(out)
}

/// The Node test files of the edge worker.
fn test_files(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("tests/edge");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs"))
        .map(|n| format!("tests/edge/{n}"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no tests/edge/*.test.mjs");
    }
    Ok(files)
}

/// Runs `tests/edge/*.test.mjs` (node:test + miniflare) against the build.
pub(crate) fn test(ctx: &Ctx, tools: &Tools) -> Result<()> {
    let files = test_files(&ctx.root)?;
    let mut args = vec!["--test", "--test-reporter=spec"];
    args.extend(files.iter().map(String::as_str));
    let mut cmd = ctx.cmd(&tools.node, &args);
    offline_env(ctx, &mut cmd, tools);
    ctx.step(
        "edge worker tests (node --test tests/edge/, miniflare)",
        cmd,
    )
}
