//! Evaluates one flag of a snapshot through the bunting-core WASM module.
//!
//! ```text
//! cargo xtask wasm
//! cargo run -p bunting-wasm-host --example eval -- SNAPSHOT.json FLAG CONTEXT_JSON [NOW]
//! ```
//!
//! `FLAG` may be `-` to evaluate every flag. `NOW` is Unix milliseconds or an
//! RFC 3339 time and defaults to the current time. The evaluation is printed
//! as JSON.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use bunting_core::protocol::EvalRequest;
use bunting_wasm_host::WasmRuntime;

fn run(args: &[String]) -> Result<String, String> {
    let [snapshot, flag, context, rest @ ..] = args else {
        return Err("usage: eval SNAPSHOT.json FLAG|- CONTEXT_JSON [NOW_MS|RFC3339]".to_string());
    };
    let snapshot =
        std::fs::read_to_string(snapshot).map_err(|e| format!("cannot read {snapshot}: {e}"))?;
    let context: serde_json::Value =
        serde_json::from_str(context).map_err(|e| format!("CONTEXT_JSON is not JSON: {e}"))?;
    let now_ms = match rest.first() {
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
        Some(t) => t
            .parse::<i64>()
            .ok()
            .or_else(|| bunting_core::time::parse_rfc3339_ms(t))
            .ok_or_else(|| format!("NOW {t:?} is neither Unix milliseconds nor RFC 3339"))?,
    };
    let runtime = WasmRuntime::locate().map_err(|e| e.to_string())?;
    let mut engine = runtime
        .load_snapshot(&snapshot)
        .map_err(|e| e.to_string())?;
    let req = EvalRequest {
        flag: (flag != "-").then(|| flag.clone()),
        context,
        now_ms,
        expected_type: None,
    };
    let result = engine.answer(&req).map_err(|e| e.to_string())?;
    Ok(serde_json::to_string_pretty(&result).expect("JSON values serialize"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
