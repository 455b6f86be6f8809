//! The `bunting` binary end to end: validate, snapshot and publish, run as
//! a process on real files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bunting_core::{Engine, ErrorCode, Reason};
use serde_json::{Value, json};

use crate::common::cli::{self, root, run as bunting, stderr, stdout};

fn scratch(name: &str) -> PathBuf {
    cli::scratch("bunting-cli", name)
}

/// The diagnostic lines of a failed run: stderr lines starting with `file:`
/// followed by a digit, without the summary line.
fn diagnostics(o: &Output, file: &str) -> Vec<String> {
    assert_eq!(o.status.code(), Some(1), "stderr:\n{}", stderr(o));
    let prefix = format!("{file}:");
    stderr(o)
        .lines()
        .filter(|l| {
            l.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .map(str::to_string)
        .collect()
}

fn ms(rfc3339: &str) -> i64 {
    bunting_core::time::parse_rfc3339_ms(rfc3339).expect("time")
}

#[test]
fn validate_accepts_the_examples() {
    for file in ["examples/flags.yaml", "examples/flags.json"] {
        let o = bunting(&root(), &["validate", file]);
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        assert_eq!(stdout(&o), "ok: 8 flags, 3 environments\n");
    }
}

#[test]
fn validate_reports_bad_yaml_indentation_with_its_position() {
    let dir = scratch("indentation");
    fs::write(
        dir.join("flags.yaml"),
        "environments: [production]
flags:
  dark-mode:
    type: boolean
    variants: { on: true, off: false }
   offVariant: off
",
    )
    .unwrap();
    let o = bunting(&dir, &["validate", "flags.yaml"]);
    assert_eq!(
        diagnostics(&o, "flags.yaml"),
        ["flags.yaml:6:4: while parsing a block mapping, did not find expected key"]
    );
    assert!(
        stderr(&o).ends_with("flags.yaml: 1 problem\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_reports_every_problem_at_its_position() {
    let dir = scratch("problems");
    fs::write(
        dir.join("flags.yaml"),
        r#"environments: [staging, production]
segments:
  staff: { included: [u-1] }
flags:
  search-config:
    type: object
    variants:
      standard: { provider: elastic }
      mobile: { provider: elastic, resultsPerPage: 10 }
    offVariant: standard
    default:
      rules:
        - id: phones
          condition: |
            device.type == "mobile"
              && semver(app.version) >= "4.2.0"
              && segment("staff") ||| x
          serve: mobile
      fallthrough: standard
    environments:
      production:
        rules:
          - id: tablets
            condition: device.type == "tablet"
            serve: tablet
        fallthrough:
          rollout:
            - { variant: standard, weight: 50 }
            - { variant: mobile, weight: 40 }
  banner:
    type: string
    variants: { none: "", sale: "Sale!" }
    offVariant: none
    enabeld: true
    environments:
      staging:
        rules:
          - condition: "geo.country in [\"US\" \"CA\"]"
            serve: sale
"#,
    )
    .unwrap();
    let o = bunting(&dir, &["validate", "flags.yaml"]);
    assert_eq!(
        diagnostics(&o, "flags.yaml"),
        [
            // Line 3 of the block scalar: the third `|` of `|||` is at
            // line 17, column 37.
            "flags.yaml:17:37: flag search-config (env staging): rules[0].condition: expected `||`, found `|`",
            "flags.yaml:25:20: flag search-config (env production): rules[0].serve.variant: unknown variant \"tablet\"",
            "flags.yaml:28:13: flag search-config (env production): fallthrough.rollout: weights sum to 90%, not 100%",
            "flags.yaml:34:5: flag banner: unknown field \"enabeld\" in flag; \"enabled\" belongs in an environment block (`default:` or `environments: {ENV: …}`)",
            // Inside a double-quoted scalar: `\"CA\"` starts at the backslash.
            "flags.yaml:38:48: flag banner (env staging): rules[0].condition: expected `,` or `]`, found string \"CA\"",
        ]
    );
    assert!(
        stderr(&o).ends_with("flags.yaml: 5 problems\n"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn validate_shows_the_condition_with_carets_under_a_rule_language_error() {
    let dir = scratch("caret");
    fs::write(
        dir.join("flags.yaml"),
        r#"environments: [production]
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    default:
      rules:
        - condition: |
            country == "US"
              && plan in ["pro" "team"]
          serve: on
"#,
    )
    .unwrap();
    let o = bunting(&dir, &["validate", "flags.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    // The line of the condition the error is on, the token underlined.
    assert_eq!(
        stderr(&o),
        concat!(
            "flags.yaml:11:33: flag beta: rules[0].condition: expected `,` or `]`, found string \"team\"\n",
            "      && plan in [\"pro\" \"team\"]\n",
            "                        ^^^^^^\n",
            "flags.yaml: 1 problem\n",
        )
    );
}

#[test]
fn validate_reads_json_strictly_and_maps_conditions_through_escapes() {
    let dir = scratch("json");
    fs::write(
        dir.join("trailing.json"),
        "{\"environments\": [\"production\",]}\n",
    )
    .unwrap();
    let o = bunting(&dir, &["validate", "trailing.json"]);
    assert_eq!(
        diagnostics(&o, "trailing.json"),
        ["trailing.json:1:32: invalid JSON: expected value"]
    );

    fs::write(
        dir.join("flags.json"),
        r#"{
  "environments": ["production"],
  "flags": {
    "banner": {
      "type": "string",
      "variants": {"none": "", "sale": "Sale!"},
      "offVariant": "none",
      "default": {
        "rules": [{"condition": "geo.country == \"US\" && \u0061ge >> 18", "serve": "sale"}],
        "fallthrough": {"rollout": {"none": 50, "sale": 49.5}}
      }
    }
  }
}
"#,
    )
    .unwrap();
    let o = bunting(&dir, &["validate", "flags.json"]);
    assert_eq!(
        diagnostics(&o, "flags.json"),
        [
            // After the six-character escape `\u0061`: the second `>`.
            "flags.json:9:69: flag banner: rules[0].condition: expected an attribute, a literal, `now` or `(`, found `>`",
            "flags.json:10:36: flag banner: fallthrough.rollout: weights sum to 99.5%, not 100%",
        ]
    );
}

#[test]
fn snapshot_evaluates_as_defined() {
    let dir = scratch("snapshot");
    let out = dir.join("production.json");
    let o = bunting(
        &root(),
        &[
            "snapshot",
            "examples/flags.yaml",
            "--env",
            "production",
            "-o",
            out.to_str().unwrap(),
            "--version",
            "42",
            "--generated-at",
            "2026-11-25T10:00:00Z",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let json = fs::read_to_string(&out).unwrap();
    let engine = Engine::from_json(&json).expect("the snapshot loads");
    assert_eq!(engine.environment(), "production");
    assert_eq!(engine.version(), 42);
    assert_eq!(engine.generated_at(), "2026-11-25T10:00:00Z");

    let nov25 = ms("2026-11-25T12:00:00Z");
    let eval = |flag: &str, ctx: Value, now: i64| {
        let r = engine.evaluate(flag, &ctx, now);
        (
            r.value.map(|v| v.into_owned()),
            r.reason,
            r.rule_id.map(|s| s.into_owned()),
        )
    };

    // Kill switch.
    let r = eval(
        "instant-payouts",
        json!({"targetingKey": "m-1", "merchant": {"country": "US"}}),
        nov25,
    );
    assert_eq!((r.0, r.1), (Some(json!(false)), Reason::Disabled));

    // Segment targeting, then the schedule (nobody before the first step).
    let staff = json!({"targetingKey": "u-9", "email": "ana@bunting.dev"});
    let r = eval("new-checkout", staff, nov25);
    assert_eq!(
        r,
        (
            Some(json!(true)),
            Reason::TargetingMatch,
            Some("staff".into())
        )
    );
    // After the last step: everybody in new-checkout's half of the layer gets
    // it, and exactly the others are in the copy experiment.
    let dec11 = ms("2026-12-11T00:00:00Z");
    let mut in_checkout = 0;
    for i in 0..400 {
        let ctx = json!({"targetingKey": format!("user-{i}")});
        let checkout = engine.evaluate("new-checkout", &ctx, dec11);
        let copy = engine.evaluate("checkout-button-copy", &ctx, dec11);
        if checkout.reason == Reason::Split {
            in_checkout += 1;
            assert_eq!(checkout.value.as_deref(), Some(&json!(true)));
            assert_eq!(
                copy.reason,
                Reason::Default,
                "user-{i} is in both experiments"
            );
            assert_eq!(copy.value.as_deref(), Some(&json!("Buy now")));
        } else {
            assert_eq!(checkout.reason, Reason::Default);
            assert_eq!(
                copy.reason,
                Reason::Split,
                "user-{i} is in neither experiment"
            );
        }
    }
    assert!(
        (150..250).contains(&in_checkout),
        "{in_checkout} of 400 in new-checkout"
    );
    // Before the first step nobody in the flag's half gets it yet.
    let first = (0..400)
        .map(|i| json!({"targetingKey": format!("user-{i}")}))
        .find(|ctx| engine.evaluate("new-checkout", ctx, dec11).reason == Reason::Split)
        .unwrap();
    let r = eval("new-checkout", first, nov25);
    assert_eq!((r.0, r.1), (Some(json!(false)), Reason::Split));

    // Geo targeting and a prerequisite.
    let us_beta = json!({"targetingKey": "u-1", "geo": {"country": "US"}, "beta_opt_in": true});
    let de_beta = json!({"targetingKey": "u-2", "geo": {"country": "DE"}, "beta_opt_in": true});
    assert_eq!(
        eval("payments-v2", us_beta.clone(), nov25),
        (
            Some(json!(true)),
            Reason::TargetingMatch,
            Some("north-america".into())
        )
    );
    assert_eq!(
        eval("one-click-refunds", us_beta, nov25),
        (
            Some(json!(true)),
            Reason::TargetingMatch,
            Some("beta".into())
        )
    );
    let r = engine.evaluate("one-click-refunds", &de_beta, nov25);
    assert_eq!(r.value.as_deref(), Some(&json!(false)));
    assert_eq!(r.prerequisite_failed.as_deref(), Some("payments-v2"));

    // JSON configuration by device type and version.
    let r = eval(
        "search-config",
        json!({"targetingKey": "u-3", "device": {"type": "mobile"}}),
        nov25,
    );
    assert_eq!(r.0.unwrap()["resultsPerPage"], json!(10));
    let r = eval(
        "search-config",
        json!({"targetingKey": "u-4", "plan": "enterprise", "app": {"version": "4.3"}}),
        nov25,
    );
    assert_eq!(r.0.unwrap()["rerank"]["topK"], json!(50));

    // A time window by country.
    let us = json!({"targetingKey": "u-5", "geo": {"country": "US"}});
    assert_eq!(
        eval("holiday-banner", us.clone(), ms("2026-11-28T12:00:00Z")).0,
        Some(json!("Black Friday: 30% off everything"))
    );
    assert_eq!(
        eval("holiday-banner", us, ms("2026-12-02T12:00:00Z")),
        (Some(json!("")), Reason::Default, None)
    );
    assert_eq!(
        eval(
            "holiday-banner",
            json!({"targetingKey": "u-6", "geo": {"country": "DE"}}),
            ms("2026-12-20T12:00:00Z")
        )
        .2,
        Some("eu-winter".into())
    );

    // A number flag bucketed by account.
    assert_eq!(
        eval("max-upload-mb", json!({"plan": "enterprise"}), nov25).0,
        Some(json!(1024))
    );
    let desktop =
        json!({"plan": "pro", "device": {"type": "desktop"}, "app": {"version": "3.2.0"}});
    assert_eq!(eval("max-upload-mb", desktop, nov25).0, Some(json!(100)));
    let r = engine.evaluate("max-upload-mb", &json!({"plan": "pro"}), nov25);
    assert_eq!(r.error_code, Some(ErrorCode::TargetingKeyMissing));
    let r = engine.evaluate(
        "max-upload-mb",
        &json!({"plan": "pro", "account": {"id": "acme"}}),
        nov25,
    );
    assert_eq!(r.reason, Reason::Split);

    // Without -o the same document goes to standard output.
    let o = bunting(
        &root(),
        &[
            "snapshot",
            "examples/flags.yaml",
            "--env",
            "production",
            "--version",
            "42",
            "--generated-at",
            "2026-11-25T10:00:00Z",
        ],
    );
    assert!(o.status.success());
    assert_eq!(stdout(&o), json);
}

#[test]
fn every_environment_of_the_examples_loads_in_core() {
    for env in ["development", "staging", "production"] {
        let mut snapshots = Vec::new();
        for file in ["examples/flags.yaml", "examples/flags.json"] {
            let o = bunting(
                &root(),
                &[
                    "snapshot",
                    file,
                    "--env",
                    env,
                    "--generated-at",
                    "2026-11-25T10:00:00Z",
                ],
            );
            assert!(o.status.success(), "{file} {env}: {}", stderr(&o));
            let json = stdout(&o);
            let engine = Engine::from_json(&json)
                .unwrap_or_else(|e| panic!("{file} {env} does not load: {e}"));
            assert_eq!(engine.environment(), env);
            assert_eq!(engine.version(), 1, "the default version");
            assert_eq!(engine.flag_keys().count(), 8);
            let all =
                engine.evaluate_all(&json!({"targetingKey": "u-1", "account": {"id": "a"}}), 0);
            assert!(
                all.iter().all(|e| e.error_code.is_none()),
                "{file} {env}: {all:?}"
            );
            snapshots.push(json);
        }
        assert_eq!(
            snapshots[0], snapshots[1],
            "YAML and JSON examples differ in {env}"
        );
    }
}

#[test]
fn snapshot_refuses_unknown_environments_and_bad_times() {
    let o = bunting(
        &root(),
        &["snapshot", "examples/flags.yaml", "--env", "prod"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            r#"unknown environment "prod" (the file declares: development, staging, production)"#
        ),
        "{}",
        stderr(&o)
    );
    let o = bunting(
        &root(),
        &[
            "snapshot",
            "examples/flags.yaml",
            "--env",
            "staging",
            "--generated-at",
            "today",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not an RFC 3339 time"),
        "{}",
        stderr(&o)
    );
}

/// A fake wrangler: records each invocation's arguments (one a line, then
/// `--`), copies the file given with `--path` (to `tables.bin` for a
/// `snapshot-tables:` key, else to `uploaded.json`), exits with `$FAKE_EXIT`.
const FAKE_WRANGLER: &str = r#"log="$(dirname "$0")/calls.log"
for a in "$@"; do printf '%s\n' "$a" >> "$log"; done
printf -- '--\n' >> "$log"
case "$4" in snapshot-tables:*) dest=tables.bin;; *) dest=uploaded.json;; esac
prev=
for a in "$@"; do
  if [ "$prev" = "--path" ]; then cp "$a" "$(dirname "$0")/$dest"; fi
  prev="$a"
done
exit "${FAKE_EXIT:-0}"
"#;

/// Runs `bunting publish` with the fake wrangler (through `--wrangler`, or
/// `BUNTING_WRANGLER` when `via_env`); returns the run and the recorded
/// argument lists.
fn publish(
    name: &str,
    args: &[&str],
    via_env: bool,
    exit: u8,
) -> (Output, Vec<Vec<String>>, PathBuf) {
    let dir = scratch(name);
    let script = dir.join("wrangler.sh");
    fs::write(&script, FAKE_WRANGLER).unwrap();
    let wrangler = format!("sh {}", script.display());
    let mut cmd = cli::bunting(&dir);
    cmd.arg("publish")
        .arg(root().join("examples/flags.yaml"))
        .args(args)
        .env("FAKE_EXIT", exit.to_string());
    if via_env {
        cmd.env("BUNTING_WRANGLER", &wrangler);
    } else {
        cmd.args(["--wrangler", &wrangler]);
    }
    let o = cmd.output().expect("running bunting");
    let log = fs::read_to_string(dir.join("calls.log")).unwrap_or_default();
    let mut calls = Vec::new();
    let mut cur = Vec::new();
    for line in log.lines() {
        if line == "--" {
            calls.push(std::mem::take(&mut cur));
        } else {
            cur.push(line.to_string());
        }
    }
    (o, calls, dir)
}

#[test]
fn publish_writes_the_snapshot_then_sdk_key_hashes_through_wrangler() {
    let (o, mut calls, dir) = publish(
        "publish-local",
        &[
            "--env",
            "production",
            "--local",
            "--version",
            "7",
            "--sdk-key",
            "sk-test-production",
            "--server-sdk-key",
            "abc",
        ],
        false,
        0,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(calls.len(), 4, "{calls:?}");
    // The snapshot goes through a temporary file (removed afterwards).
    let path = calls[0][5].clone();
    assert!(
        !Path::new(&path).exists(),
        "temporary snapshot {path} left behind"
    );
    calls[0][5] = "TMPFILE".into();
    assert_eq!(
        calls[0],
        [
            "kv",
            "key",
            "put",
            "snapshot:production",
            "--path",
            "TMPFILE",
            "--binding",
            "FLAGS",
            "--local"
        ]
    );
    // Then the same snapshot without its JSON text, for edge workers.
    assert_eq!(
        calls[1][..5],
        ["kv", "key", "put", "snapshot-tables:production", "--path"]
    );
    assert!(!Path::new(&calls[1][5]).exists(), "temporary tables left");
    assert_eq!(
        calls[2],
        [
            "kv",
            "key",
            "put",
            // printf sk-test-production | sha256sum
            "sdk-key:1ece64eeeaf23d1c8cc9fbc3b380365276730832800eec554724933c7fa4cf0c",
            r#"{"environment":"production","kind":"client"}"#,
            "--binding",
            "FLAGS",
            "--local"
        ]
    );
    assert_eq!(
        calls[3][3..5],
        [
            "sdk-key:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            r#"{"environment":"production","kind":"server"}"#
        ]
    );
    // Packed by default, carrying the JSON.
    let uploaded = fs::read(dir.join("uploaded.json")).unwrap();
    let document = bunting_core::packed::document(&uploaded)
        .unwrap()
        .expect("a packed value with its JSON inside");
    let engine = Engine::from_json(document).expect("the uploaded snapshot loads");
    assert_eq!((engine.environment(), engine.version()), ("production", 7));
    let tables = fs::read(dir.join("tables.bin")).unwrap();
    assert_eq!(
        tables,
        &*bunting_core::packed::without_document(&uploaded).unwrap(),
        "the tables alone are the uploaded value without its text"
    );
    assert_eq!(
        stdout(&o),
        "published snapshot:production version 7 (8 flags, packed) and 2 SDK keys to KV (binding FLAGS, local)\n"
    );
}

/// `publish` puts by default the packed form of exactly the JSON
/// `publish --kv-format json` puts (same version and time), through a
/// `.bin` temporary file; SDK keys stay JSON. `--packed` (the flag of
/// earlier releases) still means packed.
#[test]
fn publish_puts_the_packed_form_of_the_json_kv_format_json_puts() {
    use bunting_core::{ParsedSnapshot, packed};
    let args = [
        "--env",
        "production",
        "--local",
        "--version",
        "7",
        "--generated-at",
        "2026-11-25T00:00:00Z",
        "--sdk-key",
        "sk-test-production",
    ];
    let (o, json_calls, json_dir) = publish(
        "publish-json",
        &[&args[..], &["--kv-format", "json"]].concat(),
        false,
        0,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "published snapshot:production version 7 (8 flags) and 1 SDK key to KV (binding FLAGS, local)\n"
    );
    // Tables an earlier packed value left would be older than this text.
    assert_eq!(
        json_calls[0],
        [
            "kv",
            "key",
            "delete",
            "snapshot-tables:production",
            "--binding",
            "FLAGS",
            "--local"
        ]
    );
    assert!(json_calls[1][5].ends_with(".json"), "{json_calls:?}");
    let json = fs::read(json_dir.join("uploaded.json")).unwrap();
    Engine::from_json(std::str::from_utf8(&json).unwrap()).expect("the JSON loads");
    let (o, calls, dir) = publish("publish-packed", &args, false, 0);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "published snapshot:production version 7 (8 flags, packed) and 1 SDK key to KV (binding FLAGS, local)\n"
    );
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(
        calls[0][..5],
        ["kv", "key", "put", "snapshot:production", "--path"]
    );
    assert_eq!(calls[1][3], "snapshot-tables:production");
    assert!(calls[0][5].ends_with(".bin"), "{calls:?}");
    assert!(
        !Path::new(&calls[0][5]).exists(),
        "temporary file left behind"
    );
    assert_eq!(
        calls[2], json_calls[2],
        "the SDK key is put as with --kv-format json"
    );
    // The old flag: the same bytes; with --kv-format too, refused.
    let (o, _, alias_dir) = publish(
        "publish-packed-flag",
        &[&args[..], &["--packed"]].concat(),
        false,
        0,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        fs::read(alias_dir.join("uploaded.json")).unwrap(),
        fs::read(dir.join("uploaded.json")).unwrap()
    );
    let (o, calls_both, _) = publish(
        "publish-packed-and-json",
        &[&args[..], &["--packed", "--kv-format", "json"]].concat(),
        false,
        0,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
    assert!(calls_both.is_empty());

    let value = fs::read(dir.join("uploaded.json")).unwrap();
    assert!(value.starts_with(&packed::MAGIC));
    let document = packed::document(&value).unwrap().expect("the JSON inside");
    assert_eq!(document.as_bytes(), json, "the very JSON publish writes");
    let read = ParsedSnapshot::from_packed(&value).unwrap();
    let from_packed = Engine::from_parsed(&read).expect("loads without problems");
    let from_json = Engine::from_json(document).unwrap();
    assert_eq!(
        (from_packed.environment(), from_packed.version()),
        ("production", 7)
    );
    assert!(read.checksum().is_some_and(|c| c.starts_with("sha256:")));
    let contexts = [
        json!({}),
        json!({"targetingKey": "u1", "plan": "pro", "device": {"type": "desktop"},
               "app": {"version": "3.4.0"}, "geo": {"country": "US"}}),
        json!({"targetingKey": "user-chen", "email": "a@bunting.dev", "beta_opt_in": true}),
    ];
    for ctx in &contexts {
        for now in [0, 1_796_083_200_000, 1_800_000_000_000] {
            assert_eq!(
                serde_json::to_value(from_packed.evaluate_all(ctx, now)).unwrap(),
                serde_json::to_value(from_json.evaluate_all(ctx, now)).unwrap(),
                "{ctx} at {now}"
            );
        }
    }

    // A dry run names the .bin file and calls nothing.
    let (o, calls, _) = publish(
        "publish-packed-dry-run",
        &["--env", "production", "--remote", "--dry-run"],
        false,
        0,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(calls.is_empty());
    assert!(
        stderr(&o).contains(".bin --binding FLAGS --remote"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn publish_remote_by_namespace_id_through_the_environment_variable() {
    let (o, calls, _) = publish(
        "publish-remote",
        &[
            "--env",
            "staging",
            "--remote",
            "--namespace-id",
            "0f2ac74b498b48028cb68387c421e279",
            "--wrangler-config",
            "wrangler.toml",
        ],
        true,
        0,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0][..4], ["kv", "key", "put", "snapshot:staging"]);
    assert_eq!(
        calls[1][..4],
        ["kv", "key", "put", "snapshot-tables:staging"]
    );
    assert_eq!(calls[1][6..], calls[0][6..]);
    assert_eq!(
        calls[0][6..],
        [
            "--namespace-id",
            "0f2ac74b498b48028cb68387c421e279",
            "--remote",
            "--config",
            "wrangler.toml"
        ]
    );
}

#[test]
fn publish_stops_when_wrangler_fails_and_dry_run_calls_nothing() {
    let (o, calls, _) = publish(
        "publish-fails",
        &["--env", "production", "--local", "--sdk-key", "abc"],
        false,
        3,
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        calls.len(),
        1,
        "no key is registered after a failed snapshot write"
    );
    assert!(
        stderr(&o).contains("failed (exit status: 3)"),
        "{}",
        stderr(&o)
    );

    let (o, calls, _) = publish(
        "publish-dry-run",
        &[
            "--env",
            "production",
            "--remote",
            "--dry-run",
            "--sdk-key",
            "abc",
        ],
        false,
        0,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(calls.is_empty());
    assert!(
        stderr(&o).contains("kv key put snapshot:production --path "),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).starts_with("dry run: would publish snapshot:production"));
}

#[test]
fn publish_needs_local_or_remote_and_a_valid_file() {
    let o = bunting(
        &root(),
        &["publish", "examples/flags.yaml", "--env", "production"],
    );
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let dir = scratch("publish-invalid");
    fs::write(
        dir.join("flags.yaml"),
        "environments: [production]\nflags: []\n",
    )
    .unwrap();
    let o = bunting(
        &dir,
        &[
            "publish",
            "flags.yaml",
            "--env",
            "production",
            "--local",
            "--wrangler",
            "false",
        ],
    );
    assert_eq!(
        diagnostics(&o, "flags.yaml"),
        ["flags.yaml:2:8: flags must be a mapping, not a list"]
    );
}
