//! The `bunting` binary's commands on a project end to end, run as a
//! process: `import`, `export` and `token create` through a real `bunting
//! serve` over loopback (common/origin.rs), and the store commands (`audit
//! verify`, `audit export`) on that origin's database: a SQLite file
//! in a scratch directory (the default `sqlite://bunting.db` of the working
//! directory), and once PostgreSQL in a fresh schema
//! (`BUNTING_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`).

use std::collections::BTreeMap;
use std::fs;

use bunting_core::model::Segment;
use bunting_origin::store::{Actor, Store};
use serde_json::Value;

use crate::common::cli::{root, stderr, stdout};
use crate::common::origin::Cli;

fn example() -> String {
    root()
        .join("examples/flags.yaml")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn cli(name: &str) -> Cli {
    Cli::sqlite("bunting-cli-store", name)
}

/// `import FILE --org acme --project web --create`.
fn import_acme_web_args(file: &str) -> [&str; 7] {
    [
        "import",
        file,
        "--org",
        "acme",
        "--project",
        "web",
        "--create",
    ]
}

/// `bunting import FILE --org acme --project web --create`, which must
/// succeed.
fn import_acme_web(c: &Cli, file: &str) {
    c.ok(&import_acme_web_args(file));
}

/// Every environment's snapshot of `org/project` as JSON, by environment
/// key, without what differs between projects and stores (`version`,
/// `generatedAt`, `checksum`, `environment`).
fn snapshots(c: &Cli, org: &str, project: &str) -> BTreeMap<String, Value> {
    c.with_store(async |store: &Store| {
        let org = store.org_by_key(org).await.expect("org");
        let project = store
            .project_by_key(org.id, project)
            .await
            .expect("project");
        let mut out = BTreeMap::new();
        for env in store.environments(project.id).await.expect("environments") {
            let snapshot = store.snapshot(env.id).await.expect("snapshot");
            let mut json = serde_json::to_value(&snapshot).expect("json");
            let obj = json.as_object_mut().expect("object");
            for field in ["version", "generatedAt", "checksum", "environment"] {
                obj.remove(field);
            }
            out.insert(env.key, json);
        }
        out
    })
}

/// `ok: N entries, head HASH` → N.
pub(crate) fn verified_entries(out: &str) -> u64 {
    let rest = out
        .strip_prefix("ok: ")
        .unwrap_or_else(|| panic!("not a verify line: {out:?}"));
    let (n, rest) = rest.split_once(' ').expect("count");
    let hash = rest
        .strip_prefix("entries, head ")
        .or_else(|| rest.strip_prefix("entry, head "))
        .expect("head")
        .trim_end();
    assert_eq!(hash.len(), 64, "{out:?}");
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{out:?}");
    n.parse().expect("number")
}

fn import_line_counts(out: &str) -> &str {
    out.split_once(": ").expect("summary").1.trim_end()
}

#[test]
fn import_creates_then_a_second_import_changes_nothing() {
    let c = cli("import-twice");
    let file = example();
    let args = import_acme_web_args(&file);
    let first = c.ok(&args);
    assert_eq!(
        import_line_counts(&first),
        "created 3 environments, 1 layer, 8 flags, 9 segments; \
         updated 0 layers, 0 flags, 24 configurations, 0 segments",
        "{first}"
    );
    assert!(
        c.dir.join("bunting.db").exists(),
        "the default database file"
    );
    let entries = verified_entries(&c.ok(&["audit", "verify"]));
    let before = snapshots(&c, "acme", "web");

    let second = c.ok(&args[..6]);
    assert_eq!(
        import_line_counts(&second),
        "created 0 environments, 0 layers, 0 flags, 0 segments; \
         updated 0 layers, 0 flags, 0 configurations, 0 segments",
        "{second}"
    );
    // Nothing changed: no audit entry, same snapshots at the same versions.
    assert_eq!(verified_entries(&c.ok(&["audit", "verify"])), entries);
    assert_eq!(snapshots(&c, "acme", "web"), before);
    let versions = c.with_store(async |store: &Store| {
        let org = store.org_by_key("acme").await.unwrap();
        let web = store.project_by_key(org.id, "web").await.unwrap();
        let envs = store.environments(web.id).await.unwrap();
        envs.iter().map(|e| e.snapshot_version).collect::<Vec<_>>()
    });
    assert!(versions.iter().all(|v| *v > 0), "{versions:?}");

    // The import's entries belong to the organization and name the caller
    // of the API (here the administrator token).
    let org_entries = c.ok(&["audit", "export", "--org", "acme", "--actor", "admin"]);
    let lines: Vec<Value> = org_entries
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // All of them (an organization's creation belongs to it too).
    assert_eq!(lines.len() as u64, entries);
    assert!(lines.iter().all(|e| e["actor"] == "admin"));
}

#[test]
fn import_names_a_missing_organization_or_project_without_create() {
    let c = cli("import-missing");
    let file = example();
    let o = c.run(&["import", &file, "--org", "acme", "--project", "web"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("organization \"acme\" not found (`--create` creates it)"),
        "{}",
        stderr(&o)
    );
    import_acme_web(&c, &file);
    let o = c.run(&["import", &file, "--org", "acme", "--project", "mobile"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("project \"mobile\" not found in organization \"acme\""),
        "{}",
        stderr(&o)
    );
    let o = c.run(&["export", "--org", "acme", "--project", "mobile"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("project \"mobile\" not found"));
}

#[test]
fn an_invalid_file_is_reported_at_its_position_and_changes_nothing() {
    let c = cli("import-invalid");
    fs::write(
        c.dir.join("bad.yaml"),
        "environments: [production]
flags:
  dark-mode:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    environments:
      production:
        fallthrough: dim
",
    )
    .unwrap();
    let args = [
        "import",
        "bad.yaml",
        "--org",
        "acme",
        "--project",
        "web",
        "--create",
    ];
    let file = example();
    import_acme_web(&c, &file);
    let entries = verified_entries(&c.ok(&["audit", "verify"]));
    let before = snapshots(&c, "acme", "web");
    let o = c.run(&args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // The origin's 422, each problem where `bunting validate` puts it.
    assert!(
        stderr(&o).contains(
            "\nbad.yaml:9:22: flag dark-mode: fallthrough.variant: unknown variant \"dim\"\n"
        ),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).ends_with("bad.yaml: 1 problem\n"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    assert_eq!(verified_entries(&c.ok(&["audit", "verify"])), entries);
    assert_eq!(snapshots(&c, "acme", "web"), before);
}

#[test]
fn export_round_trips_the_example_in_yaml_and_json() {
    let c = cli("export-round-trip");
    let file = example();
    import_acme_web(&c, &file);
    let original = snapshots(&c, "acme", "web");
    assert_eq!(original.len(), 3);

    // To standard output, YAML by default; with -o, by the extension.
    let yaml = c.ok(&["export", "--org", "acme", "--project", "web"]);
    assert!(yaml.starts_with("environments: [development, production, staging]\n"));
    fs::write(c.dir.join("web.yaml"), &yaml).unwrap();
    c.ok(&[
        "export",
        "--org",
        "acme",
        "--project",
        "web",
        "-o",
        "web.json",
    ]);
    let json: Value =
        serde_json::from_str(&fs::read_to_string(c.dir.join("web.json")).unwrap()).expect("json");
    assert_eq!(json["flags"].as_object().unwrap().len(), 8);
    let forced = c.ok(&[
        "export",
        "--org",
        "acme",
        "--project",
        "web",
        "--format",
        "json",
    ]);
    assert_eq!(forced, fs::read_to_string(c.dir.join("web.json")).unwrap());

    for (file, project) in [("web.yaml", "from-yaml"), ("web.json", "from-json")] {
        assert_eq!(c.ok(&["validate", file]), "ok: 8 flags, 3 environments\n");
        c.ok(&[
            "import",
            file,
            "--org",
            "acme",
            "--project",
            project,
            "--create",
        ]);
        assert_eq!(snapshots(&c, "acme", project), original, "{file}");
        // And the copy exports as the same file.
        assert_eq!(
            c.ok(&["export", "--org", "acme", "--project", project]),
            yaml,
            "{file}"
        );
    }
}

#[test]
fn export_names_a_segment_the_format_cannot_express() {
    let c = cli("export-segment");
    let file = example();
    import_acme_web(&c, &file);
    // Through the store (as the API would): a segment in staging only.
    c.with_store(async |store: &Store| {
        let org = store.org_by_key("acme").await.unwrap();
        let web = store.project_by_key(org.id, "web").await.unwrap();
        let staging = store.environment_by_key(web.id, "staging").await.unwrap();
        store
            .create_segment(
                &Actor::new("ana").in_org(org.id),
                staging.id,
                &Segment {
                    key: "qa-team".into(),
                    included: vec!["user-qa".into()],
                    excluded: Vec::new(),
                    condition: None,
                    description: None,
                },
            )
            .await
            .unwrap();
    });
    let o = c.run(&[
        "export",
        "--org",
        "acme",
        "--project",
        "web",
        "-o",
        "web.yaml",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "segment \"qa-team\" cannot be exported: it exists in staging but not in development, production"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!c.dir.join("web.yaml").exists());
}

#[test]
fn audit_verify_passes_then_names_the_tampered_entry() {
    let c = cli("audit-verify");
    let empty = c.ok(&["audit", "verify"]);
    assert_eq!(verified_entries(&empty), 0);
    let file = example();
    import_acme_web(&c, &file);
    let out = c.ok(&["audit", "verify"]);
    let n = verified_entries(&out);
    assert!(n > 10, "{out}");

    c.with_store(async |store: &Store| {
        sqlx::query("UPDATE audit_log SET after = $1 WHERE seq = $2")
            .bind("{\"key\":\"evil\"}")
            .bind(5_i64)
            .execute(store.pool())
            .await
            .unwrap();
    });
    let o = c.run(&["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("FAILED: seq 5: hash mismatch"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn audit_export_writes_json_lines_oldest_first() {
    let c = cli("audit-export");
    let file = example();
    import_acme_web(&c, &file);
    c.ok(&[
        "token", "create", "--org", "acme", "--role", "viewer", "--name", "ro",
    ]);
    let n = verified_entries(&c.ok(&["audit", "verify"]));
    let export = |extra: &[&str]| {
        let mut args = vec!["audit", "export", "--org", "acme"];
        args.extend(extra);
        c.ok(&args)
    };

    // Through the API: the organization's entries (here all of them).
    let all = export(&[]);
    let entries: Vec<Value> = all
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(entries.len() as u64, n);
    let seqs: Vec<i64> = entries.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(seqs[0], 1);
    for field in [
        "actor",
        "at",
        "action",
        "entityType",
        "entityKey",
        "hash",
        "prevHash",
    ] {
        assert!(entries.iter().all(|e| e[field].is_string()), "{field}");
    }

    // Filters (times and actors sent encoded), and -o.
    let flags = export(&["--entity-type", "flag"]);
    let flags: Vec<Value> = flags
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(flags.len(), 8);
    assert!(flags.iter().all(|e| e["entityType"] == "flag"));
    let tokens = export(&["--entity-type", "token"]);
    assert_eq!(tokens.lines().count(), 1);
    let token: Value = serde_json::from_str(tokens.trim_end()).unwrap();
    assert_eq!(token["entityType"], "token");
    assert!(token["orgId"].is_i64());
    let at = token["at"].as_str().unwrap();
    let before = export(&["--until", at]);
    assert_eq!(before.lines().count() as u64, n - 1);
    assert_eq!(export(&["--from", at]), tokens);
    assert_eq!(export(&["--actor", "admin", "--from", at]), tokens);
    let o = c.run(&["audit", "export", "--org", "acme", "-o", "audit.jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert_eq!(fs::read_to_string(c.dir.join("audit.jsonl")).unwrap(), all);
    let o = c.run(&["audit", "export", "--org", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("answered 404 Not Found"),
        "{}",
        stderr(&o)
    );
    let o = c.run(&["audit", "export"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("needs --org"), "{}", stderr(&o));

    // The operator's export reads the store: every organization's entries.
    import_other(&c, &file);
    let url = c.database.clone();
    let everything = c.ok(&["audit", "export", "--database-url", &url]);
    let total = verified_entries(&c.ok(&["audit", "verify"]));
    assert_eq!(everything.lines().count() as u64, total);
    assert!(total > n);
    assert_eq!(export(&[]), all, "acme's entries are unchanged");
    let acme_only = c.ok(&["audit", "export", "--database-url", &url, "--org", "acme"]);
    assert_eq!(acme_only, all);
}

/// `bunting import FILE --org other --project app --create`.
fn import_other(c: &Cli, file: &str) {
    c.ok(&[
        "import",
        file,
        "--org",
        "other",
        "--project",
        "app",
        "--create",
    ]);
}

#[test]
fn token_create_prints_only_a_secret_the_store_accepts() {
    let c = cli("token");
    let file = example();
    let o = c.run(&[
        "token", "create", "--org", "acme", "--role", "editor", "--name", "ci",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("answered 404 Not Found: organization acme not found"),
        "{}",
        stderr(&o)
    );
    import_acme_web(&c, &file);
    let o = c.run(&[
        "token", "create", "--org", "acme", "--role", "owner", "--name", "ci",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = c.run(&[
        "token", "create", "--org", "acme", "--role", "editor", "--name", "ci",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let secret = out.strip_suffix('\n').expect("one line");
    assert!(
        !secret.is_empty() && !secret.contains(char::is_whitespace),
        "{out:?}"
    );
    assert!(!stderr(&o).contains(secret), "the secret is shown once");
    let token = c.with_store(async |store: &Store| {
        let org = store.org_by_key("acme").await.unwrap();
        let t = store.authenticate(secret).await.unwrap().expect("accepted");
        assert_eq!(t.org_id, org.id);
        assert!(store.authenticate("bnt_api_nope").await.unwrap().is_none());
        t
    });
    assert_eq!(token.role, "editor");
    assert_eq!(token.name, "ci");
    // Made through the API by the administrator token.
    assert_eq!(token.created_by, "admin");
    // Bootstrap: straight into the store, as `cli:token`.
    let url = c.database.clone();
    let boot = c
        .command(&[
            "token",
            "create",
            "--org",
            "acme",
            "--role",
            "admin",
            "--name",
            "boot",
            "--database-url",
            &url,
        ])
        .env_remove("BUNTING_URL")
        .env_remove("BUNTING_TOKEN")
        .output()
        .unwrap();
    assert!(boot.status.success(), "{}", stderr(&boot));
    let boot = stdout(&boot);
    let boot =
        c.with_store(async |store: &Store| store.authenticate(boot.trim_end()).await.unwrap());
    assert_eq!(boot.expect("accepted").created_by, "cli:token");
    // A token that may not manage tokens is refused, readably.
    let o = c
        .command(&[
            "token", "create", "--org", "acme", "--role", "admin", "--name", "x",
        ])
        .env("BUNTING_TOKEN", secret)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "answered 403 Forbidden: this needs the tokens.manage permission on organization acme"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn postgres_import_export_audit_and_token() {
    let c = Cli::postgres("bunting-cli-store", "postgres");
    let file = example();
    let args = import_acme_web_args(&file);
    let first = c.ok(&args);
    assert!(first.contains("created 3 environments, 1 layer, 8 flags, 9 segments"));
    let second = c.ok(&args);
    assert!(
        second.ends_with("updated 0 layers, 0 flags, 0 configurations, 0 segments\n"),
        "{second}"
    );
    assert!(
        !c.dir.join("bunting.db").exists(),
        "BUNTING_DATABASE_URL is used"
    );

    let yaml = c.ok(&["export", "--org", "acme", "--project", "web"]);
    fs::write(c.dir.join("web.yaml"), &yaml).unwrap();
    c.ok(&[
        "import",
        "web.yaml",
        "--org",
        "acme",
        "--project",
        "copy",
        "--create",
    ]);
    assert_eq!(snapshots(&c, "acme", "copy"), snapshots(&c, "acme", "web"));

    let n = verified_entries(&c.ok(&["audit", "verify"]));
    let lines = c.ok(&["audit", "export", "--org", "acme"]);
    assert_eq!(lines.lines().count() as u64, n);

    let secret = c.ok(&[
        "token",
        "create",
        "--org",
        "acme",
        "--role",
        "admin",
        "--name",
        "bootstrap",
    ]);
    let token =
        c.with_store(async |store: &Store| store.authenticate(secret.trim_end()).await.unwrap());
    assert_eq!(token.expect("accepted").role, "admin");
    assert_eq!(verified_entries(&c.ok(&["audit", "verify"])), n + 1);
}
