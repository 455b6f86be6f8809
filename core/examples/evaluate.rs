//! Evaluates every flag of a snapshot for a set of named contexts, natively,
//! and prints the results as JSON: `{"<user>": [evaluation, …], …}`.
//!
//! ```text
//! cargo run -p bunting-core --example evaluate -- SNAPSHOT CONTEXTS [NOW]
//! ```
//!
//! `CONTEXTS` is a JSON file mapping names to evaluation contexts (see
//! `examples/demo-contexts.json`); `NOW` is RFC 3339 or Unix milliseconds and
//! defaults to the current time. `cargo xtask demo` compares this output with
//! the wasmtime and Node builds of the same engine.

use std::process::ExitCode;

use bunting_core::Engine;
use bunting_core::time::parse_rfc3339_ms;
use serde_json::{Map, Value};

fn now_ms(arg: Option<&str>) -> Result<i64, String> {
    match arg {
        None => Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis() as i64),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .or_else(|| parse_rfc3339_ms(s))
            .ok_or_else(|| format!("NOW must be RFC 3339 or Unix milliseconds, not {s:?}")),
    }
}

fn run(args: &[String]) -> Result<Value, String> {
    let [snapshot, contexts, rest @ ..] = args else {
        return Err("usage: evaluate SNAPSHOT CONTEXTS [NOW]".into());
    };
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let engine = Engine::from_json(&read(snapshot)?).map_err(|e| format!("{snapshot}: {e}"))?;
    let contexts: Map<String, Value> =
        serde_json::from_str(&read(contexts)?).map_err(|e| format!("{contexts}: {e}"))?;
    let now = now_ms(rest.first().map(String::as_str))?;
    let mut out = Map::new();
    for (name, context) in &contexts {
        let results =
            serde_json::to_value(engine.evaluate_all(context, now)).map_err(|e| e.to_string())?;
        out.insert(name.clone(), results);
    }
    Ok(Value::Object(out))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("JSON serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("evaluate: {e}");
            ExitCode::FAILURE
        }
    }
}
