//! People, teams, custom roles, scoped grants and tokens through the API
//! (the RBAC matrix covers every endpoint × caller; these follow one
//! person's rights from end to end), on SQLite and PostgreSQL.

use bunting_origin::store::{NewToken, Scope, Store, TokenKind};
use serde_json::{Value, json};

use crate::common::app::{TestApp, problems};

both!(
    scoped_lists_show_only_what_the_caller_reads,
    a_person_acts_through_teams_and_a_personal_token,
    tokens_expire_revoke_and_record_their_use,
    nobody_grants_more_than_they_hold,
    bad_bodies_name_every_problem,
    custom_roles_change_at_once_and_cannot_go_while_bound,
);

/// acme/web with production and staging, flag `beta`.
async fn acme(store: Store) -> TestApp {
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
        "/orgs/acme/projects",
        json!({"key": "api", "name": "API"}),
        201,
    )
    .await;
    for env in ["production", "staging"] {
        app.made(
            "/orgs/acme/projects/web/environments",
            json!({"key": env, "name": env}),
            201,
        )
        .await;
    }
    app.made(
        "/orgs/acme/projects/web/flags",
        json!({"key": "beta", "flagType": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off"}),
        201,
    )
    .await;
    app
}

async fn token(app: &TestApp, body: Value) -> String {
    let made = app.made("/orgs/acme/tokens", body, 201).await;
    made["secret"].as_str().unwrap().to_string()
}

fn keys(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_string())
        .collect()
}

const CONFIG: &str = "/orgs/acme/projects/web/flags/beta/environments";

async fn scoped_lists_show_only_what_the_caller_reads(store: Store) {
    let app = acme(store).await;
    let staging = token(
        &app,
        json!({"name": "s", "role": "editor", "project": "web", "environment": "staging"}),
    )
    .await;
    let as_staging = app.as_token(&staging);
    let (_, _, projects) = as_staging.get("/orgs/acme/projects").await;
    assert_eq!(keys(&projects), ["web"], "{projects}");
    let (_, _, envs) = as_staging.get("/orgs/acme/projects/web/environments").await;
    assert_eq!(keys(&envs), ["staging"], "{envs}");
    // Editor in staging, nothing in production: the 403 names both.
    let on = json!({"enabled": true, "fallthrough": {"variant": "on"}});
    let (_, tag, _) = app.get(&format!("{CONFIG}/staging")).await;
    let (s, _, _) = as_staging
        .call_if_match(
            axum::http::Method::PUT,
            &format!("{CONFIG}/staging"),
            Some(on.clone()),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200);
    let (_, tag, _) = app.get(&format!("{CONFIG}/production")).await;
    let (s, _, body) = as_staging
        .call_if_match(
            axum::http::Method::PUT,
            &format!("{CONFIG}/production"),
            Some(on),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 403, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("flags.write") && message.contains("web/production"),
        "{message}"
    );
}

async fn a_person_acts_through_teams_and_a_personal_token(store: Store) {
    let app = acme(store.clone()).await;
    // A team mapped from the identity provider's `release` group is editor
    // in staging; alice is in that group.
    app.made(
        "/orgs/acme/teams",
        json!({"key": "release", "name": "Release", "idpGroup": "release"}),
        201,
    )
    .await;
    app.made(
        "/orgs/acme/bindings",
        json!({"team": "release", "role": "editor", "project": "web", "environment": "staging"}),
        201,
    )
    .await;
    let alice = store
        .sign_in("alice@example.com", "Alice", &["release".into()])
        .await
        .unwrap();
    let org = store.org_by_key("acme").await.unwrap();
    let personal = |role: &str| NewToken {
        name: "laptop".into(),
        kind: TokenKind::Personal,
        role: role.into(),
        scope: Scope::Org { org: org.id },
        user_id: Some(alice.id),
        expires_in_days: Some(30),
    };
    let admin_actor = bunting_origin::store::Actor::new("admin").in_org(org.id);
    let (record, raw) = store
        .make_token(&admin_actor, &personal("admin"))
        .await
        .unwrap();
    assert_eq!(record.user.as_deref(), Some("alice@example.com"));
    let as_alice = app.as_token(&raw);
    let toggle = |env: &str| format!("{CONFIG}/{env}/toggle");
    let (s, _, _) = as_alice
        .post(&toggle("staging"), json!({"enabled": true}))
        .await;
    assert_eq!(s, 200);
    // Her personal token never exceeds her: nothing in production.
    let (s, _, _) = as_alice
        .post(&toggle("production"), json!({"enabled": true}))
        .await;
    assert_eq!(s, 403);
    // The audit log names the person and the token.
    let (_, _, history) = app.get("/orgs/acme/projects/web/flags/beta/history").await;
    let actors: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    let expected = format!("user:alice@example.com via token:{}", record.id);
    assert!(actors.contains(&expected.as_str()), "{actors:?}");
    // A personal token capped at viewer cannot write even where she can.
    let (_, raw_viewer) = store
        .make_token(&admin_actor, &personal("viewer"))
        .await
        .unwrap();
    let (s, _, _) = app
        .as_token(&raw_viewer)
        .post(&toggle("staging"), json!({"enabled": false}))
        .await;
    assert_eq!(s, 403);
    // Her rights follow the groups of her last sign-in: out of the group,
    // she holds nothing in acme, which then answers as if it did not exist.
    store
        .sign_in("alice@example.com", "Alice", &[])
        .await
        .unwrap();
    let (s, _, _) = as_alice
        .post(&toggle("staging"), json!({"enabled": false}))
        .await;
    assert_eq!(s, 404);
    // She lists and revokes her own personal tokens; a service token of
    // hers is refused (she does not manage tokens).
    store
        .sign_in("alice@example.com", "Alice", &["release".into()])
        .await
        .unwrap();
    let (s, _, mine) = as_alice.get("/orgs/acme/tokens").await;
    assert_eq!(s, 200);
    assert_eq!(mine["items"].as_array().unwrap().len(), 2, "{mine}");
    let (s, _, _) = as_alice
        .post("/orgs/acme/tokens", json!({"name": "ci", "role": "viewer"}))
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = as_alice
        .post(
            "/orgs/acme/tokens",
            json!({"name": "second", "kind": "personal", "expiresInDays": 7}),
        )
        .await;
    assert_eq!(s, 201);
    // A disabled user's personal tokens stop working.
    sqlx::query("UPDATE users SET disabled_at = '2026-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(alice.id)
        .execute(store.pool())
        .await
        .unwrap();
    let (s, _, _) = as_alice.get("/orgs/acme").await;
    assert_eq!(s, 401);
}

async fn tokens_expire_revoke_and_record_their_use(store: Store) {
    let app = acme(store.clone()).await;
    let made = app
        .made(
            "/orgs/acme/tokens",
            json!({"name": "ci", "role": "viewer", "expiresInDays": 1}),
            201,
        )
        .await;
    let raw = made["secret"].as_str().unwrap().to_string();
    assert!(
        made["expiresAt"].is_string() && made["lastUsedAt"].is_null(),
        "{made}"
    );
    let (s, _, _) = app.as_token(&raw).get("/orgs/acme").await;
    assert_eq!(s, 200);
    let id = made["id"].as_i64().unwrap();
    let (_, _, listed) = app.get("/orgs/acme/tokens").await;
    let listed = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .unwrap();
    assert!(listed["lastUsedAt"].is_string(), "{listed}");
    // Past its expiry it is refused like an unknown token.
    sqlx::query("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE id = $1")
        .bind(id)
        .execute(store.pool())
        .await
        .unwrap();
    let (s, _, body) = app.as_token(&raw).get("/orgs/acme").await;
    assert_eq!(s, 401, "{body}");
    // Revocation takes effect on the next request.
    let other = token(&app, json!({"name": "ops", "role": "viewer"})).await;
    let (s, _, _) = app.as_token(&other).get("/orgs/acme").await;
    assert_eq!(s, 200);
    let (_, _, all) = app.get("/orgs/acme/tokens").await;
    let other_id = all["items"].as_array().unwrap().last().unwrap()["id"].clone();
    let (s, _, _) = app
        .call(
            axum::http::Method::DELETE,
            &format!("/orgs/acme/tokens/{other_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = app.as_token(&other).get("/orgs/acme").await;
    assert_eq!(s, 401);
}

async fn nobody_grants_more_than_they_hold(store: Store) {
    let app = acme(store).await;
    app.made(
        "/orgs/acme/roles",
        json!({"key": "people", "name": "People", "permissions": ["read", "members.manage", "tokens.manage"]}),
        201,
    )
    .await;
    let people = app.as_token(&token(&app, json!({"name": "hr", "role": "people"})).await);
    // Granting viewer (which it holds) works; editor or admin does not.
    let (s, _, _) = people
        .post(
            "/orgs/acme/bindings",
            json!({"user": "bo@example.com", "role": "viewer"}),
        )
        .await;
    assert_eq!(s, 201);
    for role in ["editor", "admin"] {
        let (s, _, body) = people
            .post(
                "/orgs/acme/bindings",
                json!({"user": "bo@example.com", "role": role}),
            )
            .await;
        assert_eq!(s, 403, "{role}: {body}");
    }
    let (s, _, _) = people
        .post("/orgs/acme/tokens", json!({"name": "x", "role": "admin"}))
        .await;
    assert_eq!(s, 403);
    let (s, _, _) = people
        .post(
            "/orgs/acme/roles",
            json!({"key": "sneaky", "name": "S", "permissions": ["org.write"]}),
        )
        .await;
    assert_eq!(s, 403);
}

async fn bad_bodies_name_every_problem(store: Store) {
    let app = acme(store).await;
    let (s, _, body) = app
        .post(
            "/orgs/acme/bindings",
            json!({"user": "not-an-email", "role": "wizard", "project": "nope"}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let mut paths = problems(&body);
    paths.sort();
    assert_eq!(paths, ["project", "role"], "{body}");
    let (s, _, body) = app
        .post(
            "/orgs/acme/bindings",
            json!({"user": "a@b.c", "team": "x", "role": "viewer"}),
        )
        .await;
    assert_eq!(
        (s.as_u16(), problems(&body)),
        (422, vec!["user".to_string()])
    );
    let (s, _, body) = app
        .post(
            "/orgs/acme/roles",
            json!({"key": "admin", "name": "", "permissions": []}),
        )
        .await;
    assert_eq!(s, 422);
    let mut paths = problems(&body);
    paths.sort();
    assert_eq!(paths, ["key", "name", "permissions"], "{body}");
    let (s, _, body) = app
        .post(
            "/orgs/acme/roles",
            json!({"key": "x", "name": "X", "permissions": ["fly"]}),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    let (s, _, body) = app
        .post(
            "/orgs/acme/tokens",
            json!({"name": "t", "role": "viewer", "expiresInDays": 9999, "environment": "production"}),
        )
        .await;
    assert_eq!(s, 422);
    let mut paths = problems(&body);
    paths.sort();
    assert_eq!(paths, ["environment", "expiresInDays"], "{body}");
    let (s, _, body) = app
        .post(
            "/orgs/acme/teams",
            json!({"key": "bad key", "name": "T", "members": ["ok@example.com", "nope"]}),
        )
        .await;
    assert_eq!(s, 422);
    let mut paths = problems(&body);
    paths.sort();
    assert_eq!(paths, ["key", "members[1]"], "{body}");
}

async fn custom_roles_change_at_once_and_cannot_go_while_bound(store: Store) {
    let app = acme(store).await;
    app.made(
        "/orgs/acme/roles",
        json!({"key": "oncall", "name": "On call", "permissions": ["read"]}),
        201,
    )
    .await;
    let oncall = app.as_token(&token(&app, json!({"name": "pager", "role": "oncall"})).await);
    let toggle = format!("{CONFIG}/production/toggle");
    let (s, _, _) = oncall.post(&toggle, json!({"enabled": true})).await;
    assert_eq!(s, 403);
    let (_, tag, _) = app.get("/orgs/acme/roles/oncall").await;
    let (s, _, _) = app
        .call_if_match(
            axum::http::Method::PUT,
            "/orgs/acme/roles/oncall",
            Some(
                json!({"key": "oncall", "name": "On call", "permissions": ["read", "killswitch"]}),
            ),
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 200);
    let (s, _, _) = oncall.post(&toggle, json!({"enabled": true})).await;
    assert_eq!(s, 200);
    let (_, tag, _) = app.get("/orgs/acme/roles/oncall").await;
    let (s, _, body) = app
        .call_if_match(
            axum::http::Method::DELETE,
            "/orgs/acme/roles/oncall",
            None,
            tag.as_deref(),
        )
        .await;
    assert_eq!(s, 422, "{body}");
    // Built-in roles are listed and cannot change.
    let (_, _, roles) = app.get("/orgs/acme/roles").await;
    assert_eq!(
        keys(&roles),
        ["viewer", "editor", "publisher", "admin", "oncall"]
    );
}
