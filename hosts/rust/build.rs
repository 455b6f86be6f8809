//! Embeds the engine module when the package carries it
//! (`wasm/bunting_core_abi.wasm`, copied there before `cargo package`), so
//! a crate from a registry needs no separate `.wasm`.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(bunting_embedded_wasm)");
    println!("cargo::rerun-if-changed=wasm/bunting_core_abi.wasm");
    let here = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    if std::path::Path::new(&here)
        .join("wasm/bunting_core_abi.wasm")
        .is_file()
    {
        println!("cargo::rustc-cfg=bunting_embedded_wasm");
    }
}
