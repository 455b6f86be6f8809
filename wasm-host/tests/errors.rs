//! Failure paths: rejected snapshots, bad requests, unknown handles, and
//! modules that are not (or misbehave as) the bunting ABI.

mod common;

use bunting_core::protocol::EvalRequest;
use bunting_core::{Engine, ErrorCode, LoadError, Reason};
use bunting_wasm_host::{HostError, WasmEngine, WasmInstance, WasmRuntime};
use serde_json::{Value, json};

const BROKEN: &str = r#"{"schemaVersion": 1, "environment": "dev", "version": 3,
  "generatedAt": "2026-11-25T00:00:00Z",
  "flags": [
    {"key": "fine", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
     "fallthrough": {"variant": "on"}},
    {"key": "bad-rule", "type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
     "rules": [{"condition": "country ==", "serve": {"variant": "on"}}], "fallthrough": {"variant": "off"}},
    {"key": "bad-variant", "type": "string", "variants": {"a": "A"}, "offVariant": "a",
     "fallthrough": {"variant": "zzz"}}
  ]}"#;

const TINY: &str = r#"{"schemaVersion": 1, "environment": "dev", "version": 1,
  "generatedAt": "2026-11-25T00:00:00Z",
  "flags": [{"key": "greeting", "type": "string", "variants": {"hi": "Hi", "yo": "Yo"},
    "offVariant": "hi", "fallthrough": {"variant": "hi"}}]}"#;

fn all_request() -> EvalRequest {
    EvalRequest {
        flag: None,
        context: json!({"targetingKey": "u1"}),
        now_ms: 0,
        expected_type: None,
    }
}

#[test]
fn the_public_types_can_cross_threads() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send_sync::<WasmRuntime>();
    send::<WasmEngine>();
    send::<WasmInstance>();
    send_sync::<HostError>();
}

#[test]
fn a_syntax_error_rejects_the_snapshot_with_its_position() {
    let err = common::runtime()
        .load_snapshot(r#"{"schemaVersion": 1,"#)
        .unwrap_err();
    let HostError::Load { message, problems } = &err else {
        panic!("expected a load error, got {err:?}");
    };
    assert!(message.contains("line 1"), "{message}");
    assert!(problems.is_empty());
    assert!(
        err.to_string().starts_with("the snapshot was rejected: "),
        "{err}"
    );
    // Lenient loads cannot rescue a document that does not parse.
    assert!(matches!(
        common::runtime().load_snapshot_lenient("[]"),
        Err(HostError::Load { .. })
    ));
}

#[test]
fn an_invalid_snapshot_lists_every_problem_as_natively() {
    let err = common::runtime().load_snapshot(BROKEN).unwrap_err();
    let HostError::Load { message, problems } = err else {
        panic!("expected a load error, got {err:?}");
    };
    let Err(LoadError::Invalid(native)) = Engine::from_json(BROKEN) else {
        panic!("the snapshot is invalid natively too");
    };
    assert_eq!(problems, native);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(message.contains("2 problem(s)"), "{message}");
    let rule = problems
        .iter()
        .find(|p| p.entity.as_deref() == Some("bad-rule"))
        .unwrap();
    assert!(rule.parse_error);
    assert_eq!(rule.path, "flags[1].rules[0].condition");
}

#[test]
fn a_lenient_load_keeps_the_valid_flags() {
    let (mut engine, problems) = common::runtime().load_snapshot_lenient(BROKEN).unwrap();
    assert_eq!(problems.len(), 2);
    let ctx = json!({"targetingKey": "u1", "country": "US"});
    let fine = engine.evaluate("fine", &ctx, 0).unwrap();
    assert_eq!(fine.reason, Reason::Static);
    assert_eq!(fine.value.as_deref(), Some(&json!(true)));
    let broken = engine.evaluate("bad-rule", &ctx, 0).unwrap();
    assert_eq!(broken.reason, Reason::Error);
    assert!(broken.value.is_none());
    let (native, _) = Engine::from_snapshot_lenient(&serde_json::from_str(BROKEN).unwrap());
    assert_eq!(
        serde_json::to_value(engine.evaluate_all(&ctx, 0).unwrap()).unwrap(),
        serde_json::to_value(native.evaluate_all(&ctx, 0)).unwrap()
    );
    // Decoded on access, whether the reply was compact or JSON.
    let want = native.evaluate_all(&ctx, 0);
    let view = engine.evaluate_all_view(&ctx, 0).unwrap();
    assert_eq!(view.to_vec(), want);
    for (i, e) in want.iter().enumerate() {
        common::assert_same(view.get(i), Some(e));
        common::assert_same(view.find(&e.key), want.iter().find(|w| w.key == e.key));
    }
    assert!(view.get(want.len()).is_none());
}

#[test]
fn evaluation_errors_are_results_not_host_errors() {
    let mut engine = common::runtime().load_snapshot(TINY).unwrap();
    let ctx = json!({"targetingKey": "u1"});
    let missing = engine.evaluate("nope", &ctx, 0).unwrap();
    assert_eq!(missing.error_code, Some(ErrorCode::FlagNotFound));
    let mismatch = engine
        .evaluate_typed("greeting", Some(bunting_core::FlagType::Boolean), &ctx, 0)
        .unwrap();
    assert_eq!(mismatch.error_code, Some(ErrorCode::TypeMismatch));
    let bad_ctx = engine.evaluate("greeting", &json!("u1"), 0).unwrap();
    assert_eq!(bad_ctx.error_code, Some(ErrorCode::InvalidContext));
    let all: Vec<_> = engine
        .evaluate_all(&json!(null), 0)
        .unwrap()
        .into_iter()
        .map(|e| e.into_owned())
        .collect();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].error_code, Some(ErrorCode::InvalidContext));
    // With their messages, decoded on access too.
    assert!(all[0].error_message.is_some());
    let view = engine.evaluate_all_view(&json!(null), 0).unwrap();
    assert_eq!(view.to_vec(), all);
    common::assert_same(view.find("greeting"), Some(&all[0]));
    assert_eq!(view.iter().len(), 1);
}

#[test]
fn an_unknown_handle_is_a_bad_request() {
    let mut instance = common::runtime().instantiate().unwrap();
    let err = instance.answer(7, &all_request()).unwrap_err();
    let HostError::BadRequest(message) = &err else {
        panic!("expected a bad request, got {err:?}");
    };
    assert_eq!(message, "no engine with handle 7");
    assert!(!instance.is_poisoned());
    // The instance still works afterwards.
    let (handle, _) = instance.load(TINY, false).unwrap();
    assert_eq!(
        instance.answer(handle, &all_request()).unwrap()[0]["value"],
        "Hi"
    );
}

#[test]
fn an_unloaded_handle_is_a_bad_request_and_is_reused() {
    let mut instance = common::runtime().instantiate().unwrap();
    let (a, _) = instance.load(TINY, false).unwrap();
    let (b, _) = instance.load(TINY, true).unwrap();
    assert_ne!(a, b);
    instance.unload(a).unwrap();
    assert!(matches!(
        instance.answer(a, &all_request()),
        Err(HostError::BadRequest(m)) if m.contains("no engine with handle")
    ));
    assert!(instance.answer(b, &all_request()).is_ok());
    instance.unload(a).unwrap(); // unloading twice is harmless
    let (c, _) = instance.load(TINY, false).unwrap();
    assert_eq!(c, a, "free slots are reused");
}

#[test]
fn a_malformed_request_is_a_bad_request() {
    let mut instance = common::runtime().instantiate().unwrap();
    let (handle, _) = instance.load(TINY, false).unwrap();
    for raw in [
        &b"{\"context\": {}, \"nowMs\": \"soon\"}"[..],
        b"",
        b"\xff\xfe",
    ] {
        let reply: Value =
            serde_json::from_slice(&instance.eval_raw(handle, raw).unwrap()).unwrap();
        let message = reply["badRequest"]
            .as_str()
            .unwrap_or_else(|| panic!("{reply}"));
        assert!(message.starts_with("bad evaluation request"), "{message}");
    }
}

#[test]
fn engines_are_isolated() {
    let runtime = common::runtime();
    let mut a = runtime.load_snapshot(TINY).unwrap();
    let mut b = runtime
        .load_snapshot(&TINY.replace(r#""variant": "hi"}"#, r#""variant": "yo"}"#))
        .unwrap();
    assert_eq!(a.handle(), b.handle(), "each engine has its own instance");
    let ctx = json!({});
    assert_eq!(
        a.evaluate("greeting", &ctx, 0)
            .unwrap()
            .value
            .unwrap()
            .as_ref(),
        "Hi"
    );
    assert_eq!(
        b.evaluate("greeting", &ctx, 0)
            .unwrap()
            .value
            .unwrap()
            .as_ref(),
        "Yo"
    );
    drop(a);
    assert_eq!(
        b.evaluate("greeting", &ctx, 0)
            .unwrap()
            .value
            .unwrap()
            .as_ref(),
        "Yo"
    );
}

#[test]
fn a_missing_file_names_the_path() {
    let err = WasmRuntime::from_file("/nonexistent/bunting.wasm").unwrap_err();
    assert!(matches!(err, HostError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/bunting.wasm"),
        "{err}"
    );
}

#[test]
fn bytes_that_are_not_wasm_do_not_compile() {
    let err = WasmRuntime::from_bytes(b"\0asm but not really").unwrap_err();
    assert!(matches!(err, HostError::Compile { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot compile the WASM module"),
        "{err}"
    );
}

/// A minimal encoder for hand-made test modules.
mod wasm {
    pub(crate) fn uleb(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    pub(crate) fn sleb(mut v: i64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
            out.push(if done { byte } else { byte | 0x80 });
            if done {
                return;
            }
        }
    }

    pub(crate) fn name(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        uleb(s.len() as u64, &mut out);
        out.extend_from_slice(s.as_bytes());
        out
    }

    pub(crate) fn vec(items: Vec<Vec<u8>>) -> Vec<u8> {
        let mut out = Vec::new();
        uleb(items.len() as u64, &mut out);
        items.into_iter().for_each(|i| out.extend(i));
        out
    }

    pub(crate) const I32: u8 = 0x7f;
    pub(crate) const I64: u8 = 0x7e;

    pub(crate) fn func_type(params: &[u8], results: &[u8]) -> Vec<u8> {
        let mut out = vec![0x60];
        out.extend(vec(params.iter().map(|p| vec![*p]).collect()));
        out.extend(vec(results.iter().map(|r| vec![*r]).collect()));
        out
    }

    /// A function body without locals; `end` is appended.
    pub(crate) fn body(instrs: &[u8]) -> Vec<u8> {
        let mut inner = vec![0x00];
        inner.extend_from_slice(instrs);
        inner.push(0x0b);
        let mut out = Vec::new();
        uleb(inner.len() as u64, &mut out);
        out.extend(inner);
        out
    }

    pub(crate) fn i64_const(v: i64) -> Vec<u8> {
        let mut out = vec![0x42];
        sleb(v, &mut out);
        out
    }

    /// Assembles a module from `(section id, contents)` pairs.
    pub(crate) fn module(sections: Vec<(u8, Vec<u8>)>) -> Vec<u8> {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        for (id, body) in sections {
            out.push(id);
            uleb(body.len() as u64, &mut out);
            out.extend(body);
        }
        out
    }

    pub(crate) fn export(n: &str, kind: u8, index: u64) -> Vec<u8> {
        let mut out = name(n);
        out.push(kind);
        uleb(index, &mut out);
        out
    }

    /// A fake bunting ABI: `bunting_load` replies with `load_reply` (stored at
    /// 2048), `bunting_catalog` with an empty catalog (at 3072), and
    /// `bunting_eval`, `bunting_eval_compact` and `bunting_eval_into` run `eval` (which must
    /// leave an `i64`).
    pub(crate) fn fake_abi(load_reply: &[u8], eval: &[u8]) -> Vec<u8> {
        let types = vec(vec![
            func_type(&[I32], &[I32]),
            func_type(&[I32, I32], &[]),
            func_type(&[I32, I32, I32], &[I64]),
            func_type(&[I32], &[]),
            func_type(&[I32, I32], &[I64]),
            func_type(&[], &[I32]),
            func_type(&[I32], &[I64]),
        ]);
        let funcs = vec(vec![
            vec![0],
            vec![1],
            vec![2],
            vec![2],
            vec![3],
            vec![4],
            vec![5],
            vec![6],
            vec![2],
            vec![2],
            vec![5],
        ]);
        let memory = vec(vec![vec![0x00, 0x01]]);
        let exports = vec(vec![
            export("memory", 0x02, 0),
            export("bunting_alloc", 0x00, 0),
            export("bunting_free", 0x00, 1),
            export("bunting_load", 0x00, 2),
            export("bunting_eval", 0x00, 3),
            export("bunting_unload", 0x00, 4),
            export("bunting_hash_keys", 0x00, 5),
            export("bunting_schema_version", 0x00, 6),
            export("bunting_catalog", 0x00, 7),
            export("bunting_eval_compact", 0x00, 8),
            export("bunting_eval_into", 0x00, 9),
            export("bunting_compact_version", 0x00, 10),
        ]);
        let code = vec(vec![
            body(&[0x41, 0x80, 0x08]), // i32.const 1024
            body(&[]),
            body(&i64_const((2048 << 32) | load_reply.len() as i64)),
            body(eval),
            body(&[]),
            body(&i64_const(0)),
            body(&[0x41, 0x01]), // i32.const 1
            body(&i64_const((3072 << 32) | super::CATALOG.len() as i64)),
            body(eval),
            body(eval),
            body(&[0x41, 0x02]), // i32.const 2
        ]);
        let mut segment = vec![0x00, 0x41, 0x80, 0x10, 0x0b]; // memory 0, i32.const 2048
        segment.extend(vec(load_reply.iter().map(|b| vec![*b]).collect()));
        let mut catalog = vec![0x00, 0x41, 0x80, 0x18, 0x0b]; // memory 0, i32.const 3072
        catalog.extend(vec(super::CATALOG.iter().map(|b| vec![*b]).collect()));
        let data = vec(vec![segment, catalog]);
        module(vec![
            (1, types),
            (3, funcs),
            (5, memory),
            (7, exports),
            (10, code),
            (11, data),
        ])
    }
}

const LOAD_OK: &[u8] = br#"{"ok":{"handle":0,"problems":[]}}"#;
/// The fake ABI's catalog: no flags.
const CATALOG: &[u8] = br#"{"flags":[]}"#;

#[test]
fn a_module_with_imports_is_reported() {
    let bytes = wasm::module(vec![
        (1, wasm::vec(vec![wasm::func_type(&[], &[])])),
        (2, {
            let mut import = wasm::name("__wbindgen_placeholder__");
            import.extend(wasm::name("__wbindgen_describe"));
            import.extend([0x00, 0x00]);
            wasm::vec(vec![import])
        }),
    ]);
    let err = WasmRuntime::from_bytes(&bytes).unwrap_err();
    let HostError::UnexpectedImports { imports } = &err else {
        panic!("expected unexpected imports, got {err:?}");
    };
    assert_eq!(imports, &["__wbindgen_placeholder__::__wbindgen_describe"]);
    assert!(err.to_string().contains("--features abi"), "{err}");
}

#[test]
fn a_module_without_the_abi_is_reported() {
    let err = WasmRuntime::from_bytes(&wasm::module(vec![])).unwrap_err();
    assert!(
        matches!(&err, HostError::MissingExport { name, found, .. } if name == "bunting_alloc" && found == "it is missing"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`bunting_alloc`"), "{err}");

    let wrong = wasm::module(vec![
        (1, wasm::vec(vec![wasm::func_type(&[], &[])])),
        (3, wasm::vec(vec![vec![0]])),
        (7, wasm::vec(vec![wasm::export("bunting_alloc", 0x00, 0)])),
        (10, wasm::vec(vec![wasm::body(&[])])),
    ]);
    let err = WasmRuntime::from_bytes(&wrong).unwrap_err();
    assert!(
        matches!(&err, HostError::MissingExport { found, expected, .. }
            if found == "it has () -> ()" && expected == "(i32) -> (i32)"),
        "{err:?}"
    );
}

#[test]
fn the_fake_abi_works() {
    // Sanity check of the encoder: a well-behaved fake loads.
    let runtime = WasmRuntime::from_bytes(&wasm::fake_abi(LOAD_OK, &wasm::i64_const(0))).unwrap();
    let engine = runtime.load_snapshot("{}").unwrap();
    assert_eq!(engine.handle(), 0);
}

#[test]
fn a_trap_poisons_the_instance() {
    let runtime = WasmRuntime::from_bytes(&wasm::fake_abi(LOAD_OK, &[0x00])).unwrap(); // unreachable
    let mut engine = runtime.load_snapshot("{}").unwrap();
    let err = engine.evaluate("x", &json!({}), 0).unwrap_err();
    assert!(
        matches!(
            err,
            HostError::Trap {
                call: "bunting_eval_into",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("bunting_eval_into"), "{err}");
    assert!(engine.instance().is_poisoned());
    assert!(matches!(
        engine.evaluate("x", &json!({}), 0),
        Err(HostError::Poisoned)
    ));
}

#[test]
fn a_reply_outside_memory_is_a_protocol_error() {
    let outside = wasm::i64_const((0x1_0000 << 32) | 16);
    let runtime = WasmRuntime::from_bytes(&wasm::fake_abi(LOAD_OK, &outside)).unwrap();
    let mut engine = runtime.load_snapshot("{}").unwrap();
    let err = engine.evaluate_all(&json!({}), 0).unwrap_err();
    assert!(
        matches!(&err, HostError::Protocol(m) if m.contains("outside memory")),
        "{err:?}"
    );
}

#[test]
fn a_garbage_reply_is_a_protocol_error() {
    let runtime = WasmRuntime::from_bytes(&wasm::fake_abi(b"not json", &[0x00])).unwrap();
    let err = runtime.load_snapshot("{}").unwrap_err();
    assert!(
        matches!(&err, HostError::Protocol(m) if m.contains("bunting_load") && m.contains("not json")),
        "{err:?}"
    );
}

#[test]
fn results_the_catalog_cannot_express_are_viewed_from_json() {
    // Two flags with one key, loaded leniently: the catalog leaves the key
    // out, so the module answers an evaluate-all as JSON.
    let doc = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
      "generatedAt": "2026-11-25T00:00:00Z", "flags": [
      {"key": "d", "type": "string", "variants": {"v": "first"}, "offVariant": "v",
       "fallthrough": {"variant": "v"}},
      {"key": "d", "type": "string", "variants": {"v": "second"}, "offVariant": "v",
       "fallthrough": {"variant": "v"}},
      {"key": "ok", "type": "boolean", "variants": {"on": true}, "offVariant": "on",
       "fallthrough": {"variant": "on"}}]}"#;
    let (mut engine, _) = common::runtime().load_snapshot_lenient(doc).unwrap();
    let (native, _) = Engine::from_snapshot_lenient(&serde_json::from_str(doc).unwrap());
    let ctx = json!({"targetingKey": "u"});
    let want = native.evaluate_all(&ctx, 0);
    assert_eq!(engine.evaluate_all(&ctx, 0).unwrap(), want);
    let view = engine.evaluate_all_view(&ctx, 0).unwrap();
    assert_eq!(view.len(), want.len());
    assert_eq!(view.to_vec(), want);
    for (view, want) in view.iter().zip(&want) {
        common::assert_same(Some(view), Some(want));
    }
    common::assert_same(view.find("ok"), want.iter().find(|e| e.key == "ok"));
    common::assert_same(view.find("d"), want.iter().find(|e| e.key == "d"));
    assert!(view.find("nope").is_none());
}
