//! `cargo xtask wasm`: bunting-core compiled to WebAssembly, twice.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;

use crate::setup::Tools;
use crate::util::{Ctx, TARGET, rel};

/// What `build` produced.
pub(crate) struct Wasm {
    /// The C ABI module (feature `abi`) for wasmtime hosts.
    pub abi: PathBuf,
    /// wasm-bindgen output for Node (`--target nodejs`).
    pub js_dir: PathBuf,
    /// wasm-bindgen output for browsers and workers (`--target web`).
    pub web_dir: PathBuf,
}

/// Builds `bunting-core` with `profile` and `features`, returning the module
/// cargo wrote (callers copy or transform it before another build of the
/// same profile).
fn cargo_build(ctx: &Ctx, features: &str, profile: &str) -> Result<PathBuf> {
    ctx.step(
        &format!("build bunting-core for {TARGET} (profile {profile}, feature {features})"),
        ctx.cargo(&[
            "build",
            "-p",
            "bunting-core",
            "--lib",
            "--target",
            TARGET,
            "--profile",
            profile,
            "--features",
            features,
        ]),
    )?;
    Ok(ctx
        .target_dir
        .join(TARGET)
        .join(profile)
        .join("bunting_core.wasm"))
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

pub(crate) fn build(ctx: &Ctx, tools: &Tools) -> Result<Wasm> {
    let out = ctx.target_dir.join("wasm");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // 1. The C ABI module for wasmtime (the Rust and Python hosts): built
    //    for speed, not size (profile `wasm-speed`, opt-level 3), as it is
    //    shipped in packages rather than sent to browsers.
    let built = cargo_build(ctx, "abi", "wasm-speed")?;
    let bytes = read(&built)?;
    if !contains(&bytes, "bunting_eval") {
        bail!(
            "{} does not export bunting_eval: the `abi` build is stale or broken",
            built.display()
        );
    }
    let abi = out.join("bunting_core_abi.wasm");
    std::fs::write(&abi, &bytes).with_context(|| format!("writing {}", abi.display()))?;

    // 2. The wasm-bindgen package for JavaScript hosts.
    let built = cargo_build(ctx, "js", "wasm")?;
    let bytes = read(&built)?;
    if contains(&bytes, "bunting_eval") || !contains(&bytes, "__wbindgen") {
        bail!(
            "{} is not a wasm-bindgen module without the C ABI: the `js` build is stale or broken",
            built.display()
        );
    }
    let built_arg = built.to_string_lossy().into_owned();
    let js_dir = out.join("js");
    let web_dir = out.join("web");
    for (target, dir) in [("nodejs", &js_dir), ("web", &web_dir)] {
        let dir_arg = dir.to_string_lossy().into_owned();
        ctx.step(
            &format!("wasm-bindgen --target {target}"),
            ctx.cmd(
                &tools.wasm_bindgen,
                &["--target", target, "--out-dir", &dir_arg, &built_arg],
            ),
        )?;
    }

    let wasm = Wasm {
        abi,
        js_dir,
        web_dir,
    };
    print_sizes(ctx, &wasm)?;
    Ok(wasm)
}

pub(crate) fn gzipped_len(bytes: &[u8]) -> Result<usize> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes)?;
    Ok(gz.finish()?.len())
}

pub(crate) fn kib(n: usize) -> String {
    format!("{:.1} KiB", n as f64 / 1024.0)
}

fn print_sizes(ctx: &Ctx, wasm: &Wasm) -> Result<()> {
    let files = [
        wasm.abi.clone(),
        wasm.js_dir.join("bunting_core_bg.wasm"),
        wasm.js_dir.join("bunting_core.js"),
        wasm.web_dir.join("bunting_core_bg.wasm"),
        wasm.web_dir.join("bunting_core.js"),
    ];
    ctx.section("sizes");
    println!("  {:<48} {:>12} {:>12}", "artifact", "raw", "gzip -9");
    for f in &files {
        let bytes = read(f)?;
        println!(
            "  {:<48} {:>12} {:>12}",
            rel(f, &ctx.root),
            kib(bytes.len()),
            kib(gzipped_len(&bytes)?)
        );
    }
    Ok(())
}
