//! Change management through the API, on SQLite and PostgreSQL: a
//! protected environment turns writes into change requests; approvals
//! follow its policy (never the author's own); applying re-checks the
//! base; the kill switch and break-glass bypass with a reason; scheduled
//! changes apply once, or fail visibly.

use axum::http::Method;
use bunting_origin::store::Store;
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};

both!(
    protected_writes_wait_for_approval,
    a_stale_base_is_refused_until_rebased,
    kill_switch_and_break_glass_bypass_with_a_reason,
    scheduled_changes_apply_once_or_fail_visibly,
    bad_requests_name_every_problem,
    gitops_apply_holds_protected_changes,
    change_requests_and_bypasses_are_announced,
    approver_teams_and_rejections,
    segment_writes_wait_too,
    project_wide_writes_need_glass,
);

const ENV: &str = "/orgs/acme/projects/web/environments/production";
const CONFIG: &str = "/orgs/acme/projects/web/flags/beta/environments/production";

/// acme/web/production with flag `beta` (off), a policy of one approval
/// from editors, and tokens: `alice` and `bob` (editors), `vic` (viewer),
/// `ops` (admin).
struct World {
    app: TestApp,
    alice: TestApp,
    bob: TestApp,
    vic: TestApp,
    ops: TestApp,
}

async fn world(store: Store) -> World {
    let app = TestApp::root(store);
    app.made("/orgs", json!({"key": "acme", "name": "Acme"}), 201)
        .await;
    app.made(
        "/orgs/acme/projects",
        json!({"key": "web", "name": "Web"}),
        201,
    )
    .await;
    app.made(
        "/orgs/acme/projects/web/environments",
        json!({"key": "production", "name": "Production"}),
        201,
    )
    .await;
    app.made(
        "/orgs/acme/projects/web/flags",
        json!({"key": "beta", "flagType": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off"}),
        201,
    )
    .await;
    let (s, _, body) = app
        .call(
            Method::PUT,
            &format!("{ENV}/policy"),
            Some(json!({"requiredApprovals": 1, "approverRoles": ["editor"]})),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let token = |name: &'static str, role: &'static str| {
        let app = app.clone();
        async move {
            let made = app
                .made(
                    "/orgs/acme/tokens",
                    json!({"name": name, "role": role}),
                    201,
                )
                .await;
            app.as_token(made["secret"].as_str().unwrap())
        }
    };
    World {
        alice: token("alice", "editor").await,
        bob: token("bob", "editor").await,
        vic: token("vic", "viewer").await,
        ops: token("ops", "admin").await,
        app,
    }
}

async fn config(app: &TestApp) -> (Option<String>, Value) {
    let (_, tag, body) = app.get(CONFIG).await;
    (tag, body)
}

fn turn_on() -> Value {
    json!({"enabled": true, "rules": [], "fallthrough": {"variant": "on"}})
}

/// Alice asks to turn `beta` on through the plain configuration write.
async fn proposed(w: &World) -> Value {
    let (tag, _) = config(&w.app).await;
    let (s, _, cr) = w
        .alice
        .call_if_match(Method::PUT, CONFIG, Some(turn_on()), tag.as_deref())
        .await;
    assert_eq!(s, 202, "{cr}");
    cr
}

/// Bob approves change request `path`, then Alice applies it.
async fn approve_then_apply(w: &World, path: &str) {
    let (s, _, body) = w
        .bob
        .post(&format!("{path}/reviews"), json!({"verdict": "approve"}))
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, _, body) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 200, "{body}");
}

fn cr_path(cr: &Value) -> String {
    format!("{ENV}/change-requests/{}", cr["id"])
}

async fn protected_writes_wait_for_approval(store: Store) {
    let w = world(store).await;
    let cr = proposed(&w).await;
    assert_eq!(cr["status"], "open");
    // Nothing went live.
    assert_eq!(config(&w.app).await.1["enabled"], false);
    let path = cr_path(&cr);
    let (_, _, view) = w.app.get(&path).await;
    assert_eq!(view["diff"][0]["live"]["enabled"], false, "{view}");
    assert_eq!(view["diff"][0]["proposed"]["enabled"], true);
    assert_eq!(view["diff"][0]["stale"], false);
    assert_eq!(view["requiredApprovals"], 1);
    // Applying before approval is refused.
    let (s, _, _) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 422);
    // The author never approves their own change; a viewer cannot.
    let approve = json!({"verdict": "approve", "comment": "lgtm"});
    let (s, _, body) = w
        .alice
        .post(&format!("{path}/reviews"), approve.clone())
        .await;
    assert_eq!(
        (s.as_u16(), problems(&body)),
        (422, vec!["reviewer".to_string()])
    );
    let (s, _, _) = w
        .vic
        .post(&format!("{path}/reviews"), approve.clone())
        .await;
    assert_eq!(s, 403);
    // A viewer may comment.
    let (s, _, _) = w
        .vic
        .post(
            &format!("{path}/reviews"),
            json!({"verdict": "comment", "comment": "why?"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, approved) = w.bob.post(&format!("{path}/reviews"), approve).await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    let (s, _, applied) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 200, "{applied}");
    assert_eq!(applied["status"], "applied");
    assert_eq!(config(&w.app).await.1["enabled"], true);
    // Audited as a direct write by the one who applied, plus the request's
    // own trail.
    let (_, _, audit) = w.app.get("/orgs/acme/audit?limit=500").await;
    let trail: Vec<(String, String)> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["entityType"] == "changeRequest" || e["entityType"] == "flagConfig")
        .map(|e| {
            (
                e["entityType"].as_str().unwrap().to_string(),
                e["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("changeRequest", "create"),
        ("changeRequest", "comment"),
        ("changeRequest", "approve"),
        ("flagConfig", "update"),
        ("changeRequest", "apply"),
    ] {
        assert!(
            trail.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} missing from {trail:?}"
        );
    }
    // Applied once: a second apply is refused.
    let (s, _, _) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 422);
}

async fn a_stale_base_is_refused_until_rebased(store: Store) {
    let w = world(store).await;
    let cr = proposed(&w).await;
    let path = cr_path(&cr);
    let approve = json!({"verdict": "approve"});
    let (s, _, _) = w
        .bob
        .post(&format!("{path}/reviews"), approve.clone())
        .await;
    assert_eq!(s, 200);
    // Meanwhile someone breaks glass and changes what is live.
    let (tag, _) = config(&w.app).await;
    let (s, _, body) = w
        .ops
        .call(
            Method::PUT,
            CONFIG,
            Some(json!({"enabled": false, "rules": [], "fallthrough": {"variant": "off"}})),
            &[
                ("if-match", tag.as_deref().unwrap()),
                ("bunting-bypass-reason", "incident 42"),
            ],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let (_, _, view) = w.app.get(&path).await;
    assert_eq!(view["diff"][0]["stale"], true, "{view}");
    let (s, _, body) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 409, "{body}");
    assert_eq!(body["error"]["code"], "stale_base");
    assert_eq!(problems(&body), ["changes[0]"]);
    assert_eq!(config(&w.app).await.1["fallthrough"]["variant"], "off");
    // Rebased, it needs approving again, then applies.
    let (s, _, rebased) = w
        .alice
        .call(Method::POST, &format!("{path}/rebase"), None, &[])
        .await;
    assert_eq!(s, 200, "{rebased}");
    assert_eq!(
        (rebased["status"].clone(), rebased["approvals"].clone()),
        (json!("open"), json!(0))
    );
    let (s, _, _) = w.bob.post(&format!("{path}/reviews"), approve).await;
    assert_eq!(s, 200);
    let (s, _, _) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(config(&w.app).await.1["enabled"], true);
}

async fn kill_switch_and_break_glass_bypass_with_a_reason(store: Store) {
    let w = world(store).await;
    let toggle = format!("{CONFIG}/toggle");
    // Without a reason the kill switch too waits for approval.
    let (s, _, cr) = w.alice.post(&toggle, json!({"enabled": true})).await;
    assert_eq!(s, 202, "{cr}");
    assert_eq!(config(&w.app).await.1["enabled"], false);
    // With a reason it goes live at once (editors hold `killswitch`).
    let (s, _, body) = w
        .alice
        .call(
            Method::POST,
            &toggle,
            Some(json!({"enabled": true})),
            &[("bunting-bypass-reason", "checkout errors, INC-7")],
        )
        .await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(config(&w.app).await.1["enabled"], true);
    // Other writes break glass only with `changes.bypass` (admin).
    let (tag, _) = config(&w.app).await;
    let body_off = json!({"enabled": true, "rules": [], "fallthrough": {"variant": "off"}});
    let headers = |tag: &str| {
        vec![
            ("if-match", tag.to_string()),
            ("bunting-bypass-reason", "hotfix".to_string()),
        ]
    };
    let h = headers(tag.as_deref().unwrap());
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, _, _) = w
        .alice
        .call(Method::PUT, CONFIG, Some(body_off.clone()), &h)
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = w.ops.call(Method::PUT, CONFIG, Some(body_off), &h).await;
    assert_eq!(s, 200);
    // Both bypasses are in the audit log with their reasons.
    let (_, _, audit) = w.app.get("/orgs/acme/audit?limit=500").await;
    let reasons: Vec<String> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "bypass")
        .map(|e| {
            let after: Value = serde_json::from_str(e["after"].as_str().unwrap()).unwrap();
            after["reason"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.contains(&"checkout errors, INC-7".to_string())
            && reasons.contains(&"hotfix".to_string())
    );
}

async fn scheduled_changes_apply_once_or_fail_visibly(store: Store) {
    let w = world(store.clone()).await;
    // Staging needs no approvals: a scheduled change there is approved as
    // it is opened.
    w.app
        .made(
            "/orgs/acme/projects/web/environments",
            json!({"key": "staging", "name": "Staging"}),
            201,
        )
        .await;
    let staging = "/orgs/acme/projects/web/environments/staging";
    let on = json!({"title": "turn beta on at nine", "applyAt": "2020-01-01T09:00:00Z",
        "changes": [{"kind": "flagConfig", "flag": "beta", "config": turn_on()}]});
    let cr = w
        .alice
        .made(&format!("{staging}/change-requests"), on.clone(), 201)
        .await;
    assert_eq!(cr["status"], "approved");
    // Two origins (two concurrent rounds on one database) apply it once.
    let (a, b) = tokio::join!(store.apply_due_changes(), store.apply_due_changes());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.0.len() + b.0.len(), 1, "{a:?} {b:?}");
    assert!(a.1.is_empty() && b.1.is_empty());
    let (_, _, cr) = w
        .app
        .get(&format!("{staging}/change-requests/{}", cr["id"]))
        .await;
    assert_eq!(
        (cr["status"].as_str(), cr["appliedBy"].as_str()),
        (Some("applied"), Some("scheduler"))
    );
    let (_, _, live) = w
        .app
        .get("/orgs/acme/projects/web/flags/beta/environments/staging")
        .await;
    assert_eq!(live["enabled"], true);
    assert_eq!(store.apply_due_changes().await.unwrap(), (vec![], vec![]));
    // A scheduled change whose base moved fails, and says so.
    let off = json!({"title": "turn beta off", "applyAt": "2020-01-01T09:00:00Z",
        "changes": [{"kind": "flagConfig", "flag": "beta",
                     "config": {"enabled": false, "fallthrough": {"variant": "off"}}}]});
    let cr = w
        .alice
        .made(&format!("{staging}/change-requests"), off.clone(), 201)
        .await;
    let (s, _, _) = w
        .alice
        .post(
            "/orgs/acme/projects/web/flags/beta/environments/staging/toggle",
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, 200);
    let (applied, failed) = store.apply_due_changes().await.unwrap();
    assert!(applied.is_empty());
    assert_eq!(failed, vec![cr["id"].as_i64().unwrap()]);
    let (_, _, cr) = w
        .app
        .get(&format!("{staging}/change-requests/{}", cr["id"]))
        .await;
    assert_eq!(cr["status"], "failed");
    assert!(cr["error"].as_str().unwrap().contains("version"), "{cr}");
    // Not retried into another state.
    assert_eq!(store.apply_due_changes().await.unwrap(), (vec![], vec![]));
    // A cancelled schedule never applies.
    let later = json!({"title": "later", "applyAt": "2099-01-01T00:00:00Z",
        "changes": [{"kind": "flagConfig", "flag": "beta", "config": turn_on()}]});
    let cr = w
        .alice
        .made(&format!("{staging}/change-requests"), later, 201)
        .await;
    let path = format!("{staging}/change-requests/{}", cr["id"]);
    let (_, tag, _) = w.app.get(&path).await;
    let (s, _, rescheduled) = w
        .alice
        .call_if_match(
            Method::PUT,
            &format!("{path}/schedule"),
            Some(json!({"applyAt": "2020-06-01T00:00:00Z"})),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200, "{rescheduled}");
    let (s, _, _) = w
        .alice
        .call(Method::POST, &format!("{path}/cancel"), None, &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(store.apply_due_changes().await.unwrap(), (vec![], vec![]));
}

async fn bad_requests_name_every_problem(store: Store) {
    let w = world(store).await;
    let (s, _, body) = w
        .alice
        .post(
            &format!("{ENV}/change-requests"),
            json!({"title": "", "applyAt": "tomorrow", "changes": [
                {"kind": "flagConfig", "flag": "nope", "config": turn_on()},
                {"kind": "deleteSegment", "key": "ghost"}]}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let mut paths = problems(&body);
    paths.sort();
    assert_eq!(paths, ["applyAt", "changes[0]", "changes[1]", "title"]);
    let (s, _, body) = w
        .ops
        .call(
            Method::PUT,
            &format!("{ENV}/policy"),
            Some(json!({"requiredApprovals": 11, "approverRoles": ["wizard"], "approverTeams": ["ghosts"]})),
            &[],
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let mut paths = problems(&body);
    paths.sort();
    assert_eq!(
        paths,
        ["approverRoles[0]", "approverTeams[0]", "requiredApprovals"],
        "{body}"
    );
    let (s, _, body) = w
        .ops
        .call(
            Method::PUT,
            &format!("{ENV}/policy"),
            Some(json!({"requiredApprovals": 11})),
            &[],
        )
        .await;
    assert_eq!(
        (s.as_u16(), problems(&body)),
        (422, vec!["requiredApprovals".to_string()])
    );
}

/// GitOps: applying a definition file goes live where no approval is
/// needed and opens a change request for the protected environment.
async fn gitops_apply_holds_protected_changes(store: Store) {
    let w = world(store).await;
    w.app
        .made(
            "/orgs/acme/projects/web/environments",
            json!({"key": "staging", "name": "Staging"}),
            201,
        )
        .await;
    let file = json!({
        "environments": ["production", "staging"],
        "flags": {
            "beta": {"type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off",
                     "environments": {"production": {"fallthrough": "on"}, "staging": {"fallthrough": "on"}}},
            "gamma": {"type": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off"},
        },
    });
    let (s, _, applied) = w
        .alice
        .call(
            Method::PUT,
            "/orgs/acme/projects/web/definitions",
            Some(file.clone()),
            &[],
        )
        .await;
    assert_eq!(s, 200, "{applied}");
    // The new flag and staging's configuration are live…
    let (s, _, _) = w.app.get("/orgs/acme/projects/web/flags/gamma").await;
    assert_eq!(s, 200);
    let (_, _, staging) = w
        .app
        .get("/orgs/acme/projects/web/flags/beta/environments/staging")
        .await;
    assert_eq!(staging["fallthrough"]["variant"], "on", "{staging}");
    // …production's waits in a change request.
    let crs = applied["changeRequests"].as_array().unwrap();
    assert_eq!(crs.len(), 1, "{applied}");
    assert_eq!(crs[0]["status"], "open");
    assert_eq!(crs[0]["changes"][0]["kind"], "flagConfig");
    assert_eq!(config(&w.app).await.1["fallthrough"]["variant"], "off");
    let path = cr_path(&crs[0]);
    let (s, _, _) = w
        .bob
        .post(&format!("{path}/reviews"), json!({"verdict": "approve"}))
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = w
        .bob
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 200);
    assert_eq!(config(&w.app).await.1["fallthrough"]["variant"], "on");
    // A file that changes what a flag serves project-wide is refused.
    let mut changed = file;
    changed["flags"]["gamma"]["offVariant"] = json!("on");
    let (s, _, body) = w
        .alice
        .call(
            Method::PUT,
            "/orgs/acme/projects/web/definitions",
            Some(changed),
            &[],
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("flag gamma"),
        "{body}"
    );
}

/// Change-request events reach webhook subscriptions through the outbox:
/// opened, approved and applied requests, and a broken glass.
async fn change_requests_and_bypasses_are_announced(store: Store) {
    let w = world(store).await;
    let hook = w
        .app
        .made(
            "/orgs/acme/webhooks",
            json!({"url": "https://hooks.example.com/cr", "events": ["changeRequest.*", "breakGlass"]}),
            201,
        )
        .await;
    let cr = proposed(&w).await;
    let path = cr_path(&cr);
    approve_then_apply(&w, &path).await;
    let (s, _, _) = w
        .alice
        .call(
            Method::POST,
            &format!("{CONFIG}/toggle"),
            Some(json!({"enabled": false})),
            &[("bunting-bypass-reason", "pager")],
        )
        .await;
    assert_eq!(s, 200);
    let (_, _, log) = w
        .app
        .get(&format!("/orgs/acme/webhooks/{}/deliveries", hook["id"]))
        .await;
    let mut types: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventType"].as_str().unwrap())
        .collect();
    types.sort();
    types.dedup();
    assert_eq!(
        types,
        [
            "breakGlass",
            "changeRequest.apply",
            "changeRequest.approve",
            "changeRequest.create"
        ],
        "{log}"
    );
}

/// A scheduled change survives a restart: opened through one `bunting
/// serve`, applied by the next one on the same database at its time.
#[tokio::test]
async fn a_scheduled_change_survives_a_restart() {
    use crate::common::origin::{ADMIN, Origin};
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("scheduled-restart");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("bunting.db").display());
    let http = reqwest::Client::new();
    let call = |origin: &Origin, method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{}/api/v1{path}", origin.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            r = r.json(&b);
        }
        r.send()
    };
    let apply_at = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let apply_at = apply_at
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    {
        // The first origin never applies it: its scheduler is off.
        let first = Origin::start_with(&dir, &db, &["--schedule-seconds", "0"]);
        for (path, body) in [
            ("/orgs", json!({"key": "acme", "name": "Acme"})),
            ("/orgs/acme/projects", json!({"key": "web", "name": "Web"})),
            (
                "/orgs/acme/projects/web/environments",
                json!({"key": "production", "name": "Production"}),
            ),
            (
                "/orgs/acme/projects/web/flags",
                json!({"key": "beta", "flagType": "boolean",
                       "variants": {"on": true, "off": false}, "offVariant": "off"}),
            ),
            (
                "/orgs/acme/projects/web/environments/production/change-requests",
                json!({"title": "beta on, soon", "applyAt": apply_at,
                       "changes": [{"kind": "flagConfig", "flag": "beta", "config": turn_on()}]}),
            ),
        ] {
            let r = call(&first, reqwest::Method::POST, path, Some(body))
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "{path}: {}", r.text().await.unwrap());
        }
    }
    let second = Origin::start_with(&dir, &db, &["--schedule-seconds", "0.2"]);
    until!("the scheduled change applied", {
        let r = call(&second, reqwest::Method::GET, CONFIG, None)
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()["enabled"] == true
    });
    let r = call(
        &second,
        reqwest::Method::GET,
        &format!("{ENV}/change-requests"),
        None,
    )
    .await
    .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"][0]["status"], "applied");
    assert_eq!(list["items"][0]["appliedBy"], "scheduler");
}

/// A policy naming a team: only its members approve (here through their
/// personal tokens), whatever role others hold; a rejection closes the
/// request for good.
async fn approver_teams_and_rejections(store: Store) {
    use bunting_origin::store::{Actor, NewToken, Scope, TokenKind};
    let w = world(store.clone()).await;
    w.app
        .made(
            "/orgs/acme/teams",
            json!({"key": "release", "name": "Release", "members": ["carol@example.com"]}),
            201,
        )
        .await;
    for email in ["carol@example.com", "dan@example.com"] {
        w.app
            .made(
                "/orgs/acme/bindings",
                json!({"user": email, "role": "editor", "project": "web"}),
                201,
            )
            .await;
    }
    let (s, _, _) = w
        .app
        .call(
            Method::PUT,
            &format!("{ENV}/policy"),
            Some(json!({"requiredApprovals": 1, "approverTeams": ["release"]})),
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let org = store.org_by_key("acme").await.unwrap();
    let person = |email: &'static str| {
        let store = store.clone();
        let app = w.app.clone();
        async move {
            let user = store.sign_in(email, email, &[]).await.unwrap();
            let (_, raw) = store
                .make_token(
                    &Actor::new("admin").in_org(org.id),
                    &NewToken {
                        name: "laptop".into(),
                        kind: TokenKind::Personal,
                        role: "admin".into(),
                        scope: Scope::Org { org: org.id },
                        user_id: Some(user.id),
                        expires_in_days: None,
                    },
                )
                .await
                .unwrap();
            app.as_token(&raw)
        }
    };
    let (carol, dan) = (
        person("carol@example.com").await,
        person("dan@example.com").await,
    );
    let approve = json!({"verdict": "approve"});
    // An editor outside the team, and the admin, may not approve.
    let cr = proposed(&w).await;
    let path = cr_path(&cr);
    for outsider in [&dan, &w.bob, &w.ops] {
        let (s, _, body) = outsider
            .post(&format!("{path}/reviews"), approve.clone())
            .await;
        assert_eq!(s, 403, "{body}");
    }
    let (s, _, approved) = carol
        .post(&format!("{path}/reviews"), approve.clone())
        .await;
    assert_eq!(s, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["reviews"][0]["reviewer"], "user:carol@example.com");
    // A rejection closes the next request: no approval, no apply.
    let cr = proposed(&w).await;
    let path = cr_path(&cr);
    let (s, _, rejected) = carol
        .post(
            &format!("{path}/reviews"),
            json!({"verdict": "reject", "comment": "not today"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(rejected["status"], "rejected");
    let (s, _, _) = carol.post(&format!("{path}/reviews"), approve).await;
    assert_eq!(s, 422);
    let (s, _, _) = w
        .alice
        .call(Method::POST, &format!("{path}/apply"), Some(json!({})), &[])
        .await;
    assert_eq!(s, 422);
}

/// Segment writes pass the same gate: created, replaced and deleted
/// through change requests, or at once by breaking glass.
async fn segment_writes_wait_too(store: Store) {
    let w = world(store).await;
    let segments = format!("{ENV}/segments");
    let (s, _, cr) = w
        .alice
        .post(&segments, json!({"key": "staff", "included": ["u1"]}))
        .await;
    assert_eq!(s, 202, "{cr}");
    assert_eq!(cr["changes"][0]["kind"], "segment");
    let (s, _, _) = w.app.get(&format!("{segments}/staff")).await;
    assert_eq!(s, 404, "not live before approval");
    let path = cr_path(&cr);
    approve_then_apply(&w, &path).await;
    let (s, tag, _) = w.app.get(&format!("{segments}/staff")).await;
    assert_eq!(s, 200);
    let (s, _, cr) = w
        .alice
        .call_if_match(
            Method::PUT,
            &format!("{segments}/staff"),
            Some(json!({"key": "staff", "included": ["u1", "u2"]})),
            tag.as_deref(),
        )
        .await;
    assert_eq!(
        (s.as_u16(), cr["changes"][0]["kind"].clone()),
        (202, json!("segment"))
    );
    let (s, _, _) = w
        .ops
        .call(
            Method::DELETE,
            &format!("{segments}/staff"),
            None,
            &[
                ("if-match", tag.as_deref().unwrap()),
                ("bunting-bypass-reason", "leaked list"),
            ],
        )
        .await;
    assert_eq!(s, 204);
    let (s, _, _) = w.app.get(&format!("{segments}/staff")).await;
    assert_eq!(s, 404);
}

/// Project-wide writes that change what a protected environment serves (a
/// flag's variants, a deletion) cannot wait in a change request: refused,
/// unless an admin breaks glass, recorded per protected environment.
async fn project_wide_writes_need_glass(store: Store) {
    let w = world(store).await;
    let flag = "/orgs/acme/projects/web/flags/beta";
    let (_, tag, mut spec) = w.app.get(flag).await;
    // Describing it is harmless.
    spec["description"] = json!("the beta");
    for field in ["id", "projectId", "version", "createdAt", "updatedAt"] {
        spec.as_object_mut().unwrap().remove(field);
    }
    let (s, tag, body) = w
        .alice
        .call_if_match(Method::PUT, flag, Some(spec.clone()), tag.as_deref())
        .await;
    assert_eq!(s, 200, "{body}");
    // Changing what it serves is refused…
    spec["offVariant"] = json!("on");
    let (s, _, body) = w
        .alice
        .call_if_match(Method::PUT, flag, Some(spec.clone()), tag.as_deref())
        .await;
    assert_eq!(
        (s.as_u16(), body["error"]["code"].clone()),
        (409, json!("protected_environment")),
        "{body}"
    );
    let glass = |tag: &str| {
        vec![
            ("if-match".to_string(), tag.to_string()),
            (
                "bunting-bypass-reason".to_string(),
                "wrong default".to_string(),
            ),
        ]
    };
    let h = glass(tag.as_deref().unwrap());
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    // …even with a reason for an editor, but not for an admin.
    let (s, _, _) = w
        .alice
        .call(Method::PUT, flag, Some(spec.clone()), &h)
        .await;
    assert_eq!(s, 403);
    let (s, tag, body) = w.ops.call(Method::PUT, flag, Some(spec), &h).await;
    assert_eq!(s, 200, "{body}");
    // Deleting likewise.
    let (s, _, _) = w
        .alice
        .call_if_match(Method::DELETE, flag, None, tag.as_deref())
        .await;
    assert_eq!(s, 409);
    let h = glass(tag.as_deref().unwrap());
    let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (s, _, _) = w.ops.call(Method::DELETE, flag, None, &h).await;
    assert_eq!(s, 204);
    let (_, _, audit) = w.app.get("/orgs/acme/audit?limit=500").await;
    let bypasses = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "bypass" && e["entityKey"] == "production")
        .count();
    assert_eq!(bypasses, 2, "{audit}");
}
