//! `cargo xtask edge`: the Cloudflare Worker (`edge-worker/`) built with
//! worker-build, fully offline: worker-build is told where wasm-bindgen
//! (the CLI matching `Cargo.lock`, from `cargo xtask setup`) and esbuild (the
//! native binary wrangler brings from npm) are, so it downloads nothing, and
//! wasm-opt is skipped (`--no-opt`; the `wasm` profile already optimizes for
//! size). worker-build's wasm-bindgen step is followed by a trim of the
//! glue the worker never uses (`bindgen_trim.rs`). Then `tests/edge/` runs
//! the built worker in workerd via miniflare.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bindgen_trim;
use crate::setup::Tools;
use crate::util::{Ctx, find_tool, rel, version_of};
use crate::wasm::{gzipped_len, kib};

/// The worker-build release matching the `worker` crate in `Cargo.lock`.
pub(crate) const WORKER_BUILD_VERSION: &str = "0.8.7";

/// The crate directory and where worker-build writes.
const CRATE_DIR: &str = "edge-worker";
const BUILD_DIR: &str = "edge-worker/build";

/// Rust flags of the worker's build (`wasm32-unknown-unknown` only, through
/// Cargo's per-target variable, so build scripts and proc macros are not
/// rebuilt): sha2's compact SHA-256 (its rounds in a loop, not unrolled),
/// −2,381 B of the gzipped bundle. The worker hashes a packed snapshot's
/// tables once per new version (≈ 48 KiB: 0.33 ms in V8, 0.24 ms
/// unrolled) and short secrets and keys otherwise. The C-ABI module the
/// wasmtime hosts run is built for speed and keeps the unrolled rounds.
const WORKER_RUSTFLAGS: &str = r#"--cfg sha2_backend_soft="compact""#;

/// The variable that gives Cargo [`WORKER_RUSTFLAGS`].
const WORKER_RUSTFLAGS_VAR: &str = "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS";

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

/// The environment variable naming cargo features of the worker to build
/// with (comma-separated): `json-snapshots` reads snapshot values that are
/// JSON texts too (see `edge-worker/Cargo.toml`).
const FEATURES_VAR: &str = "BUNTING_EDGE_FEATURES";

/// Builds the worker into `edge-worker/build/` and prints its size: with
/// the features [`FEATURES_VAR`] names, if any.
pub(crate) fn build(ctx: &Ctx, tools: &Tools) -> Result<PathBuf> {
    let worker_build = setup(ctx)?;
    let esbuild = ctx.root.join("node_modules/.bin/esbuild");
    if !esbuild.exists() {
        bail!(
            "{} is missing: `npm ci` in the workspace root installs it (cargo xtask setup does)",
            esbuild.display()
        );
    }
    let features = std::env::var(FEATURES_VAR).unwrap_or_default();
    let features = features.trim();
    let mut args = vec!["--profile", "wasm", "--no-opt"];
    if !features.is_empty() {
        println!("features: {features} ({FEATURES_VAR})");
        // worker-build passes what follows the crate's path to cargo.
        args.extend([".", "--features", features]);
    }
    let mut cmd = ctx.cmd(&worker_build, &args);
    cmd.current_dir(ctx.root.join(CRATE_DIR));
    offline_env(ctx, &mut cmd, tools);
    let rustflags = match std::env::var(WORKER_RUSTFLAGS_VAR) {
        Ok(theirs) if !theirs.trim().is_empty() => format!("{theirs} {WORKER_RUSTFLAGS}"),
        _ => WORKER_RUSTFLAGS.to_string(),
    };
    cmd.env(WORKER_RUSTFLAGS_VAR, rustflags);
    // worker-build runs this program as its wasm-bindgen, which runs the
    // real one and trims the glue the worker never uses (bindgen_trim.rs).
    let this = std::env::current_exe().context("locating the xtask binary")?;
    cmd.env("WASM_BINDGEN_BIN", this)
        .env(bindgen_trim::REAL_VAR, &tools.wasm_bindgen);
    ctx.step("build the edge worker (worker-build, profile wasm)", cmd)?;

    let out = ctx.root.join(BUILD_DIR);
    // A build asked to keep its symbols (`CARGO_PROFILE_WASM_STRIP=false`
    // or `none`, for tests/edge/profile.mjs) keeps the name section too.
    let keep_names = std::env::var("CARGO_PROFILE_WASM_STRIP")
        .is_ok_and(|v| matches!(v.as_str(), "false" | "none"));
    if !keep_names {
        drop_name_section(&out.join("index_bg.wasm"))?;
    }
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

/// Removes the `name` custom section from the built module. The `wasm`
/// profile strips Rust's symbol names, but wasm-bindgen writes a name section
/// of its own for the shims it generates (≈ 11 KB raw, 1.3 KB gzipped of the
/// shipped bundle); it only names frames in stack traces. Every other
/// section is copied byte for byte.
fn drop_name_section(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let kept = without_name_section(&bytes)
        .with_context(|| format!("{} is not a WebAssembly module", path.display()))?;
    if kept.len() != bytes.len() {
        std::fs::write(path, kept).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `module` without its `name` custom sections; `None` if it does not parse
/// as a sequence of sections.
fn without_name_section(module: &[u8]) -> Option<Vec<u8>> {
    fn leb(bytes: &[u8], at: &mut usize) -> Option<usize> {
        let mut value = 0usize;
        for shift in (0..35).step_by(7) {
            let b = *bytes.get(*at)?;
            *at += 1;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    if module.get(..4)? != b"\0asm" {
        return None;
    }
    let mut out = module.get(..8)?.to_vec();
    let mut at = 8;
    while at < module.len() {
        let start = at;
        let id = module[at];
        at += 1;
        let len = leb(module, &mut at)?;
        let body = module.get(at..at.checked_add(len)?)?;
        at += len;
        if id == 0 {
            let mut name_at = 0;
            let name_len = leb(body, &mut name_at)?;
            if body.get(name_at..name_at.checked_add(name_len)?)? == b"name" {
                continue;
            }
        }
        out.extend_from_slice(&module[start..at]);
    }
    Some(out)
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

#[cfg(test)]
mod tests {
    use super::without_name_section;

    #[test]
    fn drops_only_the_name_section() {
        let header = b"\0asm\x01\0\0\0";
        let types = [1u8, 4, 1, 0x60, 0, 0];
        let name = [0u8, 7, 4, b'n', b'a', b'm', b'e', 1, 0];
        let producers = [
            0u8, 10, 9, b'p', b'r', b'o', b'd', b'u', b'c', b'e', b'r', b's',
        ];
        let module = [&header[..], &types, &name, &producers].concat();
        let expected = [&header[..], &types, &producers].concat();
        assert_eq!(without_name_section(&module).unwrap(), expected);
        assert_eq!(without_name_section(&expected).unwrap(), expected);
        assert!(without_name_section(b"\0asm\x01\0\0\0\x01\x09").is_none());
        assert!(without_name_section(b"not wasm").is_none());
    }
}
