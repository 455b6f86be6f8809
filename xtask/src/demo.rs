//! `cargo xtask demo`: the demo flags of `examples/` evaluated by the three
//! builds of the one evaluator — native Rust, the C ABI module in wasmtime and
//! the wasm-bindgen package in Node — which must agree on every field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

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

pub fn run(ctx: &Ctx, tools: &Tools, wasm: &Wasm) -> Result<()> {
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
