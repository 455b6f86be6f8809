//! `cargo xtask edge-bench`: builds the edge worker (as `cargo xtask edge`),
//! then runs `tests/edge/bench.mjs`, which serves it in workerd through
//! miniflare on 127.0.0.1 with a 1,000-flag snapshot in KV and prints the
//! bundle size, snapshot cold-load time and single/bulk evaluation latency
//! (p50/p99/p99.9) and requests/s measured with autocannon. A benchmark, not
//! a test: it reports the targets (p99 <= 2 ms, bundle <= 400 KB gzipped) as
//! PASS/MISS and fails only if the worker cannot be built or answers wrongly.
//! Figures and analysis: `docs/performance.md`.

use anyhow::Result;

use crate::edge;
use crate::setup::Tools;
use crate::util::Ctx;

/// The benchmark script, relative to the workspace root.
const SCRIPT: &str = "tests/edge/bench.mjs";

pub(crate) fn run(ctx: &Ctx, tools: &Tools) -> Result<()> {
    edge::build(ctx, tools)?;
    let json = ctx.target_dir.join("edge-bench.json");
    let mut cmd = ctx.cmd(&tools.node, &[SCRIPT]);
    edge::offline_env(ctx, &mut cmd, tools);
    cmd.env("BENCH_JSON", &json);
    ctx.step(
        "edge benchmark (workerd via miniflare on 127.0.0.1, autocannon)",
        cmd,
    )
}
