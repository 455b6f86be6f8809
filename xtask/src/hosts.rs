//! The embedding hosts (`hosts/`): the Python virtualenv they test in, and
//! building, packaging and testing the Node and Python packages. The Rust
//! host (`hosts/rust`, crate `bunting-server-sdk`) is a workspace member and
//! runs with `cargo test --workspace`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::setup::Tools;
use crate::util::{Ctx, find_tool, rel};
use crate::wasm::Wasm;

/// The Python package's pinned development requirements.
const PY_REQUIREMENTS: &str = "hosts/python/requirements-dev.txt";

/// The virtualenv the Python host is built and tested in, under the target
/// directory (so a clean clone starts without one and `cargo clean` drops it).
fn venv_dir(ctx: &Ctx) -> PathBuf {
    ctx.target_dir.join("python-venv")
}

/// Creates the virtualenv and installs the pinned requirements into it when
/// they changed since the last install; returns its `python`.
pub(crate) fn python(ctx: &Ctx) -> Result<PathBuf> {
    let requirements = ctx.root.join(PY_REQUIREMENTS);
    let venv = venv_dir(ctx);
    let python = venv.join("bin").join("python");
    if !requirements.is_file() {
        println!("ok: no Python host ({PY_REQUIREMENTS} absent)");
        return Ok(python);
    }
    if !python.is_file() {
        let system = find_tool("python3").context(
            "Python 3.9+ is required for the Python host (hosts/python); install python3 with venv",
        )?;
        let mut cmd = ctx.cmd(&system, &["-m", "venv"]);
        cmd.arg(&venv);
        ctx.step(
            &format!("create the Python virtualenv {}", rel(&venv, &ctx.root)),
            cmd,
        )?;
    }
    let stamp = venv.join(".requirements-installed");
    let mtime = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    if matches!((mtime(&stamp), mtime(&requirements)), (Some(s), Some(r)) if s >= r) {
        println!("ok: Python packages of {PY_REQUIREMENTS} are installed");
        return Ok(python);
    }
    let mut cmd = ctx.cmd(
        &python,
        &[
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "-r",
            PY_REQUIREMENTS,
        ],
    );
    cmd.env("PIP_NO_INPUT", "1");
    ctx.step(
        &format!("install the Python packages of {PY_REQUIREMENTS}"),
        cmd,
    )?;
    std::fs::write(&stamp, b"").with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

/// Where the packages are written: `target/hosts/`.
fn dist_dir(ctx: &Ctx) -> PathBuf {
    ctx.target_dir.join("hosts")
}

/// Builds the hosts' packages from the engine in `wasm` and writes the
/// publishable artifacts into `target/hosts/`: the npm tarball, the wheel
/// and the Rust crates (`bunting-server-sdk` and the crates it needs).
pub(crate) fn build(ctx: &Ctx, tools: &Tools, wasm: &Wasm) -> Result<Vec<PathBuf>> {
    let dist = dist_dir(ctx);
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    let npm = find_tool("npm").context("npm is required to build the Node host")?;
    let node_dir = ctx.root.join("hosts/node");
    let mut cmd = ctx.cmd(&npm, &["run", "build"]);
    cmd.current_dir(&node_dir)
        .env("BUNTING_TARGET_DIR", &ctx.target_dir);
    ctx.step("build the Node host (hosts/node: wasm + tsc)", cmd)?;
    // `npm run build` just ran: skip the `prepack` script's second build.
    let mut cmd = ctx.cmd(
        &npm,
        &["pack", "--silent", "--ignore-scripts", "--pack-destination"],
    );
    cmd.arg(&dist).current_dir(&node_dir);
    ctx.step("pack the Node host (npm pack)", cmd)?;

    let mut cmd = ctx.cmd(
        &tools.python,
        &["-m", "build", "--wheel", "--no-isolation", "--outdir"],
    );
    cmd.arg(&dist)
        .arg(ctx.root.join("hosts/python"))
        .env("BUNTING_CORE_WASM", &wasm.abi);
    ctx.step("build the Python host's wheel (hosts/python)", cmd)?;

    // The Rust crates, the module inside the SDK's (`hosts/rust/build.rs`
    // embeds it when the package carries it). The copy is removed again so
    // that builds from the repository keep using target/wasm/.
    let embedded = ctx.root.join("hosts/rust/wasm/bunting_core_abi.wasm");
    std::fs::create_dir_all(embedded.parent().expect("a file in a directory"))?;
    std::fs::copy(&wasm.abi, &embedded)
        .with_context(|| format!("copying {} to {}", wasm.abi.display(), embedded.display()))?;
    let packaged = ctx.step(
        "package the Rust crates (cargo package, the module inside bunting-server-sdk)",
        ctx.cargo(&[
            "package",
            "--no-verify",
            "--allow-dirty",
            "-p",
            "bunting-core",
            "-p",
            "bunting-wire",
            "-p",
            "bunting-wasm-host",
            "-p",
            "bunting-server-sdk",
        ]),
    );
    std::fs::remove_file(&embedded).with_context(|| format!("removing {}", embedded.display()))?;
    packaged?;
    for krate in [
        "bunting-core",
        "bunting-wire",
        "bunting-wasm-host",
        "bunting-server-sdk",
    ] {
        let name = format!("{krate}-{}.crate", env!("CARGO_PKG_VERSION"));
        let from = ctx.target_dir.join("package").join(&name);
        std::fs::copy(&from, dist.join(&name))
            .with_context(|| format!("copying {}", from.display()))?;
    }

    let mut artifacts: Vec<PathBuf> = std::fs::read_dir(&dist)
        .with_context(|| format!("reading {}", dist.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "tgz" || x == "whl" || x == "crate")
        })
        .collect();
    artifacts.sort();
    if artifacts.is_empty() {
        bail!("no package was written into {}", dist.display());
    }
    ctx.section("host packages");
    for a in &artifacts {
        let len = a.metadata().map(|m| m.len()).unwrap_or(0);
        println!(
            "  {:<64} {:>8.1} KiB",
            rel(a, &ctx.root),
            len as f64 / 1024.0
        );
    }
    Ok(artifacts)
}

/// Runs the Node and Python hosts' tests (conformance, differential against
/// native, failures, end to end against `target/debug/bunting`), which need
/// what `cargo test --workspace` built.
pub(crate) fn test(ctx: &Ctx, tools: &Tools) -> Result<()> {
    let bin = ctx.target_dir.join("debug").join("bunting");
    let evaluate = ctx.target_dir.join("debug/examples/evaluate");
    for needed in [&bin, &evaluate] {
        if !needed.exists() {
            bail!(
                "{} is missing: `cargo test --workspace` (cargo xtask test) builds it",
                needed.display()
            );
        }
    }
    let npm = find_tool("npm").context("npm is required to test the Node host")?;
    let mut cmd = ctx.cmd(&npm, &["test"]);
    cmd.current_dir(ctx.root.join("hosts/node"))
        .env("BUNTING_BIN", &bin)
        .env("BUNTING_TARGET_DIR", &ctx.target_dir);
    ctx.step("Node host tests (hosts/node, node --test)", cmd)?;

    let mut cmd = ctx.cmd(
        &tools.python,
        &["-m", "pytest", "-q", "-p", "no:cacheprovider"],
    );
    cmd.current_dir(ctx.root.join("hosts/python"));
    cmd.env("BUNTING_BIN", &bin)
        .env("BUNTING_TARGET_DIR", &ctx.target_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    ctx.step("Python host tests (hosts/python, pytest)", cmd)
}
