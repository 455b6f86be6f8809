// `std::env::set_var` is `unsafe` since edition 2024; this single-test binary
// is the only reader of its environment (see the SAFETY notes below).
#![allow(unsafe_code)]

//! `WasmRuntime::locate` and `BUNTING_CORE_WASM`. One test in its own binary,
//! because it changes the process environment.

use bunting_wasm_host::{HostError, MODULE_ENV, WasmRuntime};

#[test]
fn locate_honours_the_environment_and_explains_a_missing_module() {
    // SAFETY: the only test of this binary; no other thread reads the
    // environment meanwhile.
    unsafe { std::env::set_var(MODULE_ENV, "/nonexistent/bunting_core_abi.wasm") };
    let err = WasmRuntime::locate().unwrap_err();
    let HostError::ModuleNotFound { tried } = &err else {
        panic!("expected a missing module, got {err:?}");
    };
    assert_eq!(tried.len(), 1);
    let message = err.to_string();
    assert!(message.contains("cargo xtask wasm"), "{message}");
    assert!(
        message.contains("/nonexistent/bunting_core_abi.wasm"),
        "{message}"
    );

    // Unset, the workspace's target directory is the default.
    unsafe { std::env::remove_var(MODULE_ENV) };
    match WasmRuntime::module_path() {
        Ok(path) => assert!(path.ends_with("wasm/bunting_core_abi.wasm"), "{path:?}"),
        Err(HostError::ModuleNotFound { tried }) => {
            assert!(
                tried
                    .iter()
                    .all(|p| p.ends_with("wasm/bunting_core_abi.wasm"))
            );
        }
        Err(e) => panic!("{e}"),
    }

    // Set to a real file, that file is used as is.
    let exe = std::env::current_exe().unwrap();
    unsafe { std::env::set_var(MODULE_ENV, &exe) };
    assert_eq!(WasmRuntime::module_path().unwrap(), exe);
    // ... and a file that is not WASM is reported as such.
    assert!(matches!(
        WasmRuntime::locate(),
        Err(HostError::Compile { .. })
    ));
}
