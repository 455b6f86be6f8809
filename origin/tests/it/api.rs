//! The management API (the router in process, see [`TestApp`]), on
//! SQLite and PostgreSQL: CRUD, ETag/If-Match (412/428), 422 with every
//! problem, the kill switch, flag history with request ids, filters and
//! pagination, snapshots, the audit log and its export, JSON errors.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use bunting_origin::store::Store;
use serde_json::{Value, json};

use crate::common;
use crate::common::app::TestApp;

both!(
    crud_and_concurrency,
    validation_problems,
    kill_switch_history_and_audit,
    list_filters_and_pages,
    malformed_requests,
    layers_in_use,
    rejections_are_json,
    key_rules_are_the_documents,
    list_items_carry_environment_state,
    list_of_a_thousand_flags,
    archive_and_restore,
    archiving_needs_glass_in_protected_environments,
    a_new_layer_salt_needs_glass_in_protected_environments,
);

/// Org `acme`, project `web`, environments `production` and `staging`; the
/// org's admin token.
async fn setup(api: &TestApp) -> TestApp {
    assert_eq!(
        api.post("/orgs", json!({"key": "acme", "name": "Acme"}))
            .await
            .0,
        201
    );
    let (s, _, t) = api
        .post("/orgs/acme/tokens", json!({"name": "ops", "role": "admin"}))
        .await;
    assert_eq!(s, 201, "{t}");
    let admin = api.as_token(t["secret"].as_str().unwrap());
    assert_eq!(
        admin
            .post("/orgs/acme/projects", json!({"key": "web", "name": "Web"}))
            .await
            .0,
        201
    );
    for env in ["production", "staging"] {
        let (s, _, b) = admin
            .post(
                "/orgs/acme/projects/web/environments",
                json!({"key": env, "name": env}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
    }
    admin
}

fn flag(key: &str, tags: &[&str]) -> Value {
    json!({
        "key": key, "flagType": "boolean",
        "variants": {"on": true, "off": false}, "offVariant": "off",
        "description": format!("the {key} flag"), "tags": tags,
    })
}

const FLAGS: &str = "/orgs/acme/projects/web/flags";

async fn crud_and_concurrency(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    let (s, tag, body) = admin.post(FLAGS, flag("dark-mode", &["ui"])).await;
    assert_eq!(
        (s, tag.as_deref()),
        (StatusCode::CREATED, Some("\"1\"")),
        "{body}"
    );
    assert_eq!(body["key"], "dark-mode");
    // Duplicate key: 409.
    let (s, _, body) = admin.post(FLAGS, flag("dark-mode", &[])).await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "duplicate");

    let path = format!("{FLAGS}/dark-mode");
    let (s, tag, _) = admin.get(&path).await;
    assert_eq!((s, tag.as_deref()), (StatusCode::OK, Some("\"1\"")));
    let mut changed = flag("dark-mode", &["ui", "beta"]);
    // No If-Match: 428, nothing changes.
    let (s, _, body) = admin
        .call(Method::PUT, &path, Some(changed.clone()), &[])
        .await;
    assert_eq!(s, 428, "{body}");
    // Two writers read version 1; the first wins, the second gets 412 with
    // the current ETag and does not overwrite.
    let (s, tag, body) = admin
        .call(
            Method::PUT,
            &path,
            Some(changed.clone()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (s, tag.as_deref()),
        (StatusCode::OK, Some("\"2\"")),
        "{body}"
    );
    changed["description"] = json!("a stale edit");
    let (s, tag, body) = admin
        .call(
            Method::PUT,
            &path,
            Some(changed.clone()),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(s, 412, "{body}");
    assert_eq!(tag.as_deref(), Some("\"2\""));
    assert_eq!(body["error"]["currentEtag"], "\"2\"");
    let (_, _, now) = admin.get(&path).await;
    assert_eq!(now["description"], "the dark-mode flag");
    assert_eq!(now["tags"], json!(["ui", "beta"]));
    // The key cannot change through PUT.
    let (s, _, _) = admin
        .call(
            Method::PUT,
            &path,
            Some(flag("renamed", &[])),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(s, 422);

    // Rename the project with If-Match; stale delete refused; delete works.
    let (s, tag, body) = admin
        .call(
            Method::PATCH,
            "/orgs/acme/projects/web",
            Some(json!({"name": "Website"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(
        (s, tag.as_deref()),
        (StatusCode::OK, Some("\"2\"")),
        "{body}"
    );
    assert_eq!(body["name"], "Website");
    let (s, _, _) = admin
        .call(Method::DELETE, &path, None, &[("if-match", "\"1\"")])
        .await;
    assert_eq!(s, 412);
    let (s, _, _) = admin
        .call(Method::DELETE, &path, None, &[("if-match", "\"2\"")])
        .await;
    assert_eq!(s, 204);
    let (s, _, body) = admin.get(&path).await;
    assert_eq!(s, 404);
    assert_eq!(body["error"]["code"], "not_found");
}

async fn validation_problems(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    // A flag with two problems: both are reported.
    let mut bad = flag("Bad Key!", &[]);
    bad["offVariant"] = json!("nope");
    let (s, _, body) = admin.post(FLAGS, bad).await;
    assert_eq!(s, 422, "{body}");
    let problems = body["error"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2, "{body}");
    assert!(problems.iter().any(|p| p["path"] == "key"), "{body}");
    assert!(problems.iter().any(|p| p["path"] == "offVariant"), "{body}");

    admin.post(FLAGS, flag("checkout", &[])).await;
    let cfg = format!("{FLAGS}/checkout/environments/production");
    let (s, tag, body) = admin.get(&cfg).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["enabled"], false);
    let tag = tag.unwrap();
    // Two broken rules: a syntax error (with line and column) and an
    // unknown variant; every problem comes back, nothing is stored.
    let config = json!({
        "enabled": true,
        "rules": [
            {"id": "r1", "condition": "country ==", "serve": {"variant": "on"}},
            {"id": "r2", "condition": "plan == \"pro\"", "serve": {"variant": "missing"}},
        ],
        "fallthrough": {"variant": "off"},
    });
    let (s, _, body) = admin
        .call(Method::PUT, &cfg, Some(config), &[("if-match", &tag)])
        .await;
    assert_eq!(s, 422, "{body}");
    let problems = body["error"]["problems"].as_array().unwrap();
    assert!(problems.len() >= 2, "{body}");
    let text = body.to_string();
    // Rule-language errors carry LINE:COLUMN.
    assert!(text.contains("1:11: expected"), "{body}");
    assert!(text.contains("missing"), "{body}");
    // ... and their place as data: environment, entity, field, span.
    let parse_error = problems
        .iter()
        .find(|p| p["location"]["field"] == "rules[0].condition")
        .unwrap_or_else(|| panic!("no located condition problem: {body}"));
    assert_eq!(
        parse_error["location"],
        json!({
            "environment": "production",
            "entity": {"kind": "flag", "index": 0, "key": "checkout"},
            "field": "rules[0].condition",
            "span": {"line": 1, "column": 11, "length": 0},
        }),
        "{body}"
    );
    let (_, tag2, body) = admin.get(&cfg).await;
    assert_eq!(
        (tag2.as_deref(), &body["enabled"]),
        (Some(tag.as_str()), &json!(false))
    );

    // A wrong shape (serve is not an object) is 422 too, with serde's path.
    let (s, _, body) = admin
        .call(
            Method::PUT,
            &cfg,
            Some(json!({"enabled": true, "fallthrough": 3})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(s, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid");
}

async fn kill_switch_history_and_audit(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    admin.post(FLAGS, flag("search", &[])).await;
    let cfg = format!("{FLAGS}/search/environments/production");
    let (_, tag, _) = admin.get(&cfg).await;
    let on = json!({"enabled": true, "rules": [], "fallthrough": {"variant": "on"}});
    let (s, _, body) = admin
        .call(
            Method::PUT,
            &cfg,
            Some(on),
            &[
                ("if-match", tag.as_deref().unwrap()),
                ("x-request-id", "req-enable-1"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    // The kill switch needs no If-Match.
    let (s, _, body) = admin
        .call(
            Method::POST,
            &format!("{cfg}/toggle"),
            Some(json!({"enabled": false})),
            &[("x-request-id", "req-kill-1")],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["enabled"], false);
    assert_eq!(
        body["fallthrough"],
        json!({"variant": "on"}),
        "only the switch changed"
    );
    let (_, _, snap) = admin
        .get("/orgs/acme/projects/web/environments/production/snapshot")
        .await;
    assert_eq!(snap["environment"], "acme/web/production");
    let f = snap["flags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == "search")
        .unwrap();
    assert_eq!(f["enabled"], false);
    // Staging is untouched.
    let (_, _, st) = admin
        .get(&format!("{FLAGS}/search/environments/staging"))
        .await;
    assert_eq!(st["version"], 1);

    // History: create, configure, kill — with the request ids.
    let (s, _, h) = admin.get(&format!("{FLAGS}/search/history")).await;
    assert_eq!(s, 200, "{h}");
    let items = h["items"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = items
        .iter()
        .map(|e| {
            (
                e["entityType"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("flag", "create"),
            ("flagConfig", "update"),
            ("flagConfig", "update")
        ],
        "{h}"
    );
    assert_eq!(items[1]["requestId"], "req-enable-1");
    assert_eq!(items[2]["requestId"], "req-kill-1");
    assert!(items[2]["actor"].as_str().unwrap().starts_with("token:"));
    let before: Value = serde_json::from_str(items[2]["before"].as_str().unwrap()).unwrap();
    let after: Value = serde_json::from_str(items[2]["after"].as_str().unwrap()).unwrap();
    assert_eq!(
        (&before["enabled"], &after["enabled"]),
        (&json!(true), &json!(false))
    );

    // Audit: filter by entity type; the export is JSON lines in order.
    let (_, _, a) = admin.get("/orgs/acme/audit?entityType=environment").await;
    assert_eq!(a["items"].as_array().unwrap().len(), 2, "{a}");
    let resp = admin
        .send(
            admin
                .request(Method::GET, "/orgs/acme/audit/export")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(resp.headers["content-type"], "application/x-ndjson");
    let text = resp.text;
    let seqs: Vec<i64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert!(
        seqs.len() >= 7 && seqs.windows(2).all(|w| w[0] < w[1]),
        "{seqs:?}"
    );
    let (s, _, v) = api.get("/audit/verify").await;
    assert_eq!(s, 200);
    assert_eq!(v["ok"], true, "{v}");
    // Each response carries a request id; a client's own is echoed.
    let resp = admin
        .call_with(Method::GET, "/orgs/acme", None, &[("x-request-id", "mine")])
        .await;
    assert_eq!(resp.headers["x-request-id"], "mine");
}

async fn list_filters_and_pages(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    for (k, tags) in [
        ("a-checkout", vec!["payments"]),
        ("b-search", vec!["search"]),
        ("c-checkout-v2", vec!["payments", "beta"]),
        ("d-theme", vec![]),
        ("e-banner", vec!["beta"]),
    ] {
        assert_eq!(admin.post(FLAGS, flag(k, &tags)).await.0, 201);
    }
    let keys = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, _, v) = admin.get(&format!("{FLAGS}?tag=payments")).await;
    assert_eq!(keys(&v), ["a-checkout", "c-checkout-v2"]);
    let (_, _, v) = admin.get(&format!("{FLAGS}?q=CHECKOUT&tag=beta")).await;
    assert_eq!(keys(&v), ["c-checkout-v2"]);
    let (_, _, v) = admin.get(&format!("{FLAGS}?type=string")).await;
    assert_eq!(keys(&v), Vec::<String>::new());
    let (s, _, _) = admin.get(&format!("{FLAGS}?type=bogus")).await;
    assert_eq!(s, 400);
    // Pages of two, following `next`.
    let mut all = Vec::new();
    let mut url = format!("{FLAGS}?limit=2");
    loop {
        let (_, _, v) = admin.get(&url).await;
        let page = keys(&v);
        assert!(page.len() <= 2);
        all.extend(page);
        match v["next"].as_str() {
            Some(n) => url = format!("{FLAGS}?limit=2&after={n}"),
            None => break,
        }
    }
    assert_eq!(
        all,
        [
            "a-checkout",
            "b-search",
            "c-checkout-v2",
            "d-theme",
            "e-banner"
        ]
    );
}

async fn malformed_requests(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    let raw = |content_type: Option<&str>, body: &'static str| {
        let mut r = admin
            .request(Method::POST, FLAGS)
            .header("content-length", body.len());
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        admin.send(r.body(Body::from(body)).unwrap())
    };
    // Not JSON: 400 with a JSON error body.
    let r = raw(Some("application/json"), "{not json").await;
    assert_eq!(r.status, 400);
    let b: Value = serde_json::from_str(&r.text).unwrap();
    assert_eq!(b["error"]["code"], "bad_request");
    // No content type: 415.
    let r = raw(None, "{}").await;
    assert_eq!(r.status, 415);
    // Unknown field: 422 naming it.
    let mut f = flag("x", &[]);
    f["colour"] = json!("red");
    let (s, _, b) = admin.post(FLAGS, f).await;
    assert_eq!(s, 422);
    assert!(b.to_string().contains("colour"), "{b}");
    // Unknown route: JSON 404. No token: 401. Bad If-Match: 400.
    let (s, _, b) = admin.get("/nowhere").await;
    assert_eq!(
        (s, &b["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (s, _, b) = api.as_token("").get("/orgs").await;
    assert_eq!(s, 401, "{b}");
    admin.post(FLAGS, flag("y", &[])).await;
    let (s, _, _) = admin
        .call(
            Method::PUT,
            &format!("{FLAGS}/y"),
            Some(flag("y", &[])),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(s, 400);
}

async fn layers_in_use(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    let layers = "/orgs/acme/projects/web/layers";
    let (s, tag, b) = admin
        .post(layers, json!({"key": "checkout", "salt": "s1"}))
        .await;
    assert_eq!(
        (s, tag.as_deref()),
        (StatusCode::CREATED, Some("\"1\"")),
        "{b}"
    );
    let mut f = flag("one-page", &[]);
    f["layer"] = json!({"key": "checkout", "start": 0, "end": 50});
    assert_eq!(admin.post(FLAGS, f).await.0, 201);
    let layer = format!("{layers}/checkout");
    // A new salt: version 2, and the snapshot carries it.
    let (s, tag, b) = admin
        .call(
            Method::PUT,
            &layer,
            Some(json!({"key": "checkout", "salt": "s2"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((s, tag.as_deref()), (StatusCode::OK, Some("\"2\"")), "{b}");
    let (_, _, snap) = admin
        .get("/orgs/acme/projects/web/environments/production/snapshot")
        .await;
    assert_eq!(snap["layers"][0]["salt"], "s2", "{snap}");
    // The key is fixed; a layer in use cannot go.
    let (s, _, _) = admin
        .call(
            Method::PUT,
            &layer,
            Some(json!({"key": "other"})),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_eq!(s, 422);
    let (s, _, b) = admin
        .call(Method::DELETE, &layer, None, &[("if-match", "\"2\"")])
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(b.to_string().contains("checkout"), "{b}");
    // Once no flag uses it, it can.
    let (_, ftag, _) = admin.get(&format!("{FLAGS}/one-page")).await;
    admin
        .call(
            Method::DELETE,
            &format!("{FLAGS}/one-page"),
            None,
            &[("if-match", ftag.as_deref().unwrap())],
        )
        .await;
    let (s, _, b) = admin
        .call(Method::DELETE, &layer, None, &[("if-match", "\"2\"")])
        .await;
    assert_eq!(s, 204, "{b}");
    let (s, _, _) = admin.get(&layer).await;
    assert_eq!(s, 404);
}

/// What axum answers before a handler runs (a path parameter that does not
/// parse, a percent-encoding that is not UTF-8, a method the route does not
/// have) is the documented JSON error body, not `text/plain`.
async fn rejections_are_json(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    let keys = "/orgs/acme/projects/web/environments/production/sdk-keys";
    for (method, path, status, code) in [
        (
            Method::DELETE,
            "/orgs/acme/tokens/not-a-number".to_string(),
            400,
            "bad_request",
        ),
        (Method::DELETE, format!("{keys}/1.5"), 400, "bad_request"),
        (Method::POST, format!("{keys}/x/rotate"), 400, "bad_request"),
        (Method::GET, "/orgs/%FF".to_string(), 400, "bad_request"),
        (Method::PATCH, FLAGS.to_string(), 405, "method_not_allowed"),
    ] {
        let body = (method == Method::POST).then(|| json!({"graceSeconds": 0}));
        let resp = admin
            .call_with(method.clone(), &path, body.as_ref(), &[])
            .await;
        assert_eq!(resp.status, status, "{method} {path}");
        let content_type = resp.headers["content-type"].to_str().unwrap().to_string();
        assert_eq!(content_type, "application/json", "{method} {path}");
        let b: Value = serde_json::from_str(&resp.text).unwrap();
        assert_eq!(b["error"]["code"], code, "{method} {path}: {b}");
        assert!(
            !b["error"]["message"].as_str().unwrap().is_empty(),
            "{method} {path}: {b}"
        );
    }
}

/// The key rules the document publishes (`CreateNamed.key` for
/// organizations, projects and environments, `FlagSpec.key` for flags) are
/// exactly the ones the store enforces: a key is created iff the document
/// accepts it.
async fn key_rules_are_the_documents(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    let keys = [
        "a".to_string(),
        "A-z_0.9".to_string(),
        ".a".to_string(),
        "...".to_string(),
        "x".repeat(64),
        "y".repeat(65),
        "z".repeat(200),
        "w".repeat(201),
        String::new(),
        ".".to_string(),
        "..".to_string(),
        "a b".to_string(),
        "a/b".to_string(),
        "caf\u{e9}".to_string(),
    ];
    for key in keys {
        let named = json!({"key": key, "name": "n"});
        let documented = common::schema::component_accepts("CreateNamed", &named);
        let (s, _, b) = admin.post("/orgs/acme/projects", named).await;
        assert_eq!(s == 201, documented, "project key {key:?}: {s} {b}");
        assert!(s == 201 || s == 422, "project key {key:?}: {s} {b}");
        let f = flag(&key, &[]);
        let documented = common::schema::component_accepts("FlagSpec", &f);
        let (s, _, b) = admin.post(FLAGS, f).await;
        assert_eq!(s == 201, documented, "flag key {key:?}: {s} {b}");
        assert!(s == 201 || s == 422, "flag key {key:?}: {s} {b}");
    }
}

/// The list item of flag `key` in a page of the flag list.
fn item<'a>(page: &'a Value, key: &str) -> &'a Value {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("{key} is not in {page}"))
}

/// `s` as a time, which must be RFC 3339.
fn rfc3339(s: &Value) -> time::OffsetDateTime {
    let s = s.as_str().unwrap_or_else(|| panic!("{s} is not a string"));
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s} is not RFC 3339: {e}"))
}

async fn list_items_carry_environment_state(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    admin.made(FLAGS, flag("alpha", &[]), 201).await;
    admin.made(FLAGS, flag("beta", &[]), 201).await;
    let (s, _, before) = admin.get(FLAGS).await;
    assert_eq!(s, 200, "{before}");
    let (_, _, history) = admin.get(&format!("{FLAGS}/alpha/history")).await;
    let creator = history["items"][0]["actor"].clone();
    let alpha = item(&before, "alpha");
    assert_eq!(alpha["updatedBy"], creator);
    let envs = alpha["environments"].as_object().unwrap();
    assert_eq!(
        envs.keys().collect::<Vec<_>>(),
        ["production", "staging"],
        "every environment of the project"
    );
    for env in envs.values() {
        assert_eq!(env["enabled"], false);
        assert_eq!(env["version"], 1);
        rfc3339(&env["updatedAt"]);
    }
    let created = rfc3339(&alpha["updatedAt"]);

    // Another caller turns alpha on in production only.
    let (s, _, t) = admin
        .post(
            "/orgs/acme/tokens",
            json!({"name": "toggler", "role": "editor"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let toggler = api.as_token(t["secret"].as_str().unwrap());
    let (s, _, config) = toggler
        .post(
            &format!("{FLAGS}/alpha/environments/production/toggle"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, 200, "{config}");

    let (s, _, after) = toggler.get(FLAGS).await;
    assert_eq!(s, 200, "{after}");
    let (_, _, history) = admin.get(&format!("{FLAGS}/alpha/history")).await;
    let toggle = history["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(toggle["entityType"], "flagConfig");
    assert_ne!(toggle["actor"], creator, "the toggle is the other caller's");
    let alpha = item(&after, "alpha");
    let production = &alpha["environments"]["production"];
    assert_eq!(production["enabled"], true);
    assert_eq!(production["version"], config["version"]);
    assert_eq!(production["version"], 2);
    assert!(rfc3339(&production["updatedAt"]) >= created);
    assert_eq!(
        alpha["environments"]["staging"],
        item(&before, "alpha")["environments"]["staging"],
        "staging did not change"
    );
    assert_eq!(alpha["updatedAt"], production["updatedAt"]);
    assert_eq!(
        alpha["updatedBy"], toggle["actor"],
        "the caller of the toggle"
    );
    let skew = rfc3339(&alpha["updatedAt"]) - rfc3339(&toggle["at"]);
    assert!(
        skew.abs() < time::Duration::seconds(1),
        "the time of the audit entry ({skew})"
    );
    // The definition of alpha is unchanged, and beta too.
    assert_eq!(alpha["version"], 1);
    assert_eq!(item(&after, "beta"), item(&before, "beta"));

    // Editing the definition moves the flag's last change, not the
    // environments'.
    let (_, tag, _) = admin.get(&format!("{FLAGS}/beta")).await;
    let mut spec = flag("beta", &[]);
    spec["description"] = json!("edited");
    let (s, _, b) = admin
        .call_if_match(
            Method::PUT,
            &format!("{FLAGS}/beta"),
            Some(spec),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, _, edited) = admin.get(FLAGS).await;
    let beta = item(&edited, "beta");
    assert_eq!(beta["updatedBy"], creator);
    assert!(rfc3339(&beta["updatedAt"]) > rfc3339(&item(&before, "beta")["updatedAt"]));
    assert_eq!(beta["environments"], item(&before, "beta")["environments"]);
}

/// 1,000 flags in 3 environments: two full pages, each item complete, in
/// a few queries (a liveness bound, not a benchmark).
async fn list_of_a_thousand_flags(store: Store) {
    let api = TestApp::root(store.clone());
    let admin = setup(&api).await;
    admin
        .made(
            "/orgs/acme/projects/web/environments",
            json!({"key": "qa", "name": "QA"}),
            201,
        )
        .await;
    let org = store.org_by_key("acme").await.unwrap();
    let project = store.project_by_key(org.id, "web").await.unwrap();
    // Rows as the store writes them, in two statements (a thousand audited
    // writes would take a minute).
    let at = "2026-01-02T03:04:05.000006Z";
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 999) \
         INSERT INTO flags (project_id, key, flag_type, variants, off_variant, tags, updated_at, updated_by) \
         SELECT $1, 'f' || (1000 + i), 'boolean', '{\"off\":false,\"on\":true}', 'off', '[]', $2, 'loader' FROM n",
    )
    .bind(project.id)
    .bind(at)
    .execute(store.pool())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO flag_configs (flag_id, environment_id, enabled, rules, fallthrough, prerequisites, \
         updated_at, updated_by) \
         SELECT f.id, e.id, 0, '[]', '{\"variant\":\"off\"}', '[]', $2, 'loader' \
         FROM flags f JOIN environments e ON e.project_id = f.project_id WHERE f.project_id = $1",
    )
    .bind(project.id)
    .bind(at)
    .execute(store.pool())
    .await
    .unwrap();
    let start = std::time::Instant::now();
    let (s, _, first) = admin.get(&format!("{FLAGS}?limit=500")).await;
    assert_eq!(s, 200);
    let next = first["next"].as_str().unwrap();
    let (s, _, second) = admin.get(&format!("{FLAGS}?limit=500&after={next}")).await;
    assert_eq!(s, 200);
    let elapsed = start.elapsed();
    let items: Vec<&Value> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .collect();
    assert_eq!(items.len(), 1000);
    assert!(second.get("next").is_none());
    for f in items {
        assert_eq!(f["environments"].as_object().unwrap().len(), 3, "{f}");
        assert_eq!(f["environments"]["qa"]["updatedAt"], at);
        assert_eq!(
            (&f["updatedAt"], &f["updatedBy"]),
            (&json!(at), &json!("loader"))
        );
    }
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "two pages of 500 flags took {elapsed:?}"
    );
}

/// The keys of the flags of environment `env`'s snapshot.
async fn snapshot_keys(api: &TestApp, env: &str) -> Vec<String> {
    let (s, _, snap) = api
        .get(&format!(
            "/orgs/acme/projects/web/environments/{env}/snapshot"
        ))
        .await;
    assert_eq!(s, 200, "{snap}");
    snap["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect()
}

/// The keys of a page of the flag list.
fn keys(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect()
}

/// `POST …/flags/{key}/{action}` (archive, restore) with `If-Match` the
/// flag's current tag.
async fn archival(api: &TestApp, key: &str, action: &str) -> (StatusCode, Option<String>, Value) {
    let (_, tag, _) = api.get(&format!("{FLAGS}/{key}")).await;
    api.call_if_match(
        Method::POST,
        &format!("{FLAGS}/{key}/{action}"),
        None,
        tag.as_deref(),
    )
    .await
}

async fn archive_and_restore(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    for key in ["old", "parent", "child"] {
        admin.made(FLAGS, flag(key, &[]), 201).await;
    }
    // child needs parent in production.
    let cfg = format!("{FLAGS}/child/environments/production");
    let (_, tag, _) = admin.get(&cfg).await;
    let needs_parent = json!({"enabled": true, "rules": [], "fallthrough": {"variant": "on"},
        "prerequisites": [{"flag": "parent", "variant": "on"}]});
    let (s, _, b) = admin
        .call_if_match(Method::PUT, &cfg, Some(needs_parent), tag.as_deref())
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        snapshot_keys(&admin, "production")
            .await
            .contains(&"old".into())
    );

    // If-Match, as every write of a flag.
    let (s, _, b) = admin
        .call(Method::POST, &format!("{FLAGS}/old/archive"), None, &[])
        .await;
    assert_eq!(s, 428, "{b}");
    let (_, tag, before) = admin.get(&format!("{FLAGS}/old")).await;
    assert_eq!(before.get("archived"), None, "sent only when true");
    let (s, _, b) = admin
        .call_if_match(
            Method::POST,
            &format!("{FLAGS}/old/archive"),
            None,
            Some("\"99\""),
        )
        .await;
    assert_eq!(s, 412, "{b}");
    let (s, archived_tag, archived) = admin
        .call_if_match(
            Method::POST,
            &format!("{FLAGS}/old/archive"),
            None,
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200, "{archived}");
    assert_eq!(archived["archived"], true);
    assert_eq!(archived["version"], before["version"].as_i64().unwrap() + 1);
    assert_eq!(archived_tag, Some(format!("\"{}\"", archived["version"])));

    // Out of every snapshot: the edge answers it as a missing flag.
    for env in ["production", "staging"] {
        let keys = snapshot_keys(&admin, env).await;
        assert!(!keys.contains(&"old".into()), "{env}: {keys:?}");
        assert!(keys.contains(&"parent".into()), "{env}: {keys:?}");
    }
    // Hidden from the list unless asked for, and then alone.
    let (_, _, live) = admin.get(FLAGS).await;
    assert_eq!(keys(&live), ["child", "parent"]);
    let (s, _, gone) = admin.get(&format!("{FLAGS}?archived=true")).await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(keys(&gone), ["old"]);
    assert_eq!(gone["items"][0]["archived"], true);
    assert_eq!(
        gone["items"][0]["environments"]["production"]["enabled"],
        false
    );
    let (_, _, history) = admin.get(&format!("{FLAGS}/old/history")).await;
    let last = history["items"].as_array().unwrap().last().unwrap();
    assert_eq!(last["action"], "archive");
    let after: Value = serde_json::from_str(last["after"].as_str().unwrap()).unwrap();
    assert_eq!(after["archived"], true);
    assert_eq!(gone["items"][0]["updatedBy"], last["actor"]);
    let (s, _, b) = admin.get(&format!("{FLAGS}?archived=maybe")).await;
    assert_eq!(s, 400, "{b}");

    // Archiving it again changes nothing.
    let (s, tag, again) = archival(&admin, "old", "archive").await;
    assert_eq!(s, 200, "{again}");
    assert_eq!((again, tag), (archived.clone(), archived_tag.clone()));

    // No change until restored: 409 with a clear message.
    let (_, tag, _) = admin.get(&format!("{FLAGS}/old")).await;
    let mut edited = flag("old", &[]);
    edited["description"] = json!("edited");
    let (s, _, b) = admin
        .call_if_match(
            Method::PUT,
            &format!("{FLAGS}/old"),
            Some(edited),
            tag.as_deref(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("archived")),
        "{b}"
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restore it"),
        "{b}"
    );
    let old_cfg = format!("{FLAGS}/old/environments/production");
    let (_, tag, _) = admin.get(&old_cfg).await;
    let on = json!({"enabled": true, "rules": [], "fallthrough": {"variant": "on"}});
    let (s, _, b) = admin
        .call_if_match(Method::PUT, &old_cfg, Some(on), tag.as_deref())
        .await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("archived")),
        "{b}"
    );
    let (s, _, b) = admin
        .post(&format!("{old_cfg}/toggle"), json!({"enabled": true}))
        .await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("archived")),
        "{b}"
    );
    assert_eq!(
        admin.get(&format!("{FLAGS}/old")).await.2,
        archived,
        "unchanged"
    );

    // A prerequisite of a served flag stays.
    let (s, _, b) = archival(&admin, "parent", "archive").await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("prerequisite")),
        "{b}"
    );
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("parent") && message.contains("child/production"),
        "{message}"
    );
    assert!(
        snapshot_keys(&admin, "production")
            .await
            .contains(&"parent".into())
    );

    // Once child is archived, parent may be; then child cannot come back
    // before parent.
    assert_eq!(archival(&admin, "child", "archive").await.0, 200);
    assert_eq!(archival(&admin, "parent", "archive").await.0, 200);
    let (s, _, b) = archival(&admin, "child", "restore").await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("prerequisite")),
        "{b}"
    );
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("parent") && message.contains("child/production"),
        "{message}"
    );
    assert_eq!(archival(&admin, "parent", "restore").await.0, 200);
    let (s, _, child) = archival(&admin, "child", "restore").await;
    assert_eq!(s, 200, "{child}");
    assert_eq!(child.get("archived"), None);

    // Restored as it was: served again, listed again, editable again.
    let (s, _, restored) = archival(&admin, "old", "restore").await;
    assert_eq!(s, 200, "{restored}");
    assert_eq!(restored.get("archived"), None);
    assert_eq!(restored["description"], before["description"]);
    assert!(
        snapshot_keys(&admin, "production")
            .await
            .contains(&"old".into())
    );
    let (_, _, live) = admin.get(FLAGS).await;
    assert_eq!(keys(&live), ["child", "old", "parent"]);
    let (_, _, gone) = admin.get(&format!("{FLAGS}?archived=true")).await;
    assert_eq!(keys(&gone), Vec::<&str>::new());
    let (s, _, b) = admin
        .post(&format!("{old_cfg}/toggle"), json!({"enabled": true}))
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, _, audit) = admin.get("/orgs/acme/audit?limit=500").await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entityKey"] == "old" && e["entityType"] == "flag")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "archive", "restore"]);
}

/// A layer's new salt reshuffles every environment's slots: with an
/// environment that needs approvals it needs glass; an unchanged layer does not.
async fn a_new_layer_salt_needs_glass_in_protected_environments(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    let layers = "/orgs/acme/projects/web/layers";
    admin
        .made(layers, json!({"key": "checkout", "salt": "s1"}), 201)
        .await;
    let (s, _, b) = admin
        .call(
            Method::PUT,
            "/orgs/acme/projects/web/environments/production/policy",
            Some(json!({"requiredApprovals": 1})),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let layer = format!("{layers}/checkout");
    let (_, tag, _) = admin.get(&layer).await;
    let tag = tag.unwrap();
    let (s, _, b) = admin
        .call(
            Method::PUT,
            &layer,
            Some(json!({"key": "checkout", "salt": "s2"})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("protected_environment")),
        "{b}"
    );
    let (s, _, b) = admin
        .call(
            Method::PUT,
            &layer,
            Some(json!({"key": "checkout", "salt": "s1"})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(s, 200, "an unchanged layer needs no glass: {b}");
    let (_, tag, _) = admin.get(&layer).await;
    let (s, _, b) = admin
        .call(
            Method::PUT,
            &layer,
            Some(json!({"key": "checkout", "salt": "s2"})),
            &[
                ("if-match", tag.as_deref().unwrap()),
                ("bunting-bypass-reason", "collision with the pricing test"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["layer"]["salt"], "s2", "{b}");
}

/// Archiving changes what every environment serves: in a project with an
/// environment that needs approvals, it needs glass, as deleting does.
async fn archiving_needs_glass_in_protected_environments(store: Store) {
    let api = TestApp::root(store);
    let admin = setup(&api).await;
    admin.made(FLAGS, flag("legacy", &[]), 201).await;
    let (s, _, b) = admin
        .call(
            Method::PUT,
            "/orgs/acme/projects/web/environments/production/policy",
            Some(json!({"requiredApprovals": 1, "approverRoles": ["editor"]})),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, _, b) = archival(&admin, "legacy", "archive").await;
    assert_eq!(
        (s.as_u16(), &b["error"]["code"]),
        (409, &json!("protected_environment")),
        "{b}"
    );
    assert!(
        snapshot_keys(&admin, "production")
            .await
            .contains(&"legacy".into())
    );
    let (_, tag, _) = admin.get(&format!("{FLAGS}/legacy")).await;
    let (s, _, b) = admin
        .call(
            Method::POST,
            &format!("{FLAGS}/legacy/archive"),
            None,
            &[
                ("if-match", tag.as_deref().unwrap()),
                ("bunting-bypass-reason", "retired after the launch"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(
        !snapshot_keys(&admin, "production")
            .await
            .contains(&"legacy".into())
    );
    let (_, _, audit) = admin.get("/orgs/acme/audit?limit=500").await;
    let bypass = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "bypass" && e["entityKey"] == "production")
        .unwrap_or_else(|| panic!("no bypass entry: {audit}"));
    assert!(
        bypass.to_string().contains("retired after the launch"),
        "{bypass}"
    );
}

/// A store at `url` whose flags predate migration 0014: made through the
/// API, then the migration's columns dropped and its record removed.
/// Answers the audit actor and time of the last change of flag `old`
/// (toggled in staging) and of flag `fresh` (created only).
async fn before_migration_14(url: &str) -> [(String, String); 2] {
    let store = Store::open(url).await.unwrap();
    let api = TestApp::root(store.clone());
    let admin = setup(&api).await;
    admin.made(FLAGS, flag("old", &[]), 201).await;
    admin.made(FLAGS, flag("fresh", &[]), 201).await;
    let (s, _, b) = admin
        .post(
            &format!("{FLAGS}/old/environments/staging/toggle"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let mut last = Vec::new();
    for key in ["old", "fresh"] {
        let (_, _, history) = admin.get(&format!("{FLAGS}/{key}/history")).await;
        let e = history["items"].as_array().unwrap().last().unwrap().clone();
        last.push((
            e["actor"].as_str().unwrap().to_string(),
            e["at"].as_str().unwrap().to_string(),
        ));
    }
    for (table, column) in [
        ("flags", "archived"),
        ("flags", "updated_at"),
        ("flags", "updated_by"),
        ("flag_configs", "updated_at"),
        ("flag_configs", "updated_by"),
    ] {
        sqlx::raw_sql(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
            .execute(store.pool())
            .await
            .unwrap();
    }
    sqlx::raw_sql("DELETE FROM bunting_migrations WHERE version = 14")
        .execute(store.pool())
        .await
        .unwrap();
    store.pool().close().await;
    last.try_into().unwrap()
}

/// Migration 0014 fills the list's state of existing flags from the audit
/// log: each configuration's latest change, else the flag's creation.
async fn backfilled(url: &str) {
    let [(old_by, old_at), (fresh_by, fresh_at)] = before_migration_14(url).await;
    let store = Store::open(url).await.unwrap();
    let api = TestApp::root(store.clone());
    let (s, _, t) = api
        .post(
            "/orgs/acme/tokens",
            json!({"name": "reader", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, _, page) = api.get(FLAGS).await;
    assert_eq!(s, 200, "{page}");
    let old = item(&page, "old");
    assert_eq!(
        (&old["updatedBy"], &old["updatedAt"]),
        (&json!(old_by), &json!(old_at))
    );
    assert_eq!(old["environments"]["staging"]["updatedAt"], old_at);
    assert_eq!(old["environments"]["staging"]["enabled"], true);
    let (_, _, history) = api.get(&format!("{FLAGS}/old/history")).await;
    let created = &history["items"][0]["at"];
    assert_eq!(&old["environments"]["production"]["updatedAt"], created);
    let fresh = item(&page, "fresh");
    assert_eq!(
        (&fresh["updatedBy"], &fresh["updatedAt"]),
        (&json!(fresh_by), &json!(fresh_at))
    );
    assert_eq!(fresh.get("archived"), None);
    store.pool().close().await;
}

#[tokio::test]
async fn sqlite_list_state_is_backfilled() {
    let dir = crate::common::cli::scratch("api", "backfill");
    backfilled(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("old.db").display()
    ))
    .await;
}

#[tokio::test]
async fn postgres_list_state_is_backfilled() {
    let (url, _guard) = common::postgres_schema().await;
    backfilled(&url).await;
}
