//! bunting's project automation, run through the `cargo xtask` alias
//! (`.cargo/config.toml`):
//!
//! | command | what it does |
//! |---|---|
//! | `cargo xtask setup` | installs what the other commands need, idempotently: the `wasm32-unknown-unknown` target, rustfmt and clippy, `wasm-bindgen-cli` at the version in `Cargo.lock`, node packages |
//! | `cargo xtask console` | builds the web console (`console/`) into `console/dist/`, which `bunting serve` embeds, and prints its bundle size |
//! | `cargo xtask console-bench` | the console with 1,000 flags and 100 experiments, measured in Chromium (`tests/console/bench.mjs`) |
//! | `cargo xtask wasm` | builds `bunting-core` for WebAssembly twice: the C ABI module for wasmtime and the wasm-bindgen package for Node, browsers and workers |
//! | `cargo xtask demo` | evaluates `examples/demo-snapshot.json` for the users of `examples/demo-contexts.json` natively, through wasmtime and through Node (fails if the builds disagree), then serves `examples/flags.yaml` from the edge worker under `wrangler dev` and evaluates a flag over HTTP |
//! | `cargo xtask edge` | builds the Cloudflare Worker (`edge-worker/`) with worker-build, offline, and prints its size |
//! | `cargo xtask edge-bench` | builds the worker, then benchmarks it in workerd on loopback (`tests/edge/bench.mjs`): bundle size, snapshot cold load, single/bulk latency and requests/s |
//! | `cargo xtask hosts` | builds the embedding hosts' packages (`hosts/`): the npm tarball of `@bunting/server-sdk` and the wheel of `bunting-server-sdk`, each with the engine inside, into `target/hosts/` |
//! | `cargo xtask test` | formatting, clippy, rustdoc without warnings, every native test, the conformance suite under Node (wasm-bindgen-test), the demo's three-way comparison, and the edge worker's tests in workerd (miniflare) |
//!
//! Plain `std` plus `anyhow`, `serde_json` and `flate2`, so it compiles in
//! seconds on a fresh CI machine; and `walrus` (with `wasmparser` and
//! `gimli`), the edge worker's post-link trim (`bindgen_trim`), the one
//! heavier dependency.

mod bench;
mod bindgen_trim;
mod console;
mod demo;
mod edge;
mod hosts;
mod setup;
mod util;
mod wasm;

use std::process::ExitCode;

use anyhow::{Result, bail};

use util::Ctx;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup   install the wasm32 target, rustfmt/clippy, wasm-bindgen-cli (version from Cargo.lock),
          node packages and Debian's chromium (the console's browser tests); does nothing for
          what is already there
  wasm    setup, then build bunting-core to WebAssembly:
            target/wasm/bunting_core_abi.wasm   C ABI module (wasmtime, bunting-wasm-host)
            target/wasm/js/                     wasm-bindgen package for Node (CommonJS)
            target/wasm/web/                    wasm-bindgen package for browsers and workers (ES module)
  console setup + wasm, then build the web console (console/: openapi-typescript types from
          docs/openapi.json, tsc, vite) into console/dist/, which `bunting serve` embeds at /;
          prints the bundle size
  demo    setup + wasm + console, then evaluate the demo flags (examples/) natively, through wasmtime and
          through Node; prints the results and fails if the three builds disagree. Then builds
          the edge worker, seeds wrangler's local KV from examples/flags.yaml (bunting publish
          --local, SDK key demo-sdk-key), starts wrangler dev on 127.0.0.1:8787
          (BUNTING_EDGE_PORT) and evaluates a flag with it; keeps it running until Ctrl-C in a
          terminal, stops it with CI set or no terminal on stdin. BUNTING_DEMO_EDGE=0: no edge
  hosts   setup + wasm, then build the embedding hosts' packages into target/hosts/: the npm
          package @bunting/server-sdk (hosts/node: wasm-bindgen engine + tsc, npm pack) and the
          Python wheel bunting-server-sdk (hosts/python: the C-ABI module inside); the Rust host
          is the workspace crate bunting-server-sdk (hosts/rust). See docs/hosts.md
  edge    setup (+ worker-build 0.8.7), then build the Cloudflare Worker (edge-worker/) into
          edge-worker/build/ with worker-build, offline; prints its size.
          BUNTING_EDGE_FEATURES=json-snapshots: a worker that reads JSON snapshot values too
  edge-bench
          edge, then benchmark the worker in workerd on 127.0.0.1 (tests/edge/bench.mjs): bundle
          size, snapshot cold load, single/bulk latency p50/p99 and requests/s (autocannon),
          compared with the targets; see docs/performance.md
  console-bench
          console, then measure it in Chromium against a release `bunting serve` holding 1,000
          flags and 100 experiments (tests/console/bench.mjs); see docs/performance.md
  test    setup + wasm + console, then cargo fmt --check, clippy and rustdoc (-D warnings), cargo test --workspace,
          the wasm-bindgen-test conformance suite under Node, the demo comparison, and the
          edge worker: build + node --test tests/edge/ (OFREP over HTTP in workerd via miniflare),
          the console in Chromium (node --test tests/console/, playwright-core), and the Node and
          Python hosts (hosts/: packages built, node --test and pytest in target/python-venv)
";

fn run(command: &str, ctx: &Ctx) -> Result<()> {
    match command {
        "setup" => {
            setup::run(ctx)?;
            console::chromium(ctx).map(drop)
        }
        "console" => {
            let tools = setup::run(ctx)?;
            let wasm = wasm::build(ctx, &tools)?;
            console::build(ctx, &wasm).map(drop)
        }
        "wasm" => {
            let tools = setup::run(ctx)?;
            wasm::build(ctx, &tools).map(drop)
        }
        "demo" => {
            let tools = setup::run(ctx)?;
            let wasm = wasm::build(ctx, &tools)?;
            console::build(ctx, &wasm)?;
            demo::run(ctx, &tools, &wasm)
        }
        "hosts" => {
            let tools = setup::run(ctx)?;
            let wasm = wasm::build(ctx, &tools)?;
            hosts::build(ctx, &tools, &wasm).map(drop)
        }
        "edge" => {
            let tools = setup::run(ctx)?;
            edge::build(ctx, &tools).map(drop)
        }
        "edge-bench" => {
            let tools = setup::run(ctx)?;
            bench::run(ctx, &tools)
        }
        "console-bench" => {
            let tools = setup::run(ctx)?;
            let wasm = wasm::build(ctx, &tools)?;
            console::bench(ctx, &tools, &wasm)
        }
        "test" => test(ctx),
        other => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// Every check, cheapest first, stopping at the first failure.
fn test(ctx: &Ctx) -> Result<()> {
    let tools = setup::run(ctx)?;
    let chromium = console::chromium(ctx)?;
    let wasm = wasm::build(ctx, &tools)?;
    // Before any Rust build: `bunting serve` embeds console/dist.
    console::build(ctx, &wasm)?;

    ctx.step("rustfmt", ctx.cargo(&["fmt", "--all", "--check"]))?;
    ctx.step(
        "clippy (native, every target)",
        ctx.cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    ctx.step(
        "clippy (bunting-core for wasm32, features js + abi)",
        ctx.cargo(&[
            "clippy",
            "-p",
            "bunting-core",
            "--target",
            util::TARGET,
            "--features",
            "js,abi",
            "--lib",
            "--test",
            "wasm_conformance",
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    ctx.step(
        "clippy (bunting-edge-worker for wasm32: the Workers glue)",
        ctx.cargo(&[
            "clippy",
            "-p",
            "bunting-edge-worker",
            "--target",
            util::TARGET,
            "--lib",
            "--",
            "-D",
            "warnings",
        ]),
    )?;

    // The API docs: broken intra-doc links and the like fail the build.
    let mut doc = ctx.cargo(&["doc", "--workspace", "--no-deps"]);
    doc.env("RUSTDOCFLAGS", "-D warnings");
    ctx.step("rustdoc (every crate, -D warnings)", doc)?;

    let mut native = ctx.cargo(&["test", "--workspace"]);
    native.env("BUNTING_CORE_WASM", &wasm.abi);
    ctx.step("cargo test --workspace (native, wasmtime)", native)?;
    // The edge worker's JSON reader and its tests exist only with this
    // feature, which `--workspace` does not turn on.
    ctx.step(
        "cargo test -p bunting-edge-worker --features json-snapshots",
        ctx.cargo(&[
            "test",
            "-p",
            "bunting-edge-worker",
            "--features",
            "json-snapshots",
            "--lib",
        ]),
    )?;

    let mut node = ctx.cargo(&[
        "test",
        "-p",
        "bunting-core",
        "--target",
        util::TARGET,
        "--features",
        "js",
        "--test",
        "wasm_conformance",
    ]);
    node.env(
        "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER",
        &tools.test_runner,
    );
    ctx.step("conformance suite under Node (wasm-bindgen-test)", node)?;

    ctx.section("demo: native vs wasmtime vs Node");
    demo::compare_builds(ctx, &tools, &wasm)?;

    edge::build(ctx, &tools)?;
    edge::test(ctx, &tools)?;
    console::test(ctx, &tools, &chromium)?;

    hosts::build(ctx, &tools, &wasm)?;
    hosts::test(ctx, &tools)
}

fn main() -> ExitCode {
    // Run by worker-build as its wasm-bindgen (`cargo xtask edge`).
    if let Some(real) = std::env::var_os(bindgen_trim::REAL_VAR) {
        return bindgen_trim::wrapper(std::path::Path::new(&real));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args.as_slice() {
        [c] if !matches!(c.as_str(), "-h" | "--help" | "help") => c.clone(),
        [] | [_] => {
            print!("{USAGE}");
            return if args.is_empty() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
        _ => {
            eprint!("cargo xtask takes exactly one command\n\n{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    let result = Ctx::new().and_then(|ctx| {
        let r = run(&command, &ctx);
        ctx.print_timings();
        r
    });
    match result {
        Ok(()) => {
            println!("\ncargo xtask {command}: OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ncargo xtask {command}: FAILED\n{e:#}");
            ExitCode::FAILURE
        }
    }
}
