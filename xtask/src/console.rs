//! `cargo xtask console`: the web console (`console/`, Preact + Vite) built
//! into `console/dist/`, which `bunting serve` embeds: the API types are
//! generated from `docs/openapi.json` and type-checked (an API change that
//! breaks the console fails here), the engine is the core's web WebAssembly
//! build. Then its browser tests (`tests/console/`, Debian's Chromium driven
//! by playwright-core against a real `bunting serve`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::setup::Tools;
use crate::util::{Ctx, find_tool, rel};
use crate::wasm::{Wasm, gzipped_len, kib};

/// The console's package and its build output.
const CONSOLE_DIR: &str = "console";
const DIST_DIR: &str = "console/dist";

/// Debian's Chromium, which the browser tests drive.
pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// Builds the console into `console/dist/` and prints the bundle's sizes.
pub(crate) fn build(ctx: &Ctx, wasm: &Wasm) -> Result<PathBuf> {
    let npm = find_tool("npm").context("npm is required to build the console")?;
    let mut cmd = ctx.cmd(npm, &["run", "--silent", "build"]);
    cmd.current_dir(ctx.root.join(CONSOLE_DIR))
        .env("BUNTING_WASM_WEB", &wasm.web_dir)
        .env("NO_COLOR", "1");
    ctx.step("build the console (openapi-typescript, tsc, vite)", cmd)?;
    let dist = ctx.root.join(DIST_DIR);
    print_sizes(ctx, &dist)?;
    Ok(dist)
}

/// The files of `console/dist/`, raw and gzipped, and what the first page
/// loads (the HTML, the entry script and the stylesheet).
fn print_sizes(ctx: &Ctx, dist: &Path) -> Result<()> {
    let index = std::fs::read_to_string(dist.join("index.html"))
        .with_context(|| format!("reading {}/index.html", dist.display()))?;
    let mut files: Vec<PathBuf> = vec![dist.join("index.html")];
    let assets = dist.join("assets");
    let mut names: Vec<_> = std::fs::read_dir(&assets)
        .with_context(|| format!("reading {}", assets.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        // The precompressed copies (`npm run build` writes them) are what the
        // gzip column measures.
        .filter(|p| p.extension().is_none_or(|x| x != "gz"))
        .collect();
    names.sort();
    files.extend(names);
    ctx.section("console bundle size");
    println!("  {:<52} {:>12} {:>12}", "file", "raw", "gzip -9");
    let (mut first_raw, mut first_gz) = (0, 0);
    for f in &files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let gz = gzipped_len(&bytes)?;
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name == "index.html" || index.contains(&format!("/assets/{name}")) {
            first_raw += bytes.len();
            first_gz += gz;
        }
        println!(
            "  {:<52} {:>12} {:>12}",
            rel(f, &ctx.root),
            kib(bytes.len()),
            kib(gz)
        );
    }
    println!(
        "  {:<52} {:>12} {:>12}",
        "first page (HTML + entry script + CSS)",
        kib(first_raw),
        kib(first_gz)
    );
    Ok(())
}

/// Debian's Chromium, installed with apt-get when missing (as root, or
/// through `sudo -n`); the browser tests need it.
pub(crate) fn chromium(ctx: &Ctx) -> Result<PathBuf> {
    let path = PathBuf::from(std::env::var("BUNTING_CHROMIUM").unwrap_or_else(|_| CHROMIUM.into()));
    if path.exists() {
        println!("ok: Chromium at {}", path.display());
        return Ok(path);
    }
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let sudo = !root && find_tool("sudo").is_some();
    if !root && !sudo {
        bail!(
            "{} is missing and this user cannot install it: run `apt-get install chromium` as root \
             (or point BUNTING_CHROMIUM at a Chromium)",
            path.display()
        );
    }
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = ctx.cmd("sudo", &["-n", "apt-get"]);
            c.args(args);
            c
        } else {
            ctx.cmd("apt-get", args)
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    };
    ctx.step("apt-get update", apt(&["update", "-qq"]))?;
    ctx.step(
        "install Debian's chromium (the console's browser tests)",
        apt(&[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
        ]),
    )?;
    if !path.exists() {
        bail!(
            "apt-get installed chromium but {} is still missing",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `tests/console/*.test.mjs` (node:test, playwright-core, a real
/// `bunting serve` built at `target/debug/bunting`, the edge worker in workerd).
pub(crate) fn test(ctx: &Ctx, tools: &Tools, chromium: &Path) -> Result<()> {
    let dir = ctx.root.join("tests/console");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".test.mjs"))
        .map(|n| format!("tests/console/{n}"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no tests/console/*.test.mjs");
    }
    // The binary `cargo test --workspace` built (tests/edge/ uses it too): a
    // `cargo build -p bunting-origin` here would unify features differently
    // and rebuild much of the dependency tree.
    let bin = ctx.target_dir.join("debug").join("bunting");
    if !bin.exists() {
        bail!(
            "{} is missing: `cargo test --workspace` (cargo xtask test) builds it",
            bin.display()
        );
    }
    // One file at a time: each starts an origin, a worker and a browser.
    let mut args = vec!["--test", "--test-reporter=spec", "--test-concurrency=1"];
    args.extend(files.iter().map(String::as_str));
    let mut cmd = ctx.cmd(&tools.node, &args);
    crate::edge::offline_env(ctx, &mut cmd, tools);
    cmd.env("BUNTING_CHROMIUM", chromium)
        .env("BUNTING_BIN", bin);
    ctx.step(
        "console browser tests (node --test tests/console/, Chromium)",
        cmd,
    )
}

/// `cargo xtask console-bench`: the console with 1,000 flags and 100
/// experiments in Chromium against a release `bunting serve` that embeds it
/// (`tests/console/bench.mjs`); prints medians and p90s.
pub(crate) fn bench(ctx: &Ctx, tools: &Tools, wasm: &Wasm) -> Result<()> {
    build(ctx, wasm)?;
    let chromium = chromium(ctx)?;
    ctx.step(
        "build the origin (bunting, release)",
        ctx.cargo(&[
            "build",
            "--release",
            "--quiet",
            "-p",
            "bunting-origin",
            "--bin",
            "bunting",
        ]),
    )?;
    let mut cmd = ctx.cmd(&tools.node, &["tests/console/bench.mjs"]);
    crate::edge::offline_env(ctx, &mut cmd, tools);
    cmd.env("BUNTING_CHROMIUM", chromium).env(
        "BUNTING_BIN",
        ctx.target_dir.join("release").join("bunting"),
    );
    ctx.step("console benchmark (tests/console/bench.mjs, Chromium)", cmd)
}
