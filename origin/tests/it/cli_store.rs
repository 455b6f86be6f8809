//! The `bunting` binary's store commands end to end (`import`, `export`,
//! `audit verify`, `audit export`, `token create`), run as a process against
//! a SQLite file in a scratch directory (the default `sqlite://bunting.db`
//! of the working directory), and once against PostgreSQL in a fresh schema
//! (`BUNTING_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/test`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use bunting_core::model::Segment;
use bunting_origin::store::{Actor, Role, Store};
use serde_json::Value;

use crate::common;
use crate::common::cli::{self, root, stderr, stdout};

fn example() -> String {
    root()
        .join("examples/flags.yaml")
        .to_str()
        .expect("utf-8 path")
        .to_string()
}

fn scratch(name: &str) -> PathBuf {
    cli::scratch("bunting-cli-store", name)
}

/// Runs `bunting ARGS` in `dir`; `database` sets `BUNTING_DATABASE_URL`
/// (otherwise the default, `bunting.db` in `dir`).
fn run(dir: &Path, database: Option<&str>, args: &[&str]) -> Output {
    let mut c = cli::bunting(dir);
    c.args(args);
    if let Some(url) = database {
        c.env("BUNTING_DATABASE_URL", url);
    }
    c.output().expect("running bunting")
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

/// `bunting import FILE --org acme --project web --create` in `dir`, which
/// must succeed.
fn import_acme_web(dir: &Path, file: &str) {
    ok(dir, None, &import_acme_web_args(file));
}

/// Runs and expects success; returns stdout.
fn ok(dir: &Path, database: Option<&str>, args: &[&str]) -> String {
    let o = run(dir, database, args);
    assert!(
        o.status.success(),
        "bunting {args:?} failed ({:?}):\n{}",
        o.status.code(),
        stderr(&o)
    );
    stdout(&o)
}

/// The URL a test opens the scratch directory's default database with.
fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("bunting.db").display())
}

/// Runs `f` on the store at `url`, closing it afterwards so that the next
/// `bunting` process has the database to itself.
fn with_store<T>(url: &str, f: impl AsyncFnOnce(&Store) -> T) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let store = Store::open(url).await.expect("opening the store");
            let out = f(&store).await;
            store.pool().close().await;
            out
        })
}

/// Every environment's snapshot of `org/project` as JSON, by environment
/// key, without what differs between projects and stores (`version`,
/// `generatedAt`, `checksum`, `environment`).
fn snapshots(url: &str, org: &str, project: &str) -> BTreeMap<String, Value> {
    with_store(url, async |store: &Store| {
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
fn verified_entries(out: &str) -> u64 {
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
    let dir = scratch("import-twice");
    let file = example();
    let args = import_acme_web_args(&file);
    let first = ok(&dir, None, &args);
    assert_eq!(
        import_line_counts(&first),
        "created 3 environments, 1 layer, 8 flags, 9 segments; updated 0 flags, 24 configurations, 0 segments",
        "{first}"
    );
    assert!(dir.join("bunting.db").exists(), "the default database file");
    let entries = verified_entries(&ok(&dir, None, &["audit", "verify"]));
    let before = snapshots(&sqlite_url(&dir), "acme", "web");

    let second = ok(&dir, None, &args[..6]);
    assert_eq!(
        import_line_counts(&second),
        "created 0 environments, 0 layers, 0 flags, 0 segments; updated 0 flags, 0 configurations, 0 segments",
        "{second}"
    );
    // Nothing changed: no audit entry, same snapshots at the same versions.
    assert_eq!(
        verified_entries(&ok(&dir, None, &["audit", "verify"])),
        entries
    );
    assert_eq!(snapshots(&sqlite_url(&dir), "acme", "web"), before);
    let versions = with_store(&sqlite_url(&dir), async |store: &Store| {
        let org = store.org_by_key("acme").await.unwrap();
        let web = store.project_by_key(org.id, "web").await.unwrap();
        let envs = store.environments(web.id).await.unwrap();
        envs.iter().map(|e| e.snapshot_version).collect::<Vec<_>>()
    });
    assert!(versions.iter().all(|v| *v > 0), "{versions:?}");

    // The import's entries belong to the organization and name the actor.
    let org_entries = ok(
        &dir,
        None,
        &["audit", "export", "--org", "acme", "--actor", "cli:import"],
    );
    let lines: Vec<Value> = org_entries
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    // All of them (an organization's creation belongs to it too).
    assert_eq!(lines.len() as u64, entries);
    assert!(lines.iter().all(|e| e["actor"] == "cli:import"));
}

#[test]
fn import_names_a_missing_organization_or_project_without_create() {
    let dir = scratch("import-missing");
    let file = example();
    let o = run(
        &dir,
        None,
        &["import", &file, "--org", "acme", "--project", "web"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("organization \"acme\" not found (`--create` creates it)"),
        "{}",
        stderr(&o)
    );
    import_acme_web(&dir, &file);
    let o = run(
        &dir,
        None,
        &["import", &file, "--org", "acme", "--project", "mobile"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("project \"mobile\" not found in organization \"acme\""),
        "{}",
        stderr(&o)
    );
    let o = run(
        &dir,
        None,
        &["export", "--org", "acme", "--project", "mobile"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("project \"mobile\" not found"));
}

#[test]
fn an_invalid_file_is_reported_at_its_position_and_changes_nothing() {
    let dir = scratch("import-invalid");
    fs::write(
        dir.join("bad.yaml"),
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
    // Into an empty directory: not even the database is created.
    let o = run(&dir, None, &args);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "bad.yaml:9:22: flag dark-mode: fallthrough.variant: unknown variant \"dim\""
        ),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
    assert!(!dir.join("bunting.db").exists());

    // Over an imported project: nothing changes.
    let file = example();
    import_acme_web(&dir, &file);
    let entries = verified_entries(&ok(&dir, None, &["audit", "verify"]));
    let before = snapshots(&sqlite_url(&dir), "acme", "web");
    let o = run(&dir, None, &args);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad.yaml:9:22:"), "{}", stderr(&o));
    assert!(
        stderr(&o).ends_with("bad.yaml: 1 problem\n"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        verified_entries(&ok(&dir, None, &["audit", "verify"])),
        entries
    );
    assert_eq!(snapshots(&sqlite_url(&dir), "acme", "web"), before);
}

#[test]
fn export_round_trips_the_example_in_yaml_and_json() {
    let dir = scratch("export-round-trip");
    let file = example();
    import_acme_web(&dir, &file);
    let original = snapshots(&sqlite_url(&dir), "acme", "web");
    assert_eq!(original.len(), 3);

    // To standard output, YAML by default; with -o, by the extension.
    let yaml = ok(&dir, None, &["export", "--org", "acme", "--project", "web"]);
    assert!(yaml.starts_with("environments: [development, production, staging]\n"));
    fs::write(dir.join("web.yaml"), &yaml).unwrap();
    ok(
        &dir,
        None,
        &[
            "export",
            "--org",
            "acme",
            "--project",
            "web",
            "-o",
            "web.json",
        ],
    );
    let json: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("web.json")).unwrap()).expect("json");
    assert_eq!(json["flags"].as_object().unwrap().len(), 8);
    let forced = ok(
        &dir,
        None,
        &[
            "export",
            "--org",
            "acme",
            "--project",
            "web",
            "--format",
            "json",
        ],
    );
    assert_eq!(forced, fs::read_to_string(dir.join("web.json")).unwrap());

    for (file, project) in [("web.yaml", "from-yaml"), ("web.json", "from-json")] {
        assert_eq!(
            ok(&dir, None, &["validate", file]),
            "ok: 8 flags, 3 environments\n"
        );
        ok(
            &dir,
            None,
            &[
                "import",
                file,
                "--org",
                "acme",
                "--project",
                project,
                "--create",
            ],
        );
        assert_eq!(
            snapshots(&sqlite_url(&dir), "acme", project),
            original,
            "{file}"
        );
        // And the copy exports as the same file.
        assert_eq!(
            ok(
                &dir,
                None,
                &["export", "--org", "acme", "--project", project]
            ),
            yaml,
            "{file}"
        );
    }
}

#[test]
fn export_names_a_segment_the_format_cannot_express() {
    let dir = scratch("export-segment");
    let file = example();
    import_acme_web(&dir, &file);
    // Through the store (as the API would): a segment in staging only.
    with_store(&sqlite_url(&dir), async |store: &Store| {
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
    let o = run(
        &dir,
        None,
        &[
            "export",
            "--org",
            "acme",
            "--project",
            "web",
            "-o",
            "web.yaml",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "segment \"qa-team\" cannot be exported: it exists in staging but not in development, production"
        ),
        "{}",
        stderr(&o)
    );
    assert!(!dir.join("web.yaml").exists());
}

#[test]
fn audit_verify_passes_then_names_the_tampered_entry() {
    let dir = scratch("audit-verify");
    let empty = ok(&dir, None, &["audit", "verify"]);
    assert_eq!(verified_entries(&empty), 0);
    let file = example();
    import_acme_web(&dir, &file);
    let out = ok(&dir, None, &["audit", "verify"]);
    let n = verified_entries(&out);
    assert!(n > 10, "{out}");

    with_store(&sqlite_url(&dir), async |store: &Store| {
        sqlx::query("UPDATE audit_log SET after = $1 WHERE seq = $2")
            .bind("{\"key\":\"evil\"}")
            .bind(5_i64)
            .execute(store.pool())
            .await
            .unwrap();
    });
    let o = run(&dir, None, &["audit", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("FAILED: seq 5: hash mismatch"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn audit_export_writes_json_lines_oldest_first() {
    let dir = scratch("audit-export");
    let file = example();
    import_acme_web(&dir, &file);
    ok(
        &dir,
        None,
        &[
            "token", "create", "--org", "acme", "--role", "viewer", "--name", "ro",
        ],
    );
    let n = verified_entries(&ok(&dir, None, &["audit", "verify"]));

    let all = ok(&dir, None, &["audit", "export"]);
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

    // Filters, and -o.
    let flags = ok(&dir, None, &["audit", "export", "--entity-type", "flag"]);
    let flags: Vec<Value> = flags
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(flags.len(), 8);
    assert!(flags.iter().all(|e| e["entityType"] == "flag"));
    let tokens = ok(&dir, None, &["audit", "export", "--actor", "cli:token"]);
    assert_eq!(tokens.lines().count(), 1);
    let token: Value = serde_json::from_str(tokens.trim_end()).unwrap();
    assert_eq!(token["entityType"], "token");
    assert!(token["orgId"].is_i64());
    let at = token["at"].as_str().unwrap();
    let before = ok(&dir, None, &["audit", "export", "--until", at]);
    assert_eq!(before.lines().count() as u64, n - 1);
    let from = ok(&dir, None, &["audit", "export", "--from", at]);
    assert_eq!(from, tokens);
    let o = run(&dir, None, &["audit", "export", "-o", "audit.jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert_eq!(fs::read_to_string(dir.join("audit.jsonl")).unwrap(), all);
    let o = run(&dir, None, &["audit", "export", "--org", "nope"]);
    assert_eq!(o.status.code(), Some(1));
}

#[test]
fn token_create_prints_only_a_secret_the_store_accepts() {
    let dir = scratch("token");
    let file = example();
    let o = run(
        &dir,
        None,
        &[
            "token", "create", "--org", "acme", "--role", "editor", "--name", "ci",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("organization \"acme\" not found"));
    import_acme_web(&dir, &file);
    let o = run(
        &dir,
        None,
        &[
            "token", "create", "--org", "acme", "--role", "owner", "--name", "ci",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));

    let o = run(
        &dir,
        None,
        &[
            "token", "create", "--org", "acme", "--role", "editor", "--name", "ci",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let secret = out.strip_suffix('\n').expect("one line");
    assert!(
        !secret.is_empty() && !secret.contains(char::is_whitespace),
        "{out:?}"
    );
    assert!(!stderr(&o).contains(secret), "the secret is shown once");
    let token = with_store(&sqlite_url(&dir), async |store: &Store| {
        let org = store.org_by_key("acme").await.unwrap();
        let t = store.authenticate(secret).await.unwrap().expect("accepted");
        assert_eq!(t.org_id, org.id);
        assert!(store.authenticate("bnt_api_nope").await.unwrap().is_none());
        t
    });
    assert_eq!(token.role, Role::Editor);
    assert_eq!(token.name, "ci");
    assert_eq!(token.created_by, "cli:token");
}

#[test]
fn postgres_import_export_audit_and_token() {
    let (url, _schema) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(common::postgres_schema());
    let db = Some(url.as_str());
    let dir = scratch("postgres");
    let file = example();
    let args = import_acme_web_args(&file);
    let first = ok(&dir, db, &args);
    assert!(first.contains("created 3 environments, 1 layer, 8 flags, 9 segments"));
    let second = ok(&dir, db, &args);
    assert!(
        second.ends_with("updated 0 flags, 0 configurations, 0 segments\n"),
        "{second}"
    );
    assert!(
        !dir.join("bunting.db").exists(),
        "BUNTING_DATABASE_URL is used"
    );

    let yaml = ok(&dir, db, &["export", "--org", "acme", "--project", "web"]);
    fs::write(dir.join("web.yaml"), &yaml).unwrap();
    ok(
        &dir,
        db,
        &[
            "import",
            "web.yaml",
            "--org",
            "acme",
            "--project",
            "copy",
            "--create",
        ],
    );
    assert_eq!(
        snapshots(&url, "acme", "copy"),
        snapshots(&url, "acme", "web")
    );

    let n = verified_entries(&ok(&dir, db, &["audit", "verify"]));
    let lines = ok(&dir, db, &["audit", "export"]);
    assert_eq!(lines.lines().count() as u64, n);

    let secret = ok(
        &dir,
        db,
        &[
            "token",
            "create",
            "--org",
            "acme",
            "--role",
            "admin",
            "--name",
            "bootstrap",
        ],
    );
    let token = with_store(&url, async |store: &Store| {
        store.authenticate(secret.trim_end()).await.unwrap()
    });
    assert_eq!(token.expect("accepted").role, Role::Admin);
    assert_eq!(verified_entries(&ok(&dir, db, &["audit", "verify"])), n + 1);
}
