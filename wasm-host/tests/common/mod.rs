//! Shared by the wasm-host test suites.

use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

use bunting_wasm_host::WasmRuntime;

#[allow(dead_code, unreachable_pub)] // not every suite generates contexts
pub(crate) mod contexts;

/// The module from `cargo xtask wasm` (or `BUNTING_CORE_WASM`), compiled once
/// per test binary. Compiling takes a few seconds in debug builds.
pub(crate) fn runtime() -> &'static WasmRuntime {
    static RUNTIME: OnceLock<WasmRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        if let Some(hint) = stale_hint() {
            eprintln!("warning: {hint}");
        }
        WasmRuntime::locate().unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Says so when the module is older than the core sources it was built
/// from, the usual cause of a difference between native and WASM results.
#[allow(dead_code)] // not every suite reports it
pub(crate) fn stale_hint() -> Option<String> {
    let module = WasmRuntime::module_path().ok()?;
    let built = std::fs::metadata(&module).ok()?.modified().ok()?;
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core");
    let (newest, path) = newest([core.join("Cargo.toml"), core.join("src")].iter())?;
    (newest > built).then(|| {
        format!(
            "{} is older than {}: rebuild it with `cargo xtask wasm`",
            module.display(),
            path.display()
        )
    })
}

fn newest<'a>(
    paths: impl Iterator<Item = &'a std::path::PathBuf>,
) -> Option<(SystemTime, std::path::PathBuf)> {
    let mut best: Option<(SystemTime, std::path::PathBuf)> = None;
    let mut stack: Vec<std::path::PathBuf> = paths.cloned().collect();
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&p) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        } else if let Ok(t) = meta.modified()
            && best.as_ref().is_none_or(|(b, _)| t > *b)
        {
            best = Some((t, p));
        }
    }
    best
}

/// Checks that every field `view` reads in place is `want`'s, and that it
/// decodes to `want` as a whole.
#[allow(dead_code)] // not every suite views evaluate-alls
pub(crate) fn assert_same(
    view: Option<bunting_wasm_host::EvaluationRef<'_>>,
    want: Option<&bunting_core::Evaluation<'_>>,
) {
    let (Some(view), Some(want)) = (view, want) else {
        assert_eq!(view.map(|v| v.to_evaluation()).as_ref(), want);
        return;
    };
    assert_eq!(view.key(), want.key);
    assert_eq!(view.value(), want.value.as_deref());
    assert_eq!(view.variant(), want.variant.as_deref());
    assert_eq!(view.reason(), want.reason);
    assert_eq!(view.error_code(), want.error_code);
    assert_eq!(view.error_message(), want.error_message.as_deref());
    assert_eq!(view.rule_id(), want.rule_id.as_deref());
    assert_eq!(
        view.prerequisite_failed(),
        want.prerequisite_failed.as_deref()
    );
    assert_eq!(view.metadata(), want.metadata.as_deref());
    assert_eq!(&view.to_evaluation(), want);
}
