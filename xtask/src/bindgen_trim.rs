//! The edge worker's wasm-bindgen step, followed by a trim of the glue the
//! worker never uses (`cargo xtask edge`).
//!
//! wasm-bindgen keeps every `#[wasm_bindgen]` export as a root, whether the
//! worker uses it or not: the `worker` crate's exported classes
//! (`ContainerStartupOptions`, `MinifyConfig`, `R2Range`: configuration
//! types this worker never hands to JavaScript) and wasm-streams'
//! `IntoUnderlyingSink`, `IntoUnderlyingByteSource` and
//! `IntoUnderlyingSource` (the last one only used by
//! `Response::from_stream`, which the worker does not call: its event
//! streams write to a JavaScript stream's controller). Their JavaScript
//! classes stay in the glue, and their Rust methods, with all they call,
//! in the module.
//!
//! worker-build runs the wasm-bindgen CLI that `WASM_BINDGEN_BIN` names;
//! [`edge::build`](crate::edge::build) points it at this program, which
//! runs the real CLI (named by [`REAL_VAR`]), then, before worker-build
//! bundles the glue with esbuild:
//!
//! 1. removes from the glue each class nothing else in it names: private
//!    classes found so, exported ones only if [`UNUSED_EXPORTED_CLASSES`]
//!    lists them (an exported class may be a Durable Object, which only
//!    `wrangler.toml` names); each with its `Symbol.dispose` line and its
//!    `FinalizationRegistry`;
//! 2. removes every function export of the module that the glue no longer
//!    names (a JavaScript module reaches a module's functions only through
//!    the glue), then every function, import, global and table entry left
//!    unreachable (walrus' `gc`, the pass wasm-bindgen itself ends with).
//!
//! A class listed but still named elsewhere in the glue fails the build.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The environment variable naming the real wasm-bindgen CLI; set, `xtask`
/// runs as the wrapper ([`wrapper`]) instead of reading a command.
pub(crate) const REAL_VAR: &str = "BUNTING_REAL_WASM_BINDGEN";

/// Exported classes of the glue that the worker's JavaScript never needs:
/// the `worker` crate's configuration types, which the worker does not use
/// (a `__wrap` of one in the glue, i.e. Rust handing one to JavaScript,
/// fails the build).
const UNUSED_EXPORTED_CLASSES: &[&str] = &["ContainerStartupOptions", "MinifyConfig", "R2Range"];

/// Runs the real wasm-bindgen with this process's arguments, then trims its
/// output (if it wrote one: `--version` writes none).
pub(crate) fn wrapper(real: &Path) -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let status = match Command::new(real).args(&args).status() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("running {}: {e}", real.display());
            return ExitCode::FAILURE;
        }
    };
    if !status.success() {
        return ExitCode::from(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1),
        );
    }
    let out_dir = args
        .iter()
        .position(|a| a == "--out-dir")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let Some(out_dir) = out_dir else {
        return ExitCode::SUCCESS;
    };
    match trim_dir(&out_dir) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "trimming wasm-bindgen's output in {}: {e:#}",
                out_dir.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// Trims the one `NAME_bg.wasm` in `dir` and its glue `NAME.js`.
fn trim_dir(dir: &Path) -> Result<String> {
    let mut modules = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix("_bg.wasm") {
            modules.push(stem.to_owned());
        }
    }
    let [stem] = modules.as_slice() else {
        bail!("expected one *_bg.wasm, found {modules:?}");
    };
    let js_path = dir.join(format!("{stem}.js"));
    let wasm_path = dir.join(format!("{stem}_bg.wasm"));
    let js = std::fs::read_to_string(&js_path)
        .with_context(|| format!("reading {}", js_path.display()))?;
    let (js, classes) = without_unused_classes(&js)?;
    let wasm =
        std::fs::read(&wasm_path).with_context(|| format!("reading {}", wasm_path.display()))?;
    let (trimmed, exports) = without_unnamed_exports(&wasm, &js)?;
    std::fs::write(&js_path, &js).with_context(|| format!("writing {}", js_path.display()))?;
    std::fs::write(&wasm_path, &trimmed)
        .with_context(|| format!("writing {}", wasm_path.display()))?;
    Ok(format!(
        "trimmed the glue: classes {classes:?}; {} exports ({}); module {} → {} bytes",
        exports.len(),
        exports.iter().cloned().collect::<Vec<_>>().join(", "),
        wasm.len(),
        trimmed.len()
    ))
}

/// `js` without the classes nothing else in it names, and their names.
fn without_unused_classes(js: &str) -> Result<(String, Vec<String>)> {
    let mut js = js.to_owned();
    let mut removed = Vec::new();
    for (name, exported) in classes(&js) {
        let listed = UNUSED_EXPORTED_CLASSES.contains(&name.as_str());
        if exported && !listed {
            continue;
        }
        let Some(rest) = without_class(&js, &name, exported) else {
            bail!("the glue's class {name} is not in the shape wasm-bindgen 0.2 writes");
        };
        if names(&rest, &name) {
            if exported {
                bail!("{name} is listed as unused, but the glue still uses it");
            }
            continue;
        }
        js = rest;
        removed.push(name);
    }
    for name in UNUSED_EXPORTED_CLASSES {
        if !removed.iter().any(|r| r == name) {
            println!("note: the glue has no class {name} to remove");
        }
    }
    Ok((js, removed))
}

/// Each top-level class of the glue: its name, and whether it is exported.
fn classes(js: &str) -> Vec<(String, bool)> {
    js.lines()
        .filter_map(|line| {
            let (rest, exported) = match line.strip_prefix("export class ") {
                Some(rest) => (rest, true),
                None => (line.strip_prefix("class ")?, false),
            };
            let name = rest.strip_suffix(" {")?;
            is_ident(name).then(|| (name.to_owned(), exported))
        })
        .collect()
}

/// `js` without class `name`'s declaration (from its line to the first
/// line that is `}`), its `Symbol.dispose` line and its
/// `FinalizationRegistry` constant (and the blank line after the class);
/// `None` if one of them is not there.
fn without_class(js: &str, name: &str, exported: bool) -> Option<String> {
    let export = if exported { "export " } else { "" };
    let head = format!("\n{export}class {name} {{\n");
    let start = js.find(&head)? + 1;
    let end = start + js[start..].find("\n}\n")? + 3;
    let dispose =
        format!("if (Symbol.dispose) {name}.prototype[Symbol.dispose] = {name}.prototype.free;\n");
    let mut out = String::with_capacity(js.len());
    out.push_str(&js[..start]);
    let rest = js[end..].strip_prefix(&dispose)?;
    // The blank line that followed it, too.
    out.push_str(rest.strip_prefix('\n').unwrap_or(rest));
    let registry = format!("\nconst {name}Finalization = ");
    let start = out.find(&registry)? + 1;
    let end = start + out[start..].find("\n});\n")? + 5;
    out.replace_range(start..end, "");
    Some(out)
}

/// Whether `js` has `name` as a whole identifier.
fn names(js: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    js.match_indices(name).any(|(i, _)| {
        let before = js[..i].chars().next_back();
        let after = js[i + name.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// `module` without the function exports `js` does not name, and without
/// what that leaves unreachable; and the names of the exports removed.
fn without_unnamed_exports(module: &[u8], js: &str) -> Result<(Vec<u8>, BTreeSet<String>)> {
    // As wasm-bindgen parses its input (its output is LLVM's, reshaped).
    let mut m = walrus::ModuleConfig::new()
        .strict_validate(false)
        .parse(module)
        .context("parsing wasm-bindgen's module")?;
    let unnamed: Vec<_> = m
        .exports
        .iter()
        .filter(|e| matches!(e.item, walrus::ExportItem::Function(_)) && !names(js, &e.name))
        .map(|e| (e.id(), e.name.clone()))
        .collect();
    let mut removed = BTreeSet::new();
    for (id, name) in unnamed {
        m.exports.delete(id);
        removed.insert(name);
    }
    walrus::passes::gc::run(&mut m);
    Ok((m.emit_wasm(), removed))
}

#[cfg(test)]
mod tests {
    use super::{classes, names, without_class, without_unnamed_exports, without_unused_classes};

    const GLUE: &str = "import x from './x.js';

export class MinifyConfig {
    free() {
        wasm.__wbg_minifyconfig_free(this.__wbg_ptr, 0);
    }
}
if (Symbol.dispose) MinifyConfig.prototype[Symbol.dispose] = MinifyConfig.prototype.free;

class IntoUnderlyingSink {
    write(chunk) {
        return wasm.intounderlyingsink_write(this.__wbg_ptr, chunk);
    }
}
if (Symbol.dispose) IntoUnderlyingSink.prototype[Symbol.dispose] = IntoUnderlyingSink.prototype.free;

class IntoUnderlyingSource {
    static __wrap(ptr) {
        return Object.create(IntoUnderlyingSource.prototype);
    }
}
if (Symbol.dispose) IntoUnderlyingSource.prototype[Symbol.dispose] = IntoUnderlyingSource.prototype.free;

export class SnapshotPointer {
    fetch(req) {
        return wasm.snapshotpointer_fetch(this.__wbg_ptr, req);
    }
}
if (Symbol.dispose) SnapshotPointer.prototype[Symbol.dispose] = SnapshotPointer.prototype.free;

function imports() {
    return { __wbg_new: function(a, b) { return new ReadableStream(IntoUnderlyingSource.__wrap(a), b); } };
}
const IntoUnderlyingSinkFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(({ ptr, instance }) => {
    if (instance === __wbg_instance_id) wasm.__wbg_intounderlyingsink_free(ptr, 1);
});
const IntoUnderlyingSourceFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(({ ptr, instance }) => {
    if (instance === __wbg_instance_id) wasm.__wbg_intounderlyingsource_free(ptr, 1);
});
const MinifyConfigFinalization = (typeof FinalizationRegistry === 'undefined')
    ? { register: () => {}, unregister: () => {} }
    : new FinalizationRegistry(({ ptr, instance }) => {
    if (instance === __wbg_instance_id) wasm.__wbg_minifyconfig_free(ptr, 1);
});
const SnapshotPointerFinalization = 1;
";

    #[test]
    fn finds_classes() {
        let found = classes(GLUE);
        let expected = [
            ("MinifyConfig", true),
            ("IntoUnderlyingSink", false),
            ("IntoUnderlyingSource", false),
            ("SnapshotPointer", true),
        ];
        let expected: Vec<_> = expected.iter().map(|&(n, e)| (n.to_owned(), e)).collect();
        assert_eq!(found, expected);
    }

    #[test]
    fn removes_unused_classes_only() {
        let (js, removed) = without_unused_classes(GLUE).unwrap();
        assert_eq!(removed, ["MinifyConfig", "IntoUnderlyingSink"]);
        for gone in [
            "MinifyConfig",
            "IntoUnderlyingSink",
            "minifyconfig",
            "intounderlyingsink",
        ] {
            assert!(!js.contains(gone), "{gone} left in\n{js}");
        }
        // What stays is byte for byte what was there.
        assert!(js.starts_with("import x from './x.js';\n\nclass IntoUnderlyingSource {\n"));
        for kept in [
            "class IntoUnderlyingSource {",
            "export class SnapshotPointer {",
            "if (Symbol.dispose) SnapshotPointer.prototype",
            "const IntoUnderlyingSourceFinalization = (typeof",
            "IntoUnderlyingSource.__wrap(a), b); } };\n}\nconst IntoUnderlying",
            "wasm.__wbg_intounderlyingsource_free(ptr, 1);\n});\nconst SnapshotPointerFinalization = 1;\n",
        ] {
            assert!(js.contains(kept), "{kept} missing from\n{js}");
        }
        assert_eq!(GLUE.len() - js.len(), 971);
    }

    #[test]
    fn a_listed_class_still_used_fails() {
        let used = format!("{GLUE}\nconst c = new MinifyConfig();\n");
        let err = without_unused_classes(&used).unwrap_err();
        assert!(
            err.to_string().contains("MinifyConfig is listed as unused"),
            "{err}"
        );
        // Without its registry: not the shape expected.
        let odd = GLUE.replace("const MinifyConfigFinalization", "const MinifyFinalization");
        assert!(without_class(&odd, "MinifyConfig", true).is_none());
        assert!(without_unused_classes(&odd).is_err());
    }

    #[test]
    fn whole_identifiers_only() {
        assert!(names("a.init();", "init"));
        assert!(!names("a.initial();", "init"));
        assert!(!names("a.__init();", "init"));
        assert!(!names("MinifyConfigFinalization", "MinifyConfig"));
        assert!(names("(MinifyConfig)", "MinifyConfig"));
    }

    #[test]
    fn drops_unnamed_exports_and_what_only_they_reach() {
        use walrus::{FunctionBuilder, Module};
        let mut m = Module::default();
        let mut b = FunctionBuilder::new(&mut m.types, &[], &[]);
        b.func_body();
        let helper = b.finish(vec![], &mut m.funcs);
        let mut b = FunctionBuilder::new(&mut m.types, &[], &[]);
        b.func_body().call(helper);
        let dead = b.finish(vec![], &mut m.funcs);
        let mut b = FunctionBuilder::new(&mut m.types, &[], &[]);
        b.func_body();
        let kept = b.finish(vec![], &mut m.funcs);
        m.exports.add("dead", dead);
        m.exports.add("kept", kept);
        let module = m.emit_wasm();

        let (out, removed) = without_unnamed_exports(&module, "wasm.kept(); // dead_code").unwrap();
        assert_eq!(removed.into_iter().collect::<Vec<_>>(), ["dead"]);
        let out = Module::from_buffer(&out).unwrap();
        let exports: Vec<_> = out.exports.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(exports, ["kept"]);
        assert_eq!(out.funcs.iter().count(), 1);

        let (same, removed) =
            without_unnamed_exports(&module, "wasm.kept(); wasm.dead();").unwrap();
        assert!(removed.is_empty());
        assert_eq!(Module::from_buffer(&same).unwrap().funcs.iter().count(), 3);
    }
}
