//! Runtime options: the compilation cache directory and the time budgets
//! that bound every call into the module (epoch interruption).

use std::path::PathBuf;
use std::time::Duration;

use wasmtime::Engine;

/// How often the epoch ticker advances the engine's epoch: the granularity
/// of the call budgets.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// How a [`crate::WasmRuntime`] compiles and runs the module.
///
/// ```
/// use std::time::Duration;
/// use bunting_wasm_host::RuntimeOptions;
/// let options = RuntimeOptions::default()
///     .cache_dir("/var/cache/bunting")
///     .call_budget(Some(Duration::from_millis(250)));
/// assert_eq!(options.call_budget, Some(Duration::from_millis(250)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// Where wasmtime keeps compiled modules, keyed by the module's bytes,
    /// the wasmtime version and the compiler settings: a process that finds
    /// its module there skips Cranelift. `None` (the default) compiles every
    /// time.
    pub cache_dir: Option<PathBuf>,
    /// The longest one evaluation (or any call but a load) may run before it
    /// is interrupted with [`crate::HostError::Timeout`]; default 1 s.
    /// `None` with `load_budget` also `None` turns interruption off (a
    /// little faster, unbounded).
    pub call_budget: Option<Duration>,
    /// The longest a snapshot load may run; default 30 s.
    pub load_budget: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            call_budget: Some(Duration::from_secs(1)),
            load_budget: Some(Duration::from_secs(30)),
        }
    }
}

impl RuntimeOptions {
    /// Sets [`RuntimeOptions::cache_dir`].
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Sets [`RuntimeOptions::call_budget`].
    pub fn call_budget(mut self, budget: Option<Duration>) -> Self {
        self.call_budget = budget;
        self
    }

    /// Sets [`RuntimeOptions::load_budget`].
    pub fn load_budget(mut self, budget: Option<Duration>) -> Self {
        self.load_budget = budget;
        self
    }
}

/// The epoch deadline, in ticks, for `budget` (rounded up; zero stays zero,
/// which interrupts at the first check).
pub(crate) fn ticks(budget: Duration) -> u64 {
    let tick = TICK.as_nanos();
    u64::try_from(budget.as_nanos().div_ceil(tick)).unwrap_or(u64::MAX / 2)
}

/// Advances `engine`'s epoch every [`TICK`] on a background thread, which
/// ends once the engine (every runtime, instance and store using it) is
/// dropped.
pub(crate) fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("bunting-wasm-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(TICK);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        });
    // Without the thread budgets never expire: calls are unbounded, as
    // without options. Spawning fails only when the OS is out of threads.
    drop(spawned);
}
