//! GitOps through the API: `GET …/definitions`, `POST …/definitions/plan`
//! and `PUT …/definitions` on SQLite and PostgreSQL, and the store's
//! `apply_changes` that change requests reuse.

use axum::body::Body;
use axum::http::{Method, header};
use bunting_origin::store::plan::{ChangeKind, ChangeOp, ProjectState};
use bunting_origin::store::{Actor, AuditQuery, Role, Store, StoreError};
use serde_json::{Value, json};

use crate::common::app::{Reply, TestApp};

both!(
    plan_on_an_empty_project_creates_everything,
    apply_then_plan_finds_no_difference_and_audits_each_entity,
    an_edit_plans_exactly_that_change,
    prune_deletes_what_the_file_dropped_but_never_environments,
    a_stale_base_is_refused,
    an_invalid_file_names_every_problem_at_its_position,
    viewers_plan_and_export_but_do_not_apply,
    export_then_apply_changes_nothing,
    apply_changes_checks_each_before,
    client_side_goes_through_files_api_export_and_snapshot,
);

const FILE: &str = "environments: [production, staging]
segments:
  staff: { included: [u-1] }
layers:
  exp: {}
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    layer: { key: exp, start: 0, end: 50 }
    environments:
      production:
        rules: [{ condition: segment(\"staff\"), serve: on }]
  old:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
";

const DEFS: &str = "/orgs/acme/projects/web/definitions";

/// `acme/web` (no environment), made through the API.
async fn app(store: Store) -> TestApp {
    let app = TestApp::root(store);
    app.made("/orgs", json!({"key": "acme", "name": "Acme"}), 201)
        .await;
    app.made(
        "/orgs/acme/projects",
        json!({"key": "web", "name": "Web"}),
        201,
    )
    .await;
    app
}

/// `method path` with `file` as YAML.
async fn send_yaml(app: &TestApp, method: Method, path: &str, file: &str) -> Reply {
    let r = app
        .request(method, path)
        .header(header::CONTENT_TYPE, "application/yaml")
        .body(Body::from(file.to_string()))
        .unwrap();
    app.send(r).await
}

async fn plan(app: &TestApp, file: &str, prune: bool) -> Reply {
    send_yaml(
        app,
        Method::POST,
        &format!("{DEFS}/plan?prune={prune}"),
        file,
    )
    .await
}

async fn apply(app: &TestApp, file: &str, query: &str) -> Reply {
    send_yaml(app, Method::PUT, &format!("{DEFS}{query}"), file).await
}

/// Each change as `+ flag beta`, `~ flagConfig beta/production`, ….
fn lines(plan: &Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes in {plan}"))
        .iter()
        .map(|c| {
            let sign = match c["op"].as_str().unwrap() {
                "create" => "+",
                "update" => "~",
                _ => "-",
            };
            let target = match (c["kind"].as_str().unwrap(), c["environment"].as_str()) {
                ("flagConfig", Some(e)) => format!("{}/{e}", c["key"].as_str().unwrap()),
                (_, Some(e)) => format!("{} ({e})", c["key"].as_str().unwrap()),
                (_, None) => c["key"].as_str().unwrap().to_string(),
            };
            format!("{sign} {} {target}", c["kind"].as_str().unwrap())
        })
        .collect()
}

async fn plan_on_an_empty_project_creates_everything(store: Store) {
    let app = app(store).await;
    let r = plan(&app, FILE, false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        lines(&r.body),
        [
            "+ environment production",
            "+ environment staging",
            "+ layer exp",
            "+ flag beta",
            "+ flag old",
            "+ flagConfig beta/production",
            "+ segment staff (production)",
            "+ segment staff (staging)",
        ]
    );
    assert_eq!(
        r.body["summary"],
        json!({"create": 8, "update": 0, "delete": 0})
    );
    let config = &r.body["changes"][5];
    assert!(config.get("before").is_none(), "{config}");
    assert_eq!(
        config["after"]["rules"][0]["condition"],
        "segment(\"staff\")"
    );
    assert_eq!(r.body["base"].as_str().unwrap().len(), 64);
    // Planning wrote nothing: the project still has no environment.
    let (s, _, b) = app.get(DEFS).await;
    assert_eq!(s, 422, "{b}");
    assert!(
        b["error"]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("has no environments"),
        "{b}"
    );
}

async fn apply_then_plan_finds_no_difference_and_audits_each_entity(store: Store) {
    let app = app(store.clone()).await;
    let r = apply(&app, FILE, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(lines(&r.body).len(), 8);
    let again = plan(&app, FILE, true).await;
    assert_eq!(again.body["changes"], json!([]), "{}", again.body);
    assert_ne!(again.body["base"], r.body["base"]);
    assert_eq!(again.body["unmanaged"], json!([]));
    // Applying the same file again writes nothing.
    let audit = |store: Store| async move {
        store
            .audit_log(&AuditQuery {
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
            .entries
    };
    let entries = audit(store.clone()).await;
    let noop = apply(&app, FILE, "?prune=true").await;
    assert_eq!(noop.body["changes"], json!([]));
    assert_eq!(audit(store.clone()).await.len(), entries.len());

    // One entry per entity, as its own endpoint writes it, by the caller.
    let applied: Vec<(String, String, String)> = entries
        .iter()
        .filter(|e| !["organization", "project"].contains(&e.entity_type.as_str()))
        .map(|e| {
            (
                e.action.clone(),
                e.entity_type.clone(),
                e.entity_key.clone(),
            )
        })
        .collect();
    let expect = |a: &str, t: &str, k: &str| (a.to_string(), t.to_string(), k.to_string());
    assert_eq!(
        applied,
        [
            expect("create", "environment", "production"),
            expect("create", "environment", "staging"),
            expect("create", "layer", "exp"),
            expect("create", "flag", "beta"),
            expect("create", "flag", "old"),
            expect("update", "flagConfig", "beta/production"),
            expect("create", "segment", "staff"),
            expect("create", "segment", "staff"),
        ]
    );
    assert!(entries.iter().all(|e| e.actor == "admin"));
    // The snapshots were bumped (the publisher's intent) and serve the file.
    let (s, _, snap) = app
        .get("/orgs/acme/projects/web/environments/production/snapshot")
        .await;
    assert_eq!(s, 200);
    assert!(snap["version"].as_i64().unwrap() > 0);
    assert_eq!(snap["flags"].as_array().unwrap().len(), 2);
    assert_eq!(snap["segments"][0]["key"], "staff");
}

async fn an_edit_plans_exactly_that_change(store: Store) {
    let app = app(store).await;
    apply(&app, FILE, "").await;
    let edited = FILE.replace(
        "rules: [{ condition: segment(\"staff\"), serve: on }]",
        "enabled: false",
    );
    let r = plan(&app, &edited, false).await;
    assert_eq!(lines(&r.body), ["~ flagConfig beta/production"]);
    let c = &r.body["changes"][0];
    assert_eq!(
        (
            c["before"]["enabled"].clone(),
            c["after"]["enabled"].clone()
        ),
        (json!(true), json!(false))
    );
    assert_eq!(c["before"]["rules"].as_array().unwrap().len(), 1);
    assert_eq!(c["after"]["rules"], json!([]));
    let done = apply(&app, &edited, "").await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(lines(&done.body), ["~ flagConfig beta/production"]);
    let (_, _, config) = app
        .get("/orgs/acme/projects/web/flags/beta/environments/production")
        .await;
    assert_eq!(config["enabled"], false);
}

async fn prune_deletes_what_the_file_dropped_but_never_environments(store: Store) {
    let app = app(store).await;
    apply(&app, FILE, "").await;
    // `qa` exists only in the project: left alone, with its segment.
    app.made(
        "/orgs/acme/projects/web/environments",
        json!({"key": "qa", "name": "QA"}),
        201,
    )
    .await;
    app.made(
        "/orgs/acme/projects/web/environments/qa/segments",
        json!({"key": "testers", "included": ["u-9"]}),
        201,
    )
    .await;
    let smaller = "environments: [production, staging]
flags:
  beta:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
";
    let kept = plan(&app, smaller, false).await;
    assert_eq!(
        lines(&kept.body),
        ["~ flag beta", "~ flagConfig beta/production"]
    );
    assert_eq!(
        kept.body["unmanaged"],
        json!([
            "environment qa",
            "layer exp",
            "flag old",
            "segment staff (production)",
            "segment staff (staging)"
        ])
    );
    let r = apply(&app, smaller, "?prune=true").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        lines(&r.body),
        [
            "~ flag beta",
            "~ flagConfig beta/production",
            "- segment staff (production)",
            "- segment staff (staging)",
            "- flag old",
            "- layer exp",
        ]
    );
    assert_eq!(r.body["unmanaged"], json!(["environment qa"]));
    assert_eq!(app.get("/orgs/acme/projects/web/flags/old").await.0, 404);
    assert_eq!(app.get("/orgs/acme/projects/web/layers/exp").await.0, 404);
    assert_eq!(
        app.get("/orgs/acme/projects/web/environments/qa/segments/testers")
            .await
            .0,
        200
    );
    assert_eq!(plan(&app, smaller, true).await.body["changes"], json!([]));
}

async fn a_stale_base_is_refused(store: Store) {
    let app = app(store).await;
    apply(&app, FILE, "").await;
    let edited = FILE.replace("offVariant: off\n    layer", "offVariant: on\n    layer");
    let planned = plan(&app, &edited, false).await;
    let base = planned.body["base"].as_str().unwrap().to_string();
    // Someone changes the project in between.
    let (_, tag, _) = app.get("/orgs/acme/projects/web/flags/old").await;
    let mut spec = app.get("/orgs/acme/projects/web/flags/old").await.2;
    for field in ["id", "projectId", "version"] {
        spec.as_object_mut().unwrap().remove(field);
    }
    spec["description"] = json!("edited by hand");
    let (s, _, b) = app
        .call_if_match(
            Method::PUT,
            "/orgs/acme/projects/web/flags/old",
            Some(spec),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let r = apply(&app, &edited, &format!("?expectedBase={base}")).await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "stale_base");
    let current = r.body["error"]["currentEtag"].as_str().unwrap().to_string();
    assert_eq!(r.etag.as_deref(), Some(current.as_str()));
    assert_ne!(current, format!("\"{base}\""));
    // Nothing was applied.
    let (_, _, beta) = app.get("/orgs/acme/projects/web/flags/beta").await;
    assert_eq!(beta["offVariant"], "off");
    // Planned again, the same apply goes through (and reverts the edit).
    let again = plan(&app, &edited, false).await;
    assert_eq!(
        format!("\"{}\"", again.body["base"].as_str().unwrap()),
        current
    );
    let base = again.body["base"].as_str().unwrap();
    let r = apply(&app, &edited, &format!("?expectedBase={base}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(lines(&r.body).contains(&"~ flag old".to_string()));
}

async fn an_invalid_file_names_every_problem_at_its_position(store: Store) {
    let app = app(store).await;
    let bad = "environments: [production]
flags:
  dark-mode:
    type: boolean
    variants: { on: true, off: false }
    offVariant: off
    environments:
      production:
        fallthrough: dim
        rules: [{ condition: 'plan ==', serve: on }]
";
    for r in [plan(&app, bad, false).await, apply(&app, bad, "").await] {
        assert_eq!(r.status, 422, "{}", r.body);
        let problems: Vec<(String, String, String)> = r.body["error"]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["path"].as_str().unwrap().to_string(),
                    p["entity"].as_str().unwrap().to_string(),
                    p["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            (
                "9:22".to_string(),
                "flag dark-mode".to_string(),
                "fallthrough.variant: unknown variant \"dim\"".to_string()
            )
        );
        assert_eq!(problems[1].0, "10:38");
        assert!(
            problems[1].2.starts_with("rules[0].condition: "),
            "{problems:?}"
        );
    }
    // A syntax error, and a body in neither YAML nor JSON.
    let r = plan(&app, "environments: [production\n", false).await;
    assert_eq!(r.status, 422);
    assert!(
        r.body["error"]["problems"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with("2:"),
        "{}",
        r.body
    );
    let text = app
        .request(Method::POST, &format!("{DEFS}/plan"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("environments: [production]"))
        .unwrap();
    assert_eq!(app.send(text).await.status, 415);
    // JSON is read as JSON.
    let json_file = json!({"environments": ["production"]}).to_string();
    let r = app
        .request(Method::POST, &format!("{DEFS}/plan"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json_file))
        .unwrap();
    let r = app.send(r).await;
    assert_eq!(lines(&r.body), ["+ environment production"]);
    // Nothing was created.
    assert_eq!(
        app.get("/orgs/acme/projects/web/environments").await.2["items"],
        json!([])
    );
}

async fn viewers_plan_and_export_but_do_not_apply(store: Store) {
    let app = app(store.clone()).await;
    apply(&app, FILE, "").await;
    let org = store.org_by_key("acme").await.unwrap();
    let (_, viewer) = store
        .create_token(
            &Actor::new("root").in_org(org.id),
            org.id,
            "ro",
            Role::Viewer,
        )
        .await
        .unwrap();
    let viewer = app.as_token(&viewer);
    let edited = FILE.replace("offVariant: off\n    layer", "offVariant: on\n    layer");
    let r = plan(&viewer, &edited, false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(lines(&r.body)[0], "~ flag beta");
    assert_eq!(viewer.get(DEFS).await.0, 200);
    let r = apply(&viewer, &edited, "").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "forbidden");
    // A viewer's invalid file is refused for the role first.
    assert_eq!(apply(&viewer, "nope: [", "").await.status, 403);
    let (_, _, beta) = app.get("/orgs/acme/projects/web/flags/beta").await;
    assert_eq!(beta["offVariant"], "off");
}

async fn export_then_apply_changes_nothing(store: Store) {
    let app = app(store).await;
    let example =
        std::fs::read_to_string(crate::common::cli::root().join("examples/flags.yaml")).unwrap();
    let r = apply(&app, &example, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let base = plan(&app, &example, true).await.body["base"].clone();
    // JSON by default, YAML on request; the ETag is the plan's base.
    let json_export = app.call_with(Method::GET, DEFS, None, &[]).await;
    assert_eq!(json_export.status, 200);
    assert_eq!(json_export.content_type(), "application/json");
    assert_eq!(
        json_export.etag,
        Some(format!("\"{}\"", base.as_str().unwrap()))
    );
    let yaml_export = app
        .call_with(Method::GET, DEFS, None, &[("accept", "application/yaml")])
        .await;
    assert!(yaml_export.content_type().starts_with("application/yaml"));
    assert!(
        yaml_export
            .text
            .starts_with("environments: [development, production, staging]\n")
    );
    assert_eq!(
        app.get(&format!("{DEFS}?format=yaml")).await.2,
        Value::String(yaml_export.text.clone())
    );
    assert_eq!(app.get(&format!("{DEFS}?format=toml")).await.0, 422);
    let r = plan(&app, &yaml_export.text, true).await;
    assert_eq!(r.body["changes"], json!([]), "{}", r.body);
    let r = app
        .request(Method::PUT, &format!("{DEFS}?prune=true"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json_export.text))
        .unwrap();
    let r = app.send(r).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["changes"], json!([]));
}

async fn apply_changes_checks_each_before(store: Store) {
    let app = app(store.clone()).await;
    let org = store.org_by_key("acme").await.unwrap();
    let web = store.project_by_key(org.id, "web").await.unwrap();
    let ana = Actor::new("ana").in_org(org.id);
    let file = bunting_defs::load(FILE, bunting_defs::Syntax::Yaml).unwrap();
    let desired = ProjectState::from_file(&file).unwrap();
    let planned = store
        .plan_definitions(web.id, &desired, false)
        .await
        .unwrap();
    // Held (as a change request would), then applied on its base.
    let base = store
        .apply_changes(&ana, web.id, Some(&planned.base), &planned.changes)
        .await
        .unwrap();
    assert_eq!(base, planned.base);
    assert_eq!(plan(&app, FILE, false).await.body["changes"], json!([]));

    // A change whose `before` is no longer live is refused, naming it,
    // even without an expected base; nothing of the list is applied.
    let edited = FILE.replace("offVariant: off\n    layer", "offVariant: on\n    layer");
    let desired =
        ProjectState::from_file(&bunting_defs::load(&edited, bunting_defs::Syntax::Yaml).unwrap())
            .unwrap();
    let held = store
        .plan_definitions(web.id, &desired, true)
        .await
        .unwrap();
    assert_eq!(held.changes[0].kind, ChangeKind::Flag);
    assert_eq!(held.changes[0].op, ChangeOp::Update);
    let beta = store.flag_by_key(web.id, "beta").await.unwrap();
    let mut spec = beta.spec.clone();
    spec.owner = Some("payments".into());
    store
        .update_flag(&ana, beta.id, beta.version, &spec)
        .await
        .unwrap();
    let e = store
        .apply_changes(&ana, web.id, None, &held.changes)
        .await
        .unwrap_err();
    match e {
        StoreError::Stale { reason, .. } => {
            assert_eq!(reason, "flag beta changed since the plan was made")
        }
        other => panic!("not stale: {other}"),
    }
    assert_eq!(
        store
            .flag_by_key(web.id, "beta")
            .await
            .unwrap()
            .spec
            .off_variant,
        "off"
    );
}

/// `clientSide` (default false): from a file to the flag API, the export,
/// the plan and the published snapshot, and through `PUT …/flags/{flag}`.
async fn client_side_goes_through_files_api_export_and_snapshot(store: Store) {
    let app = app(store).await;
    let marked = FILE.replace(
        "  old:\n    type: boolean\n",
        "  old:\n    type: boolean\n    clientSide: true\n",
    );
    assert_ne!(marked, FILE);
    let r = apply(&app, &marked, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (_, _, old) = app.get("/orgs/acme/projects/web/flags/old").await;
    assert_eq!(old["clientSide"], true);
    let (_, _, beta) = app.get("/orgs/acme/projects/web/flags/beta").await;
    assert!(
        beta.get("clientSide").is_none(),
        "sent only when true: {beta}"
    );
    // The export writes it only where it is true, and reads back unchanged.
    let yaml = app
        .call_with(Method::GET, DEFS, None, &[("accept", "application/yaml")])
        .await
        .text;
    assert_eq!(yaml.matches("clientSide: true").count(), 1, "{yaml}");
    assert_eq!(plan(&app, &yaml, true).await.body["changes"], json!([]));
    // The snapshot carries it, and leaves it out where it is false.
    let (_, _, snap) = app
        .get("/orgs/acme/projects/web/environments/production/snapshot")
        .await;
    let flags = snap["flags"].as_array().unwrap();
    let of = |key: &str| flags.iter().find(|f| f["key"] == key).unwrap().clone();
    assert_eq!(of("old")["clientSide"], true);
    assert!(of("beta").get("clientSide").is_none(), "{snap}");
    // Dropping it from the file is a change of the flag.
    let r = plan(&app, FILE, false).await;
    assert_eq!(lines(&r.body), ["~ flag old"]);
    assert_eq!(r.body["changes"][0]["before"]["clientSide"], true);
    assert!(r.body["changes"][0]["after"].get("clientSide").is_none());
    // Through the flag API: PUT with clientSide, and a bad type is a 422.
    let (_, etag, mut old) = app.get("/orgs/acme/projects/web/flags/old").await;
    old["clientSide"] = json!(false);
    for k in [
        "id",
        "projectId",
        "version",
        "archived",
        "updatedAt",
        "updatedBy",
    ] {
        old.as_object_mut().unwrap().remove(k);
    }
    let put = |body: Value| {
        app.request(Method::PUT, "/orgs/acme/projects/web/flags/old")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::IF_MATCH, etag.clone().unwrap_or_default())
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let mut bad = old.clone();
    bad["clientSide"] = json!("yes");
    assert_eq!(app.send(put(bad)).await.status, 422);
    let r = app.send(put(old)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("clientSide").is_none(), "{}", r.body);
    let (_, _, old) = app.get("/orgs/acme/projects/web/flags/old").await;
    assert!(old.get("clientSide").is_none());
    assert_eq!(plan(&app, FILE, false).await.body["changes"], json!([]));
}
