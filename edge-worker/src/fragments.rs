//! Pre-serialized pieces of a bulk body's items.
//!
//! Serializing the OFREP items of a bulk evaluation cost about as much as
//! evaluating them (natively ≈ 176 µs against ≈ 173 µs for 1,000 flags):
//! every key, description, owner, tag list, variant name and value was
//! escaped again on every request, though within one snapshot they never
//! change. [`Fragments`] keeps, per flag, the JSON of what does not depend
//! on the evaluation — the item's opening with its key, the metadata's
//! description and owner, its tags, and per variant the value and variant
//! members — made the first time a flag (or variant) is served, and
//! [`Fragments::write_item`] copies them around the few members that do
//! depend on it (OFREP reason, bunting's finer reason, rule id, failed
//! prerequisite). The bytes are exactly [`crate::ofrep::item`]'s (a test
//! compares both on every conformance fixture); errors, and a success
//! without a variant, are written member by member (`write_plain`), not
//! through `item`'s `Serialize`, which stays out of the worker's bundle.

use std::cell::RefCell;
use std::collections::HashMap;

use bunting_core::Evaluation;
use serde::Serialize;

use crate::ofrep::{NumberForms, Presented, ofrep_error_code, ofrep_reason};

/// The pieces of the flags served so far from one snapshot. Lives beside
/// the snapshot's engine; a new snapshot gets new fragments.
#[derive(Debug, Default)]
pub struct Fragments {
    flags: RefCell<HashMap<Box<str>, FlagPieces, foldhash::fast::RandomState>>,
}

/// One flag's pieces.
#[derive(Debug)]
struct FlagPieces {
    /// `{"key":<key>,"metadata":{`.
    head: Box<[u8]>,
    /// The metadata members from the flag's own metadata, once an
    /// evaluation with metadata was seen (clients get none).
    own: Option<OwnMetadata>,
    /// Per variant name: `"value":<value>,"variant":<name>}`.
    served: Vec<(Box<str>, Box<[u8]>)>,
}

/// `"description":…,"owner":…` and `"tags":"a,b"`, each possibly empty.
#[derive(Debug)]
struct OwnMetadata {
    about: Box<[u8]>,
    tags: Box<[u8]>,
}

impl Fragments {
    /// Appends the OFREP item of `e` to `out`: byte for byte
    /// `serde_json::to_writer(out, &item(e, numbers))`.
    pub fn write_item(&self, out: &mut Vec<u8>, e: &Evaluation<'_>, numbers: &NumberForms) {
        let Some(variant) = e.variant.as_deref().filter(|_| e.error_code.is_none()) else {
            write_plain(out, e, numbers);
            return;
        };
        let mut flags = self.flags.borrow_mut();
        let pieces = match flags.get_mut(&*e.key) {
            Some(p) => p,
            None => flags
                .entry(Box::from(&*e.key))
                .or_insert_with(|| FlagPieces::new(&e.key)),
        };
        if pieces.own.is_none()
            && let Some(meta) = e.metadata.as_deref()
        {
            pieces.own = Some(OwnMetadata::of(meta));
        }
        out.extend_from_slice(&pieces.head);
        let mut members = Members { out, first: true };
        let (reason, finer) = ofrep_reason(e.reason);
        if let Some(finer) = finer {
            members.dynamic(b"\"buntingReason\":", finer);
        }
        let own = e.metadata.as_ref().and(pieces.own.as_ref());
        if let Some(own) = own {
            members.fixed(&own.about);
        }
        if let Some(p) = e.prerequisite_failed.as_deref() {
            members.dynamic(b"\"prerequisiteFailed\":", p);
        }
        if let Some(r) = e.rule_id.as_deref() {
            members.dynamic(b"\"ruleId\":", r);
        }
        if let Some(own) = own {
            members.fixed(&own.tags);
        }
        out.extend_from_slice(b"},\"reason\":");
        json(out, reason);
        out.push(b',');
        match pieces.served.iter().find(|(name, _)| &**name == variant) {
            Some((_, bytes)) => out.extend_from_slice(bytes),
            None => {
                let mut bytes = Vec::with_capacity(48);
                bytes.extend_from_slice(b"\"value\":");
                let value = e.value.as_deref().unwrap_or(&serde_json::Value::Null);
                let float = matches!(value, serde_json::Value::Number(n) if !n.is_f64())
                    && numbers.is_float_flag(&e.key);
                json(&mut bytes, &Presented { value, float });
                bytes.extend_from_slice(b",\"variant\":");
                json(&mut bytes, variant);
                bytes.push(b'}');
                out.extend_from_slice(&bytes);
                pieces.served.push((Box::from(variant), bytes.into()));
            }
        }
    }
}

/// The OFREP item of `e` without pieces: an error object, or a success
/// without a variant. Byte for byte `serde_json::to_writer(out, &item(e,
/// numbers))`: the same members in the same (sorted) order.
fn write_plain(out: &mut Vec<u8>, e: &Evaluation<'_>, numbers: &NumberForms) {
    out.push(b'{');
    let mut members = Members { out, first: true };
    match e.error_code {
        Some(code) => {
            let (ofrep_code, finer) = ofrep_error_code(code);
            members.dynamic(b"\"errorCode\":", ofrep_code);
            members.dynamic(
                b"\"errorDetails\":",
                e.error_message.as_deref().unwrap_or(code.as_str()),
            );
            members.dynamic(b"\"key\":", &e.key);
            if let Some(finer) = finer {
                members.dynamic(b"\"metadata\":{\"buntingErrorCode\":", finer);
                out.push(b'}');
            }
        }
        None => {
            members.dynamic(b"\"key\":", &e.key);
            out.extend_from_slice(b",\"metadata\":{");
            let mut meta = Members { out, first: true };
            let (reason, finer) = ofrep_reason(e.reason);
            if let Some(finer) = finer {
                meta.dynamic(b"\"buntingReason\":", finer);
            }
            let own = e.metadata.as_deref();
            if let Some(d) = own.and_then(|m| m.description.as_deref()) {
                meta.dynamic(b"\"description\":", d);
            }
            if let Some(o) = own.and_then(|m| m.owner.as_deref()) {
                meta.dynamic(b"\"owner\":", o);
            }
            if let Some(p) = e.prerequisite_failed.as_deref() {
                meta.dynamic(b"\"prerequisiteFailed\":", p);
            }
            if let Some(r) = e.rule_id.as_deref() {
                meta.dynamic(b"\"ruleId\":", r);
            }
            if let Some(own) = own.filter(|m| !m.tags.is_empty()) {
                meta.dynamic(b"\"tags\":", &own.tags.join(","));
            }
            out.extend_from_slice(b"},\"reason\":");
            json(out, reason);
            out.extend_from_slice(b",\"value\":");
            let value = e.value.as_deref().unwrap_or(&serde_json::Value::Null);
            let float = matches!(value, serde_json::Value::Number(n) if !n.is_f64())
                && numbers.is_float_flag(&e.key);
            json(out, &Presented { value, float });
            if let Some(v) = e.variant.as_deref() {
                out.extend_from_slice(b",\"variant\":");
                json(out, v);
            }
        }
    }
    out.push(b'}');
}

impl FlagPieces {
    fn new(key: &str) -> FlagPieces {
        let mut head = b"{\"key\":".to_vec();
        json(&mut head, key);
        head.extend_from_slice(b",\"metadata\":{");
        FlagPieces {
            head: head.into(),
            own: None,
            served: Vec::new(),
        }
    }
}

impl OwnMetadata {
    fn of(meta: &bunting_core::FlagMetadata) -> OwnMetadata {
        let mut about = Vec::new();
        let mut members = Members {
            out: &mut about,
            first: true,
        };
        if let Some(d) = meta.description.as_deref() {
            members.dynamic(b"\"description\":", d);
        }
        if let Some(o) = meta.owner.as_deref() {
            members.dynamic(b"\"owner\":", o);
        }
        let mut tags = Vec::new();
        if !meta.tags.is_empty() {
            tags.extend_from_slice(b"\"tags\":");
            json(&mut tags, &meta.tags.join(","));
        }
        OwnMetadata {
            about: about.into(),
            tags: tags.into(),
        }
    }
}

/// The members of a JSON object being written, commas between them.
struct Members<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl Members<'_> {
    /// A member already serialized (`"name":value`, or several joined by
    /// commas); nothing when empty.
    fn fixed(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(bytes);
    }

    /// A member `name` (given as `"name":`) with string value `value`.
    fn dynamic(&mut self, name: &[u8], value: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(name);
        json(self.out, value);
    }
}

/// Appends `value` as JSON (strings escaped as serde_json escapes them).
fn json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Writing to a Vec cannot fail, and every map key is a string.
    serde_json::to_writer(out, value).expect("an OFREP item serializes");
}

#[cfg(test)]
mod tests {
    use bunting_core::{Engine, ParsedSnapshot};
    use serde_json::{Value, json};

    use crate::audience::Audience;
    use crate::ofrep::{NumberForms, bulk, single};

    /// Every conformance fixture: its path, its JSON, and its snapshot's
    /// engine (loaded leniently) and number forms.
    fn fixtures() -> impl Iterator<Item = (std::path::PathBuf, Value, Engine, NumberForms)> {
        crate::test_fixtures::conformance_paths()
            .into_iter()
            .map(|path| {
                let fixture: Value =
                    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let doc = fixture["snapshot"].to_string();
                let parsed = ParsedSnapshot::parse(&doc).unwrap();
                let engine = Engine::from_parsed_lenient(&parsed).0;
                let forms = NumberForms::of(&parsed);
                (path, fixture, engine, forms)
            })
    }

    /// Every conformance fixture's snapshot, evaluated for every case's
    /// context as a server and as a client key would see it: the bulk body
    /// written from fragments is serde's, byte for byte, while the
    /// fragments fill up across the cases of a fixture.
    #[test]
    fn bodies_from_fragments_are_serdes_on_every_fixture() {
        let mut items = 0;
        for (path, fixture, engine, forms) in fixtures() {
            let streams = json!({"url": "https://e/x"});
            for case in fixture["cases"].as_array().unwrap() {
                let now =
                    bunting_core::time::parse_rfc3339_ms(case["now"].as_str().unwrap()).unwrap();
                for audience in [Audience::Server, Audience::Client] {
                    let evals = audience.evaluate_all(&engine, &case["context"], now);
                    items += evals.len();
                    for s in [None, Some(&streams)] {
                        let b = bulk(&evals, &forms, s);
                        assert_eq!(
                            String::from_utf8(b.to_bytes()).unwrap(),
                            String::from_utf8(b.via_serde()).unwrap(),
                            "{} {}",
                            path.display(),
                            case["name"]
                        );
                    }
                }
            }
        }
        assert!(items > 500, "only {items} items compared");
    }

    /// A single flag's item, as `/ofrep/v1/evaluate/flags/{key}` writes it
    /// ([`crate::ofrep::Item::to_bytes`]), is serde's byte for byte on every
    /// conformance fixture: each flag, a missing one, each requested type
    /// (type mismatches are errors with a finer code), both audiences.
    #[test]
    fn single_items_are_serdes_on_every_fixture() {
        use bunting_core::FlagType;
        let mut items = 0;
        let types = [
            None,
            Some(FlagType::Boolean),
            Some(FlagType::String),
            Some(FlagType::Number),
            Some(FlagType::Object),
        ];
        for (path, fixture, engine, forms) in fixtures() {
            let mut keys: Vec<String> = fixture["snapshot"]["flags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["key"].as_str().map(str::to_string))
                .collect();
            keys.push("no such flag".into());
            for case in fixture["cases"].as_array().unwrap() {
                let now =
                    bunting_core::time::parse_rfc3339_ms(case["now"].as_str().unwrap()).unwrap();
                for audience in [Audience::Server, Audience::Client] {
                    for key in &keys {
                        for expected in types {
                            let e =
                                audience.evaluate(&engine, key, expected, &case["context"], now);
                            let (_, body) = single(&e, &forms);
                            assert_eq!(
                                String::from_utf8(body.to_bytes()).unwrap(),
                                serde_json::to_string(&body).unwrap(),
                                "{} {} {key}",
                                path.display(),
                                case["name"]
                            );
                            items += 1;
                        }
                    }
                }
            }
        }
        assert!(items > 5000, "only {items} items compared");
    }

    #[test]
    fn metadata_seen_first_without_and_then_with_it() {
        // A client's redacted item first (no metadata), then a server's.
        let doc = r#"{"schemaVersion": 1, "environment": "t", "version": 1,
            "generatedAt": "2026-11-25T00:00:00Z",
            "flags": [{"key": "k\"q", "type": "boolean", "clientSide": true,
              "variants": {"on": true, "off": false}, "offVariant": "off",
              "rules": [{"id": "r\n1", "condition": "plan == \"pro\"", "serve": {"variant": "on"}}],
              "fallthrough": {"variant": "off"},
              "metadata": {"description": "d\u00e9", "tags": ["x", "y"]}}]}"#;
        let parsed = ParsedSnapshot::parse(doc).unwrap();
        let engine = Engine::from_parsed(&parsed).unwrap();
        let forms = NumberForms::of(&parsed);
        for ctx in [json!({"plan": "pro"}), json!({})] {
            for audience in [Audience::Client, Audience::Server, Audience::Client] {
                let evals = audience.evaluate_all(&engine, &ctx, 0);
                let b = bulk(&evals, &forms, None);
                assert_eq!(b.to_bytes(), b.via_serde());
            }
        }
    }
}
