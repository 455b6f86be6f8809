//! `cargo xtask demo`: the demo flags of `examples/` evaluated by the three
//! builds of the one evaluator — native Rust, the C ABI module in wasmtime and
//! the wasm-bindgen package in Node — which must agree on every field — and
//! then the edge worker under `wrangler dev`, its local KV seeded from
//! `examples/flags.yaml` by `bunting publish --local`, answering one real
//! evaluation; it keeps running until Ctrl-C in a terminal, and is stopped
//! right away in CI or without a terminal on stdin.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value};

use crate::setup::Tools;
use crate::util::{Ctx, show};
use crate::wasm::Wasm;

const SNAPSHOT: &str = "examples/demo-snapshot.json";
const CONTEXTS: &str = "examples/demo-contexts.json";
const NODE_SCRIPT: &str = "examples/node/evaluate.cjs";

/// Evaluation time of the demo, so its output is reproducible (the ramp of
/// `new-search` depends on it). `BUNTING_DEMO_NOW` overrides it (RFC 3339 or
/// Unix milliseconds).
const DEMO_NOW: &str = "2026-12-01T12:00:00Z";

/// Results of one build: user → flag → evaluation, flags in snapshot order.
type Results = BTreeMap<String, Vec<(String, Value)>>;

/// The three-way comparison alone (what `cargo xtask test` runs: its edge
/// tests already cover `wrangler dev`).
pub(crate) fn compare_builds(ctx: &Ctx, tools: &Tools, wasm: &Wasm) -> Result<()> {
    let now = std::env::var("BUNTING_DEMO_NOW").unwrap_or_else(|_| DEMO_NOW.to_string());
    let snapshot = ctx.root.join(SNAPSHOT);
    let contexts_path = ctx.root.join(CONTEXTS);
    let contexts: Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(&contexts_path)
            .with_context(|| format!("reading {}", contexts_path.display()))?,
    )
    .with_context(|| format!("{CONTEXTS} must map user names to contexts"))?;

    let (native_exe, wasmtime_exe) = build_examples(ctx)?;
    let start = Instant::now();
    let snapshot_arg = snapshot.to_string_lossy().into_owned();
    let contexts_arg = contexts_path.to_string_lossy().into_owned();

    // Native: one run evaluates every user.
    let native = ctx.capture(ctx.cmd(&native_exe, &[&snapshot_arg, &contexts_arg, &now]))?;
    let native = parse_batch("native", &native)?;

    // wasmtime: one run per user (`-` evaluates every flag), all at once:
    // each run compiles the module, which takes seconds in a debug build.
    let mut runs = Vec::new();
    for (user, context) in &contexts {
        let mut cmd = ctx.cmd(
            &wasmtime_exe,
            &[&snapshot_arg, "-", &context.to_string(), &now],
        );
        cmd.env("BUNTING_CORE_WASM", &wasm.abi)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .with_context(|| format!("could not start `{}`", show(&cmd)))?;
        runs.push((user, show(&cmd), child));
    }
    let mut wasmtime = Map::new();
    for (user, shown, child) in runs {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("`{shown}` failed ({})", out.status);
        }
        let value: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("wasmtime example printed invalid JSON for {user}"))?;
        // Accept a bare array or an `{"all": [...]}` reply.
        let value = match value {
            Value::Object(mut m) if m.contains_key("all") => m.remove("all").unwrap_or_default(),
            v => v,
        };
        wasmtime.insert(user.clone(), value);
    }
    let wasmtime = parse_batch("wasmtime", &Value::Object(wasmtime).to_string())?;

    // Node: the wasm-bindgen package.
    let mut cmd = ctx.cmd(
        &tools.node,
        &[NODE_SCRIPT, &snapshot_arg, &contexts_arg, &now],
    );
    cmd.env("BUNTING_CORE_JS", wasm.js_dir.join("bunting_core.js"));
    let node = ctx.capture(cmd)?;
    let node = parse_batch("node", &node)?;
    ctx.record("demo: evaluate with the three builds", start.elapsed());

    println!("\nsnapshot {SNAPSHOT}, users {CONTEXTS}, now = {now}\n");
    let builds = [
        ("native (core/examples/evaluate.rs)", &native),
        (
            "wasmtime (wasm-host/examples/eval.rs, target/wasm/bunting_core_abi.wasm)",
            &wasmtime,
        ),
        ("Node (examples/node/evaluate.cjs, target/wasm/js)", &node),
    ];
    for (name, results) in builds {
        println!("--- {name}");
        print_table(results);
        println!();
    }
    compare(&builds)
}

/// Builds the native and wasmtime example binaries and returns their paths.
/// `--workspace` keeps features identical to `cargo test --workspace`, which
/// has usually built them already.
fn build_examples(ctx: &Ctx) -> Result<(PathBuf, PathBuf)> {
    let mut cmd = ctx.cargo(&[
        "build",
        "--workspace",
        "--examples",
        "--message-format=json-render-diagnostics",
    ]);
    ctx.section("build the demo programs");
    println!("$ {}", show(&cmd));
    let start = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("could not run cargo build")?;
    ctx.record("demo: build examples", start.elapsed());
    if !out.status.success() {
        bail!(
            "building the examples failed ({}).\nRe-run it with:\n  (cd {} && {})",
            out.status,
            ctx.root.display(),
            show(&cmd)
        );
    }
    let mut found: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(name), Some(exe)) = (msg["target"]["name"].as_str(), msg["executable"].as_str())
        else {
            continue;
        };
        let package = msg["package_id"].as_str().unwrap_or_default().to_string();
        found.insert((package, name.to_string()), PathBuf::from(exe));
    }
    let find = |package: &str, example: &str| {
        found
            .iter()
            .find(|((p, n), _)| n == example && p.contains(package))
            .map(|(_, exe)| exe.clone())
            .with_context(|| format!("cargo built no example `{example}` of {package}"))
    };
    Ok((find("/core#", "evaluate")?, find("wasm-host", "eval")?))
}

/// Parses `{"user": [evaluation, …]}`.
fn parse_batch(build: &str, text: &str) -> Result<Results> {
    let value: Value =
        serde_json::from_str(text).with_context(|| format!("{build} printed invalid JSON"))?;
    let Value::Object(users) = value else {
        bail!("{build}: expected an object of users, got {value}");
    };
    let mut out = Results::new();
    for (user, evaluations) in users {
        let Value::Array(evaluations) = evaluations else {
            bail!("{build}: {user}: expected an array of evaluations, got {evaluations}");
        };
        let mut flags = Vec::new();
        for e in evaluations {
            let key = e["key"]
                .as_str()
                .with_context(|| format!("{build}: {user}: an evaluation without a key: {e}"))?
                .to_string();
            flags.push((key, e));
        }
        out.insert(user, flags);
    }
    Ok(out)
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

fn print_table(results: &Results) {
    println!(
        "  {:<6} {:<22} {:<34} {:<13} {:<15} detail",
        "user", "flag", "value", "variant", "reason"
    );
    for (user, flags) in results {
        for (flag, e) in flags {
            let mut detail = Vec::new();
            for (field, label) in [
                ("ruleId", "rule"),
                ("prerequisiteFailed", "prerequisite failed"),
                ("errorCode", "error"),
            ] {
                if let Some(v) = e.get(field).filter(|v| !v.is_null()) {
                    detail.push(format!("{label} {}", cell(v)));
                }
            }
            let value = match &e["value"] {
                Value::String(s) => format!("{s:?}"),
                other => cell(other),
            };
            println!(
                "  {:<6} {:<22} {:<34} {:<13} {:<15} {}",
                user,
                flag,
                truncate(&value, 34),
                cell(&e["variant"]),
                cell(&e["reason"]),
                detail.join(", ")
            );
        }
    }
}

/// Numbers compared by value: JavaScript has no integer/float distinction, so
/// `1.0` from Rust and `1` from Node are the same answer.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Number(n) => n.as_f64().map_or_else(|| v.clone(), Value::from),
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), canonical(v))).collect())
        }
        other => other.clone(),
    }
}

/// The top-level fields where two evaluations differ.
fn differing_fields(a: Option<&Value>, b: Option<&Value>) -> String {
    let (Some(Value::Object(a)), Some(Value::Object(b))) = (a, b) else {
        return "missing in one build".into();
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let fields: Vec<&str> = keys
        .into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    format!("differs in {}", fields.join(", "))
}

fn compare(builds: &[(&str, &Results)]) -> Result<()> {
    let (base_name, base) = builds[0];
    let short = |name: &str| name.split_whitespace().next().unwrap_or(name).to_string();
    let mut diffs = Vec::new();
    let mut compared = 0;
    for (name, other) in &builds[1..] {
        let users: BTreeSet<&String> = base.keys().chain(other.keys()).collect();
        for user in users {
            let as_map = |r: &Results| -> BTreeMap<String, Value> {
                r.get(user)
                    .map(|flags| {
                        flags
                            .iter()
                            .map(|(k, v)| (k.clone(), canonical(v)))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (a, b) = (as_map(base), as_map(other));
            let flags: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for flag in flags {
                compared += 1;
                match (a.get(flag), b.get(flag)) {
                    (Some(x), Some(y)) if x == y => {}
                    (x, y) => diffs.push(format!(
                        "  {user} / {flag} ({}):\n    {:<9} {}\n    {:<9} {}",
                        differing_fields(x, y),
                        short(base_name),
                        x.map_or("(missing)".into(), Value::to_string),
                        short(name),
                        y.map_or("(missing)".into(), Value::to_string),
                    )),
                }
            }
        }
    }
    if compared == 0 {
        bail!("the demo evaluated nothing");
    }
    if !diffs.is_empty() {
        bail!(
            "the builds disagree on {} evaluation(s):\n{}",
            diffs.len(),
            diffs.join("\n")
        );
    }
    let users = base.len();
    let flags = base.values().map(Vec::len).max().unwrap_or(0);
    println!(
        "all three builds agree on every field of {users} users x {flags} flags \
         ({compared} comparisons against native)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The local stack: the origin (`bunting serve` on embedded SQLite, seeded
// from `examples/flags.yaml`) publishing through wrangler into the local KV
// of the edge worker under `wrangler dev`.

/// The definition file the origin is seeded with.
const FLAGS_FILE: &str = "examples/flags.yaml";
/// Organization and project the seed goes into.
const DEMO_ORG: &str = "demo";
const DEMO_PROJECT: &str = "demo";
/// The environment the demo evaluates, and its name at the edge.
const DEMO_ENV: &str = "production";
const EDGE_ENV: &str = "demo/demo/production";
/// The SDK key the origin registers for every seeded environment (only its
/// SHA-256 reaches KV).
const DEMO_SDK_KEY: &str = "demo-sdk-key";
/// The origin's bootstrap administrator token in the demo.
const DEMO_ADMIN_TOKEN: &str = "demo-admin-token";
/// The worker's `POINTER_SECRET` in the demo: the origin publishes each
/// snapshot to the environment's pointer (a Durable Object) with it.
const DEMO_POINTER_SECRET: &str = "demo-pointer-secret";
/// The publish target of the pointer (`bunting serve --edge-url`).
const POINTER_TARGET: &str = "edge-pointer";
/// wrangler's local state (KV, caches): project-local and gitignored
/// (`/.wrangler`), and wrangler's own default.
const PERSIST_TO: &str = ".wrangler/state";
/// wrangler from the root `package.json`.
const WRANGLER: &str = "node_modules/.bin/wrangler";
/// `BUNTING_EDGE_PORT` and `BUNTING_ORIGIN_PORT` override them.
const DEFAULT_PORT: u16 = 8787;
const DEFAULT_ORIGIN_PORT: u16 = 8080;
/// The flag and context of the example evaluation.
const EXAMPLE_FLAG: &str = "new-checkout";
const EXAMPLE_BODY: &str = r#"{"context":{"targetingKey":"user-1","email":"a@bunting.dev"}}"#;
/// How long `wrangler dev`, the origin or the first publication may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// `cargo xtask demo`: the three-way comparison, then the local stack.
/// `BUNTING_DEMO_EDGE=0` skips the stack.
pub(crate) fn run(ctx: &Ctx, tools: &Tools, wasm: &Wasm) -> Result<()> {
    compare_builds(ctx, tools, wasm)?;
    if std::env::var("BUNTING_DEMO_EDGE").is_ok_and(|v| v == "0") {
        println!("\nBUNTING_DEMO_EDGE=0: skipping the local stack (origin + wrangler dev)");
        return Ok(());
    }
    edge(ctx, tools)
}

/// Whether the demo may keep the stack running until Ctrl-C: a terminal on
/// stdin and no `CI`.
fn interactive() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    !ci && std::io::stdin().is_terminal()
}

/// Keeps wrangler (and every tool it starts) offline and non-interactive.
fn wrangler_env(cmd: &mut Command) {
    cmd.env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("WRANGLER_SEND_ERROR_REPORTS", "false")
        .env("WRANGLER_HIDE_BANNER", "true")
        .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
        .env("NO_COLOR", "1");
}

fn port_from_env(var: &str, default: u16) -> Result<u16> {
    let port = match std::env::var(var) {
        Ok(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("{var}={p:?} is not a port number"))?,
        Err(_) => default,
    };
    // Fail early and clearly rather than after the build.
    TcpListener::bind(("127.0.0.1", port)).with_context(|| {
        format!(
            "port {port} on 127.0.0.1 is in use; stop what uses it or choose another with {var}"
        )
    })?;
    Ok(port)
}

/// Builds the worker and the origin, starts the origin (seeded, publishing
/// into wrangler's local KV) and `wrangler dev`, evaluates one flag at the
/// edge, flips its kill switch through the origin's API and shows the edge
/// serving the change, with the curls that do the same. Then keeps both
/// running until Ctrl-C ([`interactive`]) or stops them.
fn edge(ctx: &Ctx, tools: &Tools) -> Result<()> {
    let port = port_from_env("BUNTING_EDGE_PORT", DEFAULT_PORT)?;
    let origin_port = port_from_env("BUNTING_ORIGIN_PORT", DEFAULT_ORIGIN_PORT)?;
    if !ctx.root.join(WRANGLER).exists() {
        bail!(
            "{WRANGLER} is missing: `npm ci` in the workspace root installs it (cargo xtask setup does)"
        );
    }
    crate::edge::build(ctx, tools)?;
    ctx.step(
        "build the origin (bunting)",
        ctx.cargo(&[
            "build",
            "--quiet",
            "-p",
            "bunting-origin",
            "--bin",
            "bunting",
        ]),
    )?;
    let interactive = interactive();

    // The origin, on a fresh SQLite file.
    let data = ctx.root.join("target").join("demo");
    let _ = std::fs::remove_dir_all(&data);
    // The pointers' local state (Durable Object storage) too: the fresh
    // origin counts versions from 1 again, and a pointer never goes back to
    // an older version than it holds.
    let _ = std::fs::remove_dir_all(ctx.root.join(PERSIST_TO).join("v3").join("do"));
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let db = format!("sqlite://{}", data.join("bunting.db").display());
    let listen = format!("127.0.0.1:{origin_port}");
    let edge_url = format!("http://127.0.0.1:{port}");
    let mut cmd = ctx.cargo(&[
        "run",
        "--quiet",
        "-p",
        "bunting-origin",
        "--bin",
        "bunting",
        "--",
        "serve",
        "--listen",
        &listen,
        "--database-url",
        &db,
        "--admin-token",
        DEMO_ADMIN_TOKEN,
        "--seed",
        FLAGS_FILE,
        "--seed-org",
        DEMO_ORG,
        "--seed-project",
        DEMO_PROJECT,
        "--seed-sdk-key",
        DEMO_SDK_KEY,
        "--publish-wrangler-local",
        "--persist-to",
        PERSIST_TO,
        "--wrangler",
        WRANGLER,
        // Each snapshot also goes to the environment's pointer at the edge
        // (the worker, once wrangler dev is up below): a change is served
        // within about a second, whatever KV does.
        "--edge-url",
        &edge_url,
        "--edge-pointer-secret",
        DEMO_POINTER_SECRET,
    ]);
    wrangler_env(&mut cmd);
    ctx.section(&format!(
        "start the origin: bunting serve on {listen} (SQLite {db})"
    ));
    println!("$ {}", show(&cmd));
    let start = Instant::now();
    let mut origin = DevServer::start("bunting serve", cmd, interactive)?;
    origin.wait_for(origin_port, "/readyz")?;
    ctx.record("demo: origin up (answers /readyz)", start.elapsed());
    let o = format!("http://{listen}");
    let status_path =
        format!("/api/v1/orgs/{DEMO_ORG}/projects/{DEMO_PROJECT}/environments/{DEMO_ENV}/publish");
    let auth = format!("Bearer {DEMO_ADMIN_TOKEN}");
    // The pointer waits for wrangler dev (below); KV has it now.
    let published = wait_published(
        &mut origin,
        origin_port,
        &status_path,
        &auth,
        &[POINTER_TARGET],
    )?;
    ctx.record("demo: first publication into local KV", start.elapsed());
    println!("{o}{status_path}: {published}");
    // The console, embedded in the binary (console/dist, built above).
    let (status, page) = http(origin_port, "GET", "/", &[("Accept", "text/html")], "")?;
    if status != 200 || !page.contains("id=\"app\"") {
        bail!("the origin does not serve the console at {o}/ ({status}): {page}");
    }
    // `bunting serve` prints a one-time sign-in link for its administrator.
    let link = origin
        .log()
        .lines()
        .map(str::trim)
        .find(|l| l.contains("/auth/bootstrap?token="))
        .map(str::to_owned);
    println!("\nThe console: {o}/");
    if let Some(link) = link {
        println!("Sign in to it as the administrator (once, within 15 minutes):\n  {link}");
    }

    ctx.section(&format!(
        "start the edge worker: wrangler dev on 127.0.0.1:{port}"
    ));
    let port_arg = port.to_string();
    let mut cmd = ctx.cmd(
        WRANGLER,
        &[
            "dev",
            "--ip",
            "127.0.0.1",
            "--port",
            &port_arg,
            "--inspector-port",
            "0",
            "--persist-to",
            PERSIST_TO,
            "--show-interactive-dev-session=false",
            // wrangler.toml's settings otherwise (KV every 5 s, the
            // pointer every 0.5 s): a change shows through the pointer.
            "--var",
            &format!("POINTER_SECRET:{DEMO_POINTER_SECRET}"),
        ],
    );
    wrangler_env(&mut cmd);
    println!("$ {}", show(&cmd));
    let start = Instant::now();
    let mut dev = DevServer::start("wrangler dev", cmd, interactive)?;
    let base = format!("http://127.0.0.1:{port}");
    let health = dev.wait_for(port, "/healthz")?;
    ctx.record("demo: wrangler dev up (answers /healthz)", start.elapsed());
    println!("{base}/healthz: status {}", cell(&health["status"]));

    let path = format!("/ofrep/v1/evaluate/flags/{EXAMPLE_FLAG}");
    let evaluate = || -> Result<Value> {
        let (status, body) = http(
            port,
            "POST",
            &path,
            &[
                ("Authorization", &format!("Bearer {DEMO_SDK_KEY}")),
                ("Content-Type", "application/json"),
            ],
            EXAMPLE_BODY,
        )
        .context("evaluating a flag through wrangler dev")?;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::String(body.clone()));
        if status != 200 || answer.get("value").is_none() {
            bail!("POST {base}{path} answered {status}: {body}");
        }
        Ok(answer)
    };
    let answer =
        evaluate().map_err(|e| anyhow::anyhow!("{e}\nwrangler dev said:\n{}", dev.log()))?;
    println!(
        "\nThe edge worker serves what the origin published (organization {DEMO_ORG}, project \
         {DEMO_PROJECT}, environment {DEMO_ENV} = edge environment {EDGE_ENV}, SDK key {DEMO_SDK_KEY}). \
         Evaluate a flag at the edge:\n"
    );
    println!(
        "  curl -s -X POST {base}{path} \\\n    -H 'Authorization: Bearer {DEMO_SDK_KEY}' \
         -H 'Content-Type: application/json' \\\n    -d '{EXAMPLE_BODY}'\n"
    );
    println!(
        "  {}",
        serde_json::to_string_pretty(&answer)?.replace('\n', "\n  ")
    );

    // Every seeded environment published to every target, the pointer
    // included (the origin retried it until wrangler dev was up): the
    // publish loop serves environments and targets in turn, so a change
    // made while it still puts other environments through wrangler (a Node
    // start per key) would wait for them.
    let envs_path = format!("/api/v1/orgs/{DEMO_ORG}/projects/{DEMO_PROJECT}/environments");
    let (status, text) = http(
        origin_port,
        "GET",
        &envs_path,
        &[("Authorization", &auth)],
        "",
    )?;
    if status != 200 {
        bail!("GET {o}{envs_path} answered {status}: {text}");
    }
    let envs: Value = serde_json::from_str(&text)?;
    for key in envs["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["key"].as_str())
    {
        wait_published(
            &mut origin,
            origin_port,
            &format!("{envs_path}/{key}/publish"),
            &auth,
            &[],
        )?;
    }

    // Change it through the origin's API: the kill switch.
    let toggle = format!(
        "/api/v1/orgs/{DEMO_ORG}/projects/{DEMO_PROJECT}/flags/{EXAMPLE_FLAG}/environments/{DEMO_ENV}/toggle"
    );
    let enabled = answer["reason"] != "DISABLED";
    let body = format!("{{\"enabled\": {}}}", !enabled);
    println!("\nChange it through the origin's API (the kill switch):\n");
    println!(
        "  curl -s -X POST {o}{toggle} \\\n    -H 'Authorization: Bearer {DEMO_ADMIN_TOKEN}' \
         -H 'Content-Type: application/json' -d '{body}'\n"
    );
    let changed_at = Instant::now();
    let (status, text) = http(
        origin_port,
        "POST",
        &toggle,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &body,
    )?;
    if status != 200 {
        bail!("POST {o}{toggle} answered {status}: {text}");
    }
    let after = loop {
        let a = evaluate()?;
        if a["value"] != answer["value"] || a["reason"] != answer["reason"] {
            break a;
        }
        if changed_at.elapsed() > STARTUP_TIMEOUT {
            bail!(
                "the edge still serves the old value {}s after the change:\n{}",
                STARTUP_TIMEOUT.as_secs(),
                origin.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = changed_at.elapsed();
    ctx.record(
        "demo: API change visible at the edge (pointer and local KV)",
        took,
    );
    println!(
        "The edge serves the change {} ms after the API call (the origin sends each snapshot to the \
         environment's pointer, a Durable Object that isolates ask every 0.5 s, and into the local KV \
         with `wrangler kv key put`, re-read every 5 s; docs/performance.md has the figures):\n",
        took.as_millis()
    );
    println!(
        "  {}",
        serde_json::to_string_pretty(&after)?.replace('\n', "\n  ")
    );

    if interactive {
        println!(
            "\nThe origin keeps running at {o} (the console at {o}/, API under {o}/api/v1, token {DEMO_ADMIN_TOKEN}; \
             OpenAPI: {o}/api/v1/openapi.json) and wrangler dev at {base} (all flags: POST \
             {base}/ofrep/v1/evaluate/flags). Press Ctrl-C to stop both."
        );
        origin.follow();
        dev.follow();
        let status = dev.wait()?;
        println!("wrangler dev exited ({status})");
    } else {
        println!(
            "\nnot interactive (CI is set or stdin is not a terminal): stopping the origin and \
             wrangler dev; run `cargo xtask demo` in a terminal to keep them running"
        );
        dev.stop();
        origin.stop();
    }
    Ok(())
}

/// Polls the origin's publish status until every target has published the
/// environment's current snapshot version; returns the status.
fn wait_published(
    origin: &mut DevServer,
    port: u16,
    path: &str,
    auth: &str,
    except: &[&str],
) -> Result<Value> {
    let start = Instant::now();
    loop {
        if let Ok((200, body)) = http(port, "GET", path, &[("Authorization", auth)], "")
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            let current = &v["snapshotVersion"];
            let targets: Vec<Value> = v["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| !except.iter().any(|e| t["target"] == *e))
                .collect();
            if !targets.is_empty() && targets.iter().all(|t| &t["publishedVersion"] == current) {
                return Ok(v);
            }
        }
        if let Some(status) = origin.child.try_wait()? {
            bail!("the origin exited ({status}):\n{}", origin.log());
        }
        if start.elapsed() > STARTUP_TIMEOUT {
            bail!(
                "the origin did not publish within {}s:\n{}",
                STARTUP_TIMEOUT.as_secs(),
                origin.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Output of `wrangler dev`, kept until it is up (for errors) and then
/// optionally echoed.
#[derive(Default)]
struct Log {
    text: String,
    echo: bool,
}

/// A running server process (`wrangler dev`, `bunting serve`), stopped
/// (with its children) when dropped.
struct DevServer {
    name: &'static str,
    child: Child,
    log: Arc<Mutex<Log>>,
    /// In its own process group, stopped by killing the group; otherwise in
    /// the terminal's, so Ctrl-C reaches wrangler and workerd directly.
    own_group: bool,
}

impl DevServer {
    fn start(name: &'static str, mut cmd: Command, interactive: bool) -> Result<DevServer> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        #[cfg(unix)]
        if !interactive {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start `{}`", show(&cmd)))?;
        let log = Arc::new(Mutex::new(Log::default()));
        let out = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [out, err].into_iter().flatten() {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    if log.echo {
                        println!("{line}");
                    } else {
                        log.text.push_str(&line);
                        log.text.push('\n');
                    }
                }
            });
        }
        Ok(DevServer {
            name,
            child,
            log,
            own_group: cfg!(unix) && !interactive,
        })
    }

    fn log(&self) -> String {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .text
            .clone()
    }

    /// Polls `path` until it answers 200 with JSON.
    fn wait_for(&mut self, port: u16, path: &str) -> Result<Value> {
        let start = Instant::now();
        let name = self.name;
        loop {
            if let Ok((200, body)) = http(port, "GET", path, &[], "")
                && let Ok(v) = serde_json::from_str::<Value>(&body)
            {
                return Ok(v);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("{name} exited ({status}) before it served:\n{}", self.log());
            }
            if start.elapsed() > STARTUP_TIMEOUT {
                bail!(
                    "{name} did not answer {path} within {}s:\n{}",
                    STARTUP_TIMEOUT.as_secs(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Echoes wrangler's output from now on (request logs).
    fn follow(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).echo = true;
    }

    fn wait(&mut self) -> Result<std::process::ExitStatus> {
        self.child
            .wait()
            .with_context(|| format!("waiting for {}", self.name))
    }

    /// Stops wrangler and workerd: SIGTERM to the process group (or to
    /// wrangler, which forwards it), then waits.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id();
        let target = if self.own_group {
            format!("-{pid}")
        } else {
            pid.to_string()
        };
        let killed = Command::new("kill")
            .args(["-TERM", "--", &target])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !killed {
            let _ = self.child.kill();
        }
        // wrangler stops workerd on SIGTERM; do not wait forever.
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if self.own_group {
            // Whatever is left of the group (workerd), for certain.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &target])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One HTTP request to 127.0.0.1:`port`; returns status and body (4xx and
/// 5xx answers too).
///
/// The body is read to its `Content-Length` (or last chunk), not until the
/// server closes the connection: `wrangler dev` keeps a connection open for
/// about 5 s after its answer even when asked to close it, which made every
/// poll of the demo take 5 s (and the change seem to take 10 s to arrive).
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<(u16, String)> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut request = agent.request(method, &format!("http://127.0.0.1:{port}{path}"));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let response = match request.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.into()),
    };
    let status = response.status();
    Ok((status, response.into_string()?))
}
