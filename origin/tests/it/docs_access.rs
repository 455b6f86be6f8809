//! The `curl` examples of `docs/access.md` on roles, scopes, teams,
//! tokens and change requests, run as written (`sh -eu`, `curl -fsS`)
//! against a real `bunting serve`, then checked through the API.

use serde_json::{Value, json};

use crate::common::docs::{sh, shell_blocks};
use crate::common::origin::{ADMIN, Origin};

/// `GET path` as the administrator.
async fn get(api: &str, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{api}{path}"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn post(api: &str, path: &str, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{api}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "POST {path}: {}", r.text().await.unwrap());
}

#[tokio::test]
async fn examples_run_as_written() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("access-docs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let origin = Origin::start(&dir, "sqlite::memory:");
    let api = format!("{}/api/v1", origin.url);
    post(&api, "/orgs", json!({"key": "acme", "name": "Acme"})).await;
    post(
        &api,
        "/orgs/acme/projects",
        json!({"key": "web", "name": "Web"}),
    )
    .await;
    for env in ["production", "staging"] {
        post(
            &api,
            "/orgs/acme/projects/web/environments",
            json!({"key": env, "name": env}),
        )
        .await;
    }
    post(
        &api,
        "/orgs/acme/projects/web/flags",
        json!({"key": "checkout-v2", "flagType": "boolean",
               "variants": {"on": true, "off": false}, "offVariant": "off"}),
    )
    .await;
    // checkout-v2 is live in production, so the kill switch has
    // something to turn off.
    let r = reqwest::Client::new()
        .post(format!(
            "{api}/orgs/acme/projects/web/flags/checkout-v2/environments/production/toggle"
        ))
        .bearer_auth(ADMIN)
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/access.md")).unwrap();
    let env = [("BUNTING", api.as_str()), ("TOKEN", ADMIN)];
    let mut outputs = Vec::new();
    for section in [
        "## Permissions and roles",
        "## Scopes",
        "## Teams",
        "## API tokens",
        "## Change requests and approvals",
    ] {
        let blocks = shell_blocks(&doc, section);
        assert!(!blocks.is_empty(), "{section} has examples");
        for (_, code) in blocks {
            let (ok, out) = sh(&dir, &code, &env).await;
            assert!(ok, "{section}: {code}\n{out}");
            outputs.push(out);
        }
    }
    // What the examples did, seen through the API.
    let roles = get(&api, "/orgs/acme/roles/oncall").await;
    assert_eq!(roles["permissions"], json!(["read", "killswitch"]));
    let bindings = get(&api, "/orgs/acme/bindings").await;
    let subjects: Vec<(&str, &str, Option<&str>)> = bindings["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["subject"].as_str().unwrap(),
                b["role"].as_str().unwrap(),
                b["environment"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        subjects,
        [
            ("user:alice@example.com", "viewer", None),
            ("user:alice@example.com", "editor", Some("staging")),
            ("team:release", "publisher", None),
        ]
    );
    let team = get(&api, "/orgs/acme/teams/release").await;
    assert_eq!(team["members"], json!(["bo@example.com"]));
    let token: Value = serde_json::from_str(&outputs[3]).unwrap();
    assert!(token["secret"].as_str().unwrap().starts_with("bnt_api_"));
    assert_eq!(
        (
            token["environment"].as_str(),
            token["expiresAt"].is_string()
        ),
        (Some("staging"), true)
    );
    let env = "/orgs/acme/projects/web/environments/production";
    let policy = get(&api, &format!("{env}/policy")).await;
    assert_eq!(policy["requiredApprovals"], 1);
    // The change request waits; the kill switch broke glass.
    let changes = get(&api, &format!("{env}/change-requests")).await;
    let statuses: Vec<&str> = changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["applied", "open"], "{changes}");
    let audit = get(&api, "/orgs/acme/audit?limit=500").await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "bypass"
                && e["after"]
                    .as_str()
                    .unwrap()
                    .contains("checkout errors, INC-7")),
        "no bypass entry"
    );
}
