//! A pool of instances holding one snapshot, so many threads can evaluate
//! it at once (a wasmtime store runs one call at a time).

use std::sync::{Arc, Mutex};

use crate::{HostError, WasmEngine, WasmRuntime};

/// Instances of one snapshot, shared by threads: [`WasmPool::get`] takes an
/// idle instance (or loads the snapshot into a new one) and gives it back
/// when the guard drops. An instance that trapped or timed out is dropped
/// instead of returned, so a failure poisons only that instance.
///
/// ```no_run
/// # use bunting_wasm_host::{WasmPool, WasmRuntime};
/// # let snapshot = String::new();
/// let pool = WasmPool::new(WasmRuntime::locate()?, snapshot)?; // loads one instance
/// std::thread::scope(|s| {
///     for _ in 0..4 {
///         s.spawn(|| {
///             let mut engine = pool.get().unwrap();
///             // Results borrow from the engine: use them while it is held.
///             let on = engine.evaluate_all(&serde_json::json!({}), 0).unwrap();
///             on.iter().filter(|e| e.value.is_some()).count()
///         });
///     }
/// });
/// # Ok::<(), bunting_wasm_host::HostError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WasmPool {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: WasmRuntime,
    snapshot: String,
    idle: Mutex<Vec<WasmEngine>>,
    max_idle: usize,
}

impl WasmPool {
    /// Loads `snapshot` (strictly) into a first instance, which also
    /// validates it; more instances are loaded on demand.
    pub fn new(runtime: WasmRuntime, snapshot: String) -> Result<WasmPool, HostError> {
        let first = runtime.load_snapshot(&snapshot)?;
        let max_idle = std::thread::available_parallelism().map_or(4, |n| n.get() * 2);
        Ok(WasmPool {
            inner: Arc::new(Inner {
                runtime,
                snapshot,
                idle: Mutex::new(vec![first]),
                max_idle,
            }),
        })
    }

    /// The snapshot JSON the instances hold.
    pub fn snapshot(&self) -> &str {
        &self.inner.snapshot
    }

    /// How many idle instances the pool holds now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WasmEngine>> {
        self.inner.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An instance for this thread's exclusive use until the guard drops.
    pub fn get(&self) -> Result<PooledEngine<'_>, HostError> {
        let idle = self.lock().pop();
        let engine = match idle {
            Some(e) => e,
            None => self.inner.runtime.load_snapshot(&self.inner.snapshot)?,
        };
        Ok(PooledEngine {
            pool: self,
            engine: Some(engine),
        })
    }
}

/// An instance borrowed from a [`WasmPool`]; dereferences to [`WasmEngine`].
#[derive(Debug)]
pub struct PooledEngine<'a> {
    pool: &'a WasmPool,
    engine: Option<WasmEngine>,
}

impl std::ops::Deref for PooledEngine<'_> {
    type Target = WasmEngine;
    fn deref(&self) -> &WasmEngine {
        self.engine.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for PooledEngine<'_> {
    fn deref_mut(&mut self) -> &mut WasmEngine {
        self.engine.as_mut().expect("present until drop")
    }
}

impl Drop for PooledEngine<'_> {
    fn drop(&mut self) {
        if let Some(engine) = self.engine.take()
            && !engine.is_poisoned()
        {
            let mut idle = self.pool.lock();
            if idle.len() < self.pool.inner.max_idle {
                idle.push(engine);
            }
        }
    }
}
