//! `cargo xtask setup`: idempotent installs. Every check runs first and only
//! what is missing (or at the wrong version) is installed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::util::{Ctx, TARGET, find_tool, rel, version_of};

/// Directories that may hold a `package.json` the project needs installed.
const NODE_PACKAGE_DIRS: &[&str] = &[".", "console", "edge-worker", "examples/node", "hosts/node"];

/// Oldest Node.js the tools run on: wasm-bindgen's output and test runner
/// need 18, wrangler 4.86 and @openfeature/server-sdk (tests/edge/) need 20.
const MIN_NODE_MAJOR: u32 = 20;

/// The tools later steps run.
pub(crate) struct Tools {
    pub wasm_bindgen: PathBuf,
    pub test_runner: PathBuf,
    pub node: PathBuf,
    /// The Python host's virtualenv interpreter (`target/python-venv`).
    pub python: PathBuf,
}

pub(crate) fn run(ctx: &Ctx) -> Result<Tools> {
    ctx.section("setup");
    let start = Instant::now();
    rust_target(ctx)?;
    rust_components(ctx)?;
    let (wasm_bindgen, test_runner) = wasm_bindgen(ctx)?;
    let node = node(ctx)?;
    let python = crate::hosts::python(ctx)?;
    ctx.record("setup", start.elapsed());
    Ok(Tools {
        wasm_bindgen,
        test_runner,
        node,
        python,
    })
}

fn rust_target(ctx: &Ctx) -> Result<()> {
    if let Some(rustup) = find_tool("rustup") {
        let installed = ctx.capture(ctx.cmd(&rustup, &["target", "list", "--installed"]))?;
        if installed.lines().any(|l| l.trim() == TARGET) {
            println!("ok: Rust target {TARGET} is installed");
            return Ok(());
        }
        return ctx.step(
            &format!("install Rust target {TARGET}"),
            ctx.cmd(&rustup, &["target", "add", TARGET]),
        );
    }
    // No rustup: the toolchain must already ship the target.
    let sysroot = ctx.capture(ctx.cmd("rustc", &["--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib/rustlib").join(TARGET);
    if lib.is_dir() {
        println!("ok: Rust target {TARGET} is installed (no rustup)");
        Ok(())
    } else {
        bail!(
            "the Rust target {TARGET} is missing and rustup is not available to install it; \
             install Rust with rustup (https://rustup.rs) or add the target to your toolchain"
        )
    }
}

fn rust_components(ctx: &Ctx) -> Result<()> {
    let has = |sub: &str| {
        ctx.cargo(&[sub, "--version"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")]
        .into_iter()
        .filter(|(sub, _)| !has(sub))
        .map(|(_, component)| component)
        .collect();
    if missing.is_empty() {
        println!("ok: rustfmt and clippy are installed");
        return Ok(());
    }
    let Some(rustup) = find_tool("rustup") else {
        bail!("missing Rust components {missing:?} and no rustup to install them");
    };
    let mut args = vec!["component", "add"];
    args.extend(&missing);
    ctx.step(
        &format!("install Rust components {}", missing.join(", ")),
        ctx.cmd(rustup, &args),
    )
}

/// The version of package `name` recorded in `Cargo.lock`.
fn locked_version(ctx: &Ctx, name: &str) -> Result<String> {
    let path = ctx.root.join("Cargo.lock");
    let lock =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let wanted = format!("name = \"{name}\"");
    let mut versions: Vec<String> = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == wanted
            && let Some(v) = lines
                .next()
                .and_then(|l| l.trim().strip_prefix("version = \""))
                .and_then(|l| l.strip_suffix('"'))
        {
            versions.push(v.to_string());
        }
    }
    match versions.as_slice() {
        [v] => Ok(v.clone()),
        [] => bail!("Cargo.lock records no `{name}` package"),
        _ => bail!("Cargo.lock records several versions of `{name}`: {versions:?}"),
    }
}

/// Installed `tool` at exactly `version`, if any.
fn tool_at(tool: &str, version: &str) -> Option<PathBuf> {
    let path = find_tool(tool)?;
    let reported = version_of(&path)?;
    // e.g. "wasm-bindgen 0.2.130" or "wasm-bindgen-test-runner 0.2.130"
    (reported.split_whitespace().nth(1) == Some(version)).then_some(path)
}

fn wasm_bindgen(ctx: &Ctx) -> Result<(PathBuf, PathBuf)> {
    let version = locked_version(ctx, "wasm-bindgen")?;
    let present = || {
        Some((
            tool_at("wasm-bindgen", &version)?,
            tool_at("wasm-bindgen-test-runner", &version)?,
        ))
    };
    if let Some(found) = present() {
        println!("ok: wasm-bindgen-cli {version} is installed (matches Cargo.lock)");
        return Ok(found);
    }
    if let Some(other) = find_tool("wasm-bindgen").and_then(|p| version_of(&p)) {
        println!("found {other}, but Cargo.lock needs wasm-bindgen {version}");
    }
    // Not `--locked`: one of the CLI's locked dependencies (webpki-roots
    // 1.0.11) has been yanked from the registry, so a locked install fails.
    ctx.step(
        &format!("install wasm-bindgen-cli {version}"),
        ctx.cargo(&["install", "wasm-bindgen-cli", "--version", &version]),
    )?;
    present().with_context(|| {
        format!(
            "wasm-bindgen-cli {version} was installed but `wasm-bindgen` / `wasm-bindgen-test-runner` \
             {version} are not on PATH or in $CARGO_HOME/bin"
        )
    })
}

fn node(ctx: &Ctx) -> Result<PathBuf> {
    let hint = format!(
        "Node.js {MIN_NODE_MAJOR}+ is required (wasm-bindgen-test-runner, examples/node and tests/edge run \
         under it); install it with your package manager, e.g. `apt-get install nodejs npm`"
    );
    let node = find_tool("node").with_context(|| hint.clone())?;
    let version = version_of(&node).with_context(|| hint.clone())?;
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("cannot read the Node.js version {version:?}"))?;
    if major < MIN_NODE_MAJOR {
        bail!("found Node.js {version}; {hint}");
    }
    println!("ok: Node.js {version}");

    let mut any = false;
    for dir in NODE_PACKAGE_DIRS {
        let dir = ctx.root.join(dir);
        if dir.join("package.json").is_file() {
            any = true;
            npm_install(ctx, &dir)?;
        }
    }
    if !any {
        println!("ok: no node packages to install (no package.json)");
    }
    Ok(node)
}

fn npm_install(ctx: &Ctx, dir: &Path) -> Result<()> {
    let where_ = rel(dir, &ctx.root).into_owned();
    let where_ = if where_.is_empty() {
        ".".into()
    } else {
        where_
    };
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let fresh = match (
        mtime(&installed),
        mtime(&lock),
        mtime(&dir.join("package.json")),
    ) {
        (Some(i), Some(l), Some(p)) => i >= l && i >= p,
        _ => false,
    };
    if fresh {
        println!("ok: node packages in {where_} are installed");
        return Ok(());
    }
    let npm = find_tool("npm").context("npm is required to install node packages")?;
    let args: &[&str] = if lock.is_file() {
        &["ci", "--no-audit", "--no-fund"]
    } else {
        &["install", "--no-audit", "--no-fund"]
    };
    let mut cmd = ctx.cmd(npm, args);
    cmd.current_dir(dir);
    ctx.step(&format!("install node packages in {where_}"), cmd)
}
