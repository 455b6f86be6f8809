//! The two engine backends behind one trait: the WASM module in wasmtime
//! (the default, the same compiled engine every bunting host runs) and
//! native `bunting-core`.
//!
//! Trade-off: native evaluates a few times faster, starts instantly and has
//! no `.wasm` to ship, but its results are only identical to the other
//! hosts' if it is the same bunting-core version; wasmtime runs the exact
//! module the Node and Python hosts run, bounds every call in time (a
//! pathological snapshot cannot hang the process), and can be upgraded by
//! swapping the `.wasm` without recompiling the application.

use std::sync::Arc;

use bunting_core::{Context, ErrorCode, Evaluation, FlagType};
use serde_json::Value;

/// A loaded snapshot that answers evaluations. Evaluation is synchronous
/// and never fails: engine-level failures are `ERROR` evaluations.
pub trait FlagEngine: Send + Sync + std::fmt::Debug {
    /// Evaluates one flag.
    fn evaluate(
        &self,
        flag: &str,
        expected: Option<FlagType>,
        context: &Value,
        now_ms: i64,
    ) -> Evaluation<'static>;
    /// Evaluates every flag, in snapshot order (the batch call).
    fn evaluate_all(&self, context: &Value, now_ms: i64) -> Vec<Evaluation<'static>>;
    /// Evaluates one flag for a [`Context`]: by default through its JSON
    /// form, which evaluates identically; both built-in engines read it
    /// directly (native) or serialize it straight into the request (wasm).
    fn evaluate_context(
        &self,
        flag: &str,
        expected: Option<FlagType>,
        context: &Context<'_>,
        now_ms: i64,
    ) -> Evaluation<'static> {
        self.evaluate(flag, expected, &context.to_json(), now_ms)
    }
    /// Evaluates every flag for a [`Context`] (see
    /// [`FlagEngine::evaluate_context`]).
    fn evaluate_all_context(&self, context: &Context<'_>, now_ms: i64) -> Vec<Evaluation<'static>> {
        self.evaluate_all(&context.to_json(), now_ms)
    }
}

/// Which engine evaluates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EngineKind {
    /// bunting-core compiled to WASM, in wasmtime (feature `wasm`).
    #[cfg(feature = "wasm")]
    Wasm {
        /// The module file; `None` uses the module packaged with the crate,
        /// else [`bunting_wasm_host::WasmRuntime::locate`].
        module: Option<std::path::PathBuf>,
        /// Compilation cache, call budgets.
        options: bunting_wasm_host::RuntimeOptions,
    },
    /// bunting-core compiled into this program.
    Native,
}

impl Default for EngineKind {
    /// wasmtime with the module located as [`bunting_wasm_host::WasmRuntime::locate`]
    /// does, when the `wasm` feature is on; native otherwise.
    fn default() -> Self {
        #[cfg(feature = "wasm")]
        return EngineKind::Wasm {
            module: None,
            options: bunting_wasm_host::RuntimeOptions::default(),
        };
        #[cfg(not(feature = "wasm"))]
        return EngineKind::Native;
    }
}

/// The module inside a packaged crate (see `build.rs`), if any.
#[cfg(all(feature = "wasm", bunting_embedded_wasm))]
const EMBEDDED: Option<&[u8]> = Some(include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/wasm/bunting_core_abi.wasm"
)));
#[cfg(all(feature = "wasm", not(bunting_embedded_wasm)))]
const EMBEDDED: Option<&[u8]> = None;

/// The module compiled for `module` (`None`: the packaged or located one)
/// and `options`: compiled once per process and shared by every client
/// (a [`bunting_wasm_host::WasmRuntime`] is a cheap handle), so a second
/// client, or a rebuilt one, never pays the compile again.
#[cfg(feature = "wasm")]
fn compiled(
    module: Option<&std::path::Path>,
    options: &bunting_wasm_host::RuntimeOptions,
) -> Result<bunting_wasm_host::WasmRuntime, crate::SdkError> {
    use bunting_wasm_host::{RuntimeOptions, WasmRuntime};
    use std::path::PathBuf;
    use std::sync::Mutex;
    type Key = (Option<PathBuf>, RuntimeOptions);
    static COMPILED: Mutex<Vec<(Key, WasmRuntime)>> = Mutex::new(Vec::new());
    let key: Key = (module.map(PathBuf::from), options.clone());
    // Held while compiling: two clients starting together compile once.
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, runtime)) = compiled.iter().find(|(k, _)| *k == key) {
        return Ok(runtime.clone());
    }
    let runtime = match module {
        Some(path) => WasmRuntime::from_file_with(path, options)?,
        None => match EMBEDDED {
            Some(bytes) => WasmRuntime::from_bytes_with(bytes, options)?,
            None => WasmRuntime::locate_with(options)?,
        },
    };
    compiled.push((key, runtime.clone()));
    Ok(runtime)
}

/// A ready backend: loads snapshots into engines.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    #[cfg(feature = "wasm")]
    Wasm(Box<bunting_wasm_host::WasmRuntime>),
    Native,
}

impl Backend {
    pub(crate) fn new(kind: &EngineKind) -> Result<Backend, crate::SdkError> {
        match kind {
            #[cfg(feature = "wasm")]
            EngineKind::Wasm { module, options } => Ok(Backend::Wasm(Box::new(compiled(
                module.as_deref(),
                options,
            )?))),
            EngineKind::Native => Ok(Backend::Native),
        }
    }

    /// `"wasm"` or `"native"`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            #[cfg(feature = "wasm")]
            Backend::Wasm(_) => "wasm",
            Backend::Native => "native",
        }
    }

    /// The snapshot schema version the engine reads.
    pub(crate) fn schema_version(&self) -> Result<u32, crate::SdkError> {
        match self {
            #[cfg(feature = "wasm")]
            Backend::Wasm(runtime) => Ok(runtime.instantiate()?.schema_version()?),
            Backend::Native => Ok(bunting_core::model::SCHEMA_VERSION),
        }
    }

    /// Loads a snapshot (strictly unless `lenient`); the error is the
    /// engine's message.
    pub(crate) fn load(&self, json: &str, lenient: bool) -> Result<Arc<dyn FlagEngine>, String> {
        match self {
            #[cfg(feature = "wasm")]
            Backend::Wasm(runtime) => {
                let pool = if lenient {
                    wasm::Pooled::lenient(runtime, json)
                } else {
                    wasm::Pooled::strict(runtime, json)
                };
                Ok(Arc::new(pool.map_err(|e| e.to_string())?))
            }
            Backend::Native => {
                // One borrowed parse, as the wasm module's load.
                let engine = if lenient {
                    bunting_core::Engine::from_json_lenient(json).map(|(engine, _)| engine)
                } else {
                    bunting_core::Engine::from_json(json)
                }
                .map_err(|e| e.to_string())?;
                Ok(Arc::new(Native(engine)))
            }
        }
    }
}

/// Native bunting-core.
#[derive(Debug)]
struct Native(bunting_core::Engine);

impl FlagEngine for Native {
    fn evaluate(
        &self,
        flag: &str,
        expected: Option<FlagType>,
        context: &Value,
        now_ms: i64,
    ) -> Evaluation<'static> {
        self.0
            .evaluate_typed(flag, expected, context, now_ms)
            .into_owned()
    }

    fn evaluate_all(&self, context: &Value, now_ms: i64) -> Vec<Evaluation<'static>> {
        self.0
            .evaluate_all(context, now_ms)
            .into_iter()
            .map(Evaluation::into_owned)
            .collect()
    }

    fn evaluate_context(
        &self,
        flag: &str,
        expected: Option<FlagType>,
        context: &Context<'_>,
        now_ms: i64,
    ) -> Evaluation<'static> {
        self.0
            .evaluate_typed(flag, expected, context, now_ms)
            .into_owned()
    }

    fn evaluate_all_context(&self, context: &Context<'_>, now_ms: i64) -> Vec<Evaluation<'static>> {
        self.0
            .evaluate_all(context, now_ms)
            .into_iter()
            .map(Evaluation::into_owned)
            .collect()
    }
}

/// A failure of the host itself (trap, timeout) as an `ERROR` evaluation.
pub(crate) fn host_failure(flag: &str, why: impl std::fmt::Display) -> Evaluation<'static> {
    Evaluation::error(flag, ErrorCode::General, format!("engine failure: {why}"))
}

#[cfg(feature = "wasm")]
mod wasm {
    use bunting_core::{Context, Evaluation, FlagType};
    use bunting_wasm_host::{HostError, WasmPool, WasmRuntime};
    use serde_json::Value;

    use super::{FlagEngine, host_failure};

    /// A snapshot in a pool of instances: one per concurrently evaluating
    /// thread. A lenient snapshot is kept in one mutex-guarded instance
    /// (tests and offline use only).
    #[derive(Debug)]
    pub(super) enum Pooled {
        Strict(WasmPool),
        Lenient(Box<std::sync::Mutex<bunting_wasm_host::WasmEngine>>),
    }

    impl Pooled {
        pub(super) fn strict(runtime: &WasmRuntime, json: &str) -> Result<Pooled, HostError> {
            Ok(Pooled::Strict(WasmPool::new(
                runtime.clone(),
                json.to_owned(),
            )?))
        }

        pub(super) fn lenient(runtime: &WasmRuntime, json: &str) -> Result<Pooled, HostError> {
            let (engine, _) = runtime.load_snapshot_lenient(json)?;
            Ok(Pooled::Lenient(Box::new(std::sync::Mutex::new(engine))))
        }

        fn with<T>(
            &self,
            f: impl FnOnce(&mut bunting_wasm_host::WasmEngine) -> Result<T, HostError>,
        ) -> Result<T, HostError> {
            match self {
                Pooled::Strict(pool) => {
                    let mut engine = pool.get()?;
                    f(&mut engine)
                }
                Pooled::Lenient(m) => f(&mut m.lock().unwrap_or_else(|p| p.into_inner())),
            }
        }
    }

    impl FlagEngine for Pooled {
        fn evaluate(
            &self,
            flag: &str,
            expected: Option<FlagType>,
            context: &Value,
            now_ms: i64,
        ) -> Evaluation<'static> {
            // Results borrow from the pooled engine, which goes back to the
            // pool: detach them.
            self.with(|e| {
                e.evaluate_typed(flag, expected, context, now_ms)
                    .map(Evaluation::into_owned)
            })
            .unwrap_or_else(|e| host_failure(flag, e))
        }

        fn evaluate_all(&self, context: &Value, now_ms: i64) -> Vec<Evaluation<'static>> {
            // A failure of the whole batch has no flag key to report on.
            self.with(|e| {
                e.evaluate_all(context, now_ms)
                    .map(|all| all.into_iter().map(Evaluation::into_owned).collect())
            })
            .unwrap_or_else(|e| vec![host_failure("", e)])
        }

        fn evaluate_context(
            &self,
            flag: &str,
            expected: Option<FlagType>,
            context: &Context<'_>,
            now_ms: i64,
        ) -> Evaluation<'static> {
            self.with(|e| {
                e.evaluate_typed_serialized(flag, expected, context, now_ms)
                    .map(Evaluation::into_owned)
            })
            .unwrap_or_else(|e| host_failure(flag, e))
        }

        fn evaluate_all_context(
            &self,
            context: &Context<'_>,
            now_ms: i64,
        ) -> Vec<Evaluation<'static>> {
            self.with(|e| {
                e.evaluate_all_serialized(context, now_ms)
                    .map(|all| all.into_iter().map(Evaluation::into_owned).collect())
            })
            .unwrap_or_else(|e| vec![host_failure("", e)])
        }
    }
}
