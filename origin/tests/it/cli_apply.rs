//! `bunting apply` (GitOps) end to end: the binary as a process against a
//! real `bunting serve` over loopback, on SQLite and on PostgreSQL. The
//! plan's exit status follows terraform's `-detailed-exitcode`: 0 without a
//! difference, 2 with one, 1 on an error.

use std::fs;

use bunting_origin::store::{Actor, Store};

use crate::common::cli::{stderr, stdout};
use crate::common::origin::Cli;

/// Each test once on a SQLite file and once on a PostgreSQL schema.
macro_rules! cli_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() {
                super::$name(crate::common::origin::Cli::sqlite(
                    "bunting-cli-apply", concat!("sqlite-", stringify!($name))));
            })*
        }
        mod postgres {
            $(#[test] fn $name() {
                super::$name(crate::common::origin::Cli::postgres(
                    "bunting-cli-apply", concat!("postgres-", stringify!($name))));
            })*
        }
    };
}

cli_both!(
    plan_apply_edit_and_prune,
    refusals_are_printed_with_every_problem,
    an_export_applies_without_a_difference,
    the_gitops_examples_of_the_docs_run,
);

const FILE: &str = "environments: [production, staging]
segments:
  staff: { included: [u-1] }
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    environments:
      production:
        rules: [{ condition: segment(\"staff\"), serve: on }]
  old:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
";

/// Organization `acme` with an empty project `web`, made in the store.
fn acme_web(c: &Cli) {
    c.with_store(async |store: &Store| {
        let ana = Actor::new("ana");
        let org = store.create_org(&ana, "acme", "Acme").await.unwrap();
        store
            .create_project(&ana.in_org(org.id), org.id, "web", "Web")
            .await
            .unwrap();
    });
}

const WEB: [&str; 4] = ["--org", "acme", "--project", "web"];

/// `bunting apply FILE --org acme --project web EXTRA…`.
fn apply(c: &Cli, file: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["apply", file];
    args.extend(WEB);
    args.extend(extra);
    c.run(&args)
}

/// The base a plan's last line reports.
fn base_of(plan: &str) -> String {
    let (_, rest) = plan.rsplit_once("(base ").expect("a base");
    rest.trim_end().trim_end_matches(").").to_string()
}

fn plan_apply_edit_and_prune(c: Cli) {
    acme_web(&c);
    fs::write(c.dir.join("flags.yaml"), FILE).unwrap();
    // An empty project: everything is created; exit 2, nothing written.
    let o = apply(&c, "flags.yaml", &["--plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let plan = stdout(&o);
    let base = base_of(&plan);
    assert_eq!(base.len(), 64);
    assert_eq!(
        plan,
        format!(
            "+ environment production
    name: \"production\"
+ environment staging
    name: \"staging\"
+ flag beta
    flagType: \"boolean\"
    offVariant: \"off\"
    variants: {{\"off\":false,\"on\":true}}
+ flag old
    flagType: \"boolean\"
    offVariant: \"off\"
    variants: {{\"off\":false,\"on\":true}}
+ flagConfig beta/production
    enabled: true
    fallthrough: {{\"variant\":\"off\"}}
    rules: [{{\"condition\":\"segment(\\\"staff\\\")\",\"serve\":{{\"variant\":\"on\"}}}}]
+ segment staff (production)
    included: [\"u-1\"]
+ segment staff (staging)
    included: [\"u-1\"]
Plan: 7 to create, 0 to update, 0 to delete in acme/web (base {base}).
"
        )
    );
    assert_eq!(
        apply(&c, "flags.yaml", &["--plan"]).status.code(),
        Some(2),
        "planning changed nothing"
    );

    // Applied (on the base the plan reported), then no difference: exit 0.
    let out = c.ok(&[
        "apply",
        "flags.yaml",
        "--org",
        "acme",
        "--project",
        "web",
        "--expected-base",
        &base,
    ]);
    assert!(
        out.ends_with("Applied flags.yaml to acme/web: 7 created, 0 updated, 0 deleted.\n"),
        "{out}"
    );
    let o = apply(&c, "flags.yaml", &["--plan"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).starts_with("No changes: acme/web matches flags.yaml (base "),
        "{}",
        stdout(&o)
    );

    // An edit: exactly that change, with its fields.
    fs::write(
        c.dir.join("flags.yaml"),
        FILE.replace(
            "rules: [{ condition: segment(\"staff\"), serve: on }]",
            "rules: [{ condition: segment(\"staff\"), serve: on }]\n        enabled: false",
        ),
    )
    .unwrap();
    let o = apply(&c, "flags.yaml", &["--plan"]);
    assert_eq!(o.status.code(), Some(2));
    let plan = stdout(&o);
    assert_eq!(
        plan.lines().take(2).collect::<Vec<_>>(),
        ["~ flagConfig beta/production", "    enabled: true -> false"]
    );
    assert!(plan.contains("Plan: 0 to create, 1 to update, 0 to delete in acme/web"));
    c.ok(&["apply", "flags.yaml", "--org", "acme", "--project", "web"]);

    // The file drops `old` and `staff`: kept without --prune (and named),
    // deleted with it.
    fs::write(
        c.dir.join("small.yaml"),
        "environments: [production, staging]
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
",
    )
    .unwrap();
    let o = apply(&c, "small.yaml", &["--plan"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!stdout(&o).contains("- "), "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "note: not in small.yaml and left alone (--prune deletes flags, segments and layers): \
         flag old, segment staff (production), segment staff (staging)\n"
    );
    let o = apply(&c, "small.yaml", &["--plan", "--prune"]);
    assert_eq!(o.status.code(), Some(2));
    let plan = stdout(&o);
    for line in [
        "\n- segment staff (production)\n",
        "\n- segment staff (staging)\n",
        "\n- flag old\n",
    ] {
        assert!(plan.contains(line), "{line:?} in {plan}");
    }
    assert!(plan.contains("Plan: 0 to create, 1 to update, 3 to delete"));
    let out = c.ok(&[
        "apply",
        "small.yaml",
        "--org",
        "acme",
        "--project",
        "web",
        "--prune",
    ]);
    assert!(out.ends_with("1 updated, 3 deleted.\n"), "{out}");
    assert_eq!(
        apply(&c, "small.yaml", &["--plan", "--prune"])
            .status
            .code(),
        Some(0)
    );
    // Each deletion is audited as its own endpoint audits it, by the token.
    let deletes = c.ok(&["audit", "export", "--org", "acme", "--entity-type", "flag"]);
    let old: Vec<serde_json::Value> = deletes
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["action"] == "delete")
        .collect();
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["entityKey"], "old");
    assert_eq!(old[0]["actor"], "admin");
}

fn refusals_are_printed_with_every_problem(c: Cli) {
    acme_web(&c);
    fs::write(c.dir.join("flags.yaml"), FILE).unwrap();
    let plan = stdout(&apply(&c, "flags.yaml", &["--plan"]));
    let base = base_of(&plan);
    // The project changes after the plan: applying on its base is refused.
    fs::write(c.dir.join("other.yaml"), "environments: [qa]\n").unwrap();
    c.ok(&["apply", "other.yaml", "--org", "acme", "--project", "web"]);
    let o = apply(&c, "flags.yaml", &["--expected-base", &base]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(
            "answered 412 Precondition Failed: the project changed since the plan was made"
        ),
        "{err}"
    );
    assert!(err.contains("plan again"), "{err}");
    assert!(stdout(&o).is_empty());

    // A file with problems: every one at its place, as `validate` says.
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
        rules: [{ condition: 'plan ==', serve: on }]
",
    )
    .unwrap();
    let o = apply(&c, "bad.yaml", &["--plan"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("answered 422 Unprocessable Entity: 2 problems\n"),
        "{err}"
    );
    assert!(
        err.contains(
            "\nbad.yaml:9:22: flag dark-mode: fallthrough.variant: unknown variant \"dim\"\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("\nbad.yaml:10:38: flag dark-mode: rules[0].condition: "),
        "{err}"
    );
    assert!(err.ends_with("\nbad.yaml: 2 problems\n"), "{err}");

    // A viewer token plans but does not apply.
    let viewer = c.ok(&[
        "token", "create", "--org", "acme", "--role", "viewer", "--name", "ci",
    ]);
    let viewer = viewer.trim_end();
    let o = c
        .command(&[
            "apply",
            "flags.yaml",
            "--org",
            "acme",
            "--project",
            "web",
            "--plan",
        ])
        .env("BUNTING_TOKEN", viewer)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = c
        .command(&[
            "apply",
            "flags.yaml",
            "--org",
            "acme",
            "--project",
            "web",
            "--token",
            viewer,
        ])
        .env_remove("BUNTING_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "answered 403 Forbidden: this needs the flags.write permission on project web"
        ),
        "{}",
        stderr(&o)
    );

    // No token, no origin.
    let o = c
        .command(&["apply", "flags.yaml", "--org", "acme", "--project", "web"])
        .env_remove("BUNTING_TOKEN")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no API token: pass --token or set BUNTING_TOKEN"));
    let o = apply(&c, "flags.yaml", &["--plan", "--url", "http://127.0.0.1:9"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "could not reach the origin at http://127.0.0.1:9/api/v1/orgs/acme/projects/web/definitions/plan"
        ),
        "{}",
        stderr(&o)
    );
}

fn an_export_applies_without_a_difference(c: Cli) {
    let example = crate::common::cli::root().join("examples/flags.yaml");
    let example = example.to_str().unwrap();
    c.ok(&[
        "import",
        example,
        "--org",
        "acme",
        "--project",
        "web",
        "--create",
    ]);
    c.ok(&[
        "export",
        "--org",
        "acme",
        "--project",
        "web",
        "-o",
        "web.yaml",
    ]);
    c.ok(&[
        "export",
        "--org",
        "acme",
        "--project",
        "web",
        "-o",
        "web.json",
    ]);
    for file in ["web.yaml", "web.json"] {
        let o = apply(&c, file, &["--plan", "--prune"]);
        assert_eq!(o.status.code(), Some(0), "{file}: {}", stdout(&o));
    }
    let o = apply(&c, example, &["--plan", "--prune"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

/// Runs the examples of `docs/access.md`'s GitOps section in order: a
/// `yaml` block whose first line is `# FILE` is written to FILE; in a
/// `console` block each `$ bunting …` line runs, the lines after it are its
/// standard output (`…` matching any text) and `(exit N)` its exit status
/// (0 when absent).
fn the_gitops_examples_of_the_docs_run(c: Cli) {
    let doc = fs::read_to_string(crate::common::cli::root().join("docs/access.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("GitOps\n"))
        .expect("a GitOps section");
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let (lang, body) = after.split_once('\n').unwrap();
        let end = body.find("\n```").unwrap();
        blocks.push((lang.trim().to_string(), body[..end + 1].to_string()));
        rest = &body[end + 4..];
    }
    let mut ran = 0;
    for (lang, body) in &blocks {
        match lang.as_str() {
            "yaml" => {
                let name = body.lines().next().unwrap().strip_prefix("# ").unwrap();
                fs::write(c.dir.join(name), body).unwrap();
            }
            "console" => {
                for step in body.split("$ ").skip(1) {
                    let (command, expected) = step.split_once('\n').unwrap();
                    let mut expected: Vec<&str> = expected.lines().collect();
                    let status = match expected.last().and_then(|l| l.strip_prefix("(exit ")) {
                        Some(n) => {
                            let n = n.trim_end_matches(')').parse::<i32>().unwrap();
                            expected.pop();
                            n
                        }
                        None => 0,
                    };
                    let args: Vec<&str> = command.split_whitespace().collect();
                    assert_eq!(args[0], "bunting", "{command}");
                    let o = c.run(&args[1..]);
                    assert_eq!(
                        o.status.code(),
                        Some(status),
                        "{command}: {}{}",
                        stdout(&o),
                        stderr(&o)
                    );
                    let out = stdout(&o);
                    let got: Vec<&str> = out.lines().collect();
                    assert_eq!(got.len(), expected.len(), "{command}:\n{out}");
                    for (g, e) in got.iter().zip(&expected) {
                        assert!(matches(g, e), "{command}: {g:?} is not {e:?}");
                    }
                    ran += 1;
                }
            }
            _ => {}
        }
    }
    assert!(ran >= 7, "only {ran} commands ran");
}

/// Whether `line` is `pattern`, where `…` in the pattern stands for any
/// text.
fn matches(line: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return line == pattern;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !line.starts_with(first) || !line.ends_with(last) || line.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}
