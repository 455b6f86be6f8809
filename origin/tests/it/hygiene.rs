//! Input hygiene of the origin through the API (the router in process),
//! on SQLite and PostgreSQL: client numbers are range-checked before any
//! arithmetic, text with NUL never reaches the database, keys fit every
//! publisher, a permanently failing publication is visible and not retried
//! in a loop, and the smaller cases of issue 10 (`.`/`..` keys, tiny
//! weights, `BEARER` on `/events`, oversized `X-Request-Id`, revoking twice).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Method;
use bunting_origin::api::{AppState, ServeConfig};
use bunting_origin::kv;
use bunting_origin::publish::{self, Directory, PublishOptions, Publisher};
use bunting_origin::store::Store;
use serde_json::{Value, json};

use crate::common::app::{ROOT, Reply, TestApp, problems};
use crate::common::publishing;

both!(
    client_numbers_are_range_checked,
    nul_text_never_reaches_the_database,
    scope_keys_fit_every_publisher,
    permanent_publish_failure_is_visible_and_not_retried,
    dot_keys_and_tiny_weights_are_refused,
    events_accept_any_case_of_bearer,
    request_ids_are_bounded,
    revoking_twice_changes_nothing,
);

const INGEST: &str = "ingest-secret";
const ENV: &str = "/orgs/acme/projects/web/environments/production";
const FLAGS: &str = "/orgs/acme/projects/web/flags";

/// The API as the bootstrap administrator calls it.
#[derive(Clone)]
struct Api(TestApp);

impl Api {
    fn start(state: AppState) -> Api {
        Api(TestApp::new(state).as_token(ROOT))
    }

    fn state(store: Store) -> AppState {
        AppState::new(
            store,
            ServeConfig {
                admin_token: Some(ROOT.into()),
                ingest_secret: Some(INGEST.into()),
                ..ServeConfig::default()
            },
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.0.call_with(method, path, body.as_ref(), headers).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    /// POSTs `body` and asserts 201.
    async fn made(&self, path: &str, body: Value) -> Value {
        self.0.made(path, body, 201).await
    }
}

/// The problem paths of a 4xx answer.
fn paths(a: &Reply) -> Vec<String> {
    problems(&a.body)
}

/// Org `acme`, project `web`, environment `production`, flag `checkout`.
async fn world(api: &Api) {
    api.made("/orgs", json!({"key": "acme", "name": "Acme"}))
        .await;
    api.made("/orgs/acme/projects", json!({"key": "web", "name": "Web"}))
        .await;
    api.made(
        "/orgs/acme/projects/web/environments",
        json!({"key": "production", "name": "Production"}),
    )
    .await;
    api.made(
        FLAGS,
        json!({"key": "checkout", "flagType": "boolean",
               "variants": {"on": true, "off": false}, "offVariant": "off"}),
    )
    .await;
}

/// Huge `graceSeconds` used to panic the handler (`now + i64::MAX` s) or,
/// near `u64::MAX`, wrap to an expiry in the past; now the range is checked
/// (at most 365 days) and a number that is no `u64` names its field. Other
/// client numbers that reach arithmetic: metric windows, allocation sums.
async fn client_numbers_are_range_checked(store: Store) {
    let api = Api::start(Api::state(store));
    world(&api).await;
    let key = api
        .made(
            &format!("{ENV}/sdk-keys"),
            json!({"kind": "server", "name": "backend"}),
        )
        .await;
    let rotate = format!("{ENV}/sdk-keys/{}/rotate", key["id"]);
    for grace in [
        json!(u64::MAX),
        json!(u64::MAX - 1),
        json!(i64::MAX),
        json!(i64::MAX as u64 + 1),
        json!(31_536_001u64),
        json!(1e30),
        json!(-1),
        json!(1.5),
        json!("60"),
    ] {
        let a = api.post(&rotate, json!({"graceSeconds": grace})).await;
        assert_eq!(a.status, 422, "graceSeconds {grace}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "invalid", "{}", a.body);
        assert_eq!(paths(&a), ["graceSeconds"], "graceSeconds {grace}");
    }
    // Nothing was rotated: the key has no expiry, there is one key.
    let keys = api.get(&format!("{ENV}/sdk-keys")).await.body;
    assert_eq!(keys["items"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(keys["items"][0]["expiresAt"], Value::Null, "{keys}");

    // The largest grace period works and expires in the future.
    let a = api
        .post(&rotate, json!({"graceSeconds": 31_536_000u64}))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let keys = api.get(&format!("{ENV}/sdk-keys")).await.body;
    let expires = keys["items"][0]["expiresAt"].as_str().unwrap().to_string();
    let now = time::OffsetDateTime::now_utc();
    let in_a_year =
        time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc3339)
            .unwrap();
    let d = in_a_year - now;
    assert!(
        d > time::Duration::days(364) && d <= time::Duration::days(365),
        "{expires}"
    );

    // Metric windows are added to times in SQL: bounded too.
    for w in [json!(u64::MAX), json!(31_536_001u64), json!(0)] {
        let a = api
            .post(
                "/orgs/acme/projects/web/metrics",
                json!({"key": "m", "kind": "conversion", "event": "purchase", "windowSeconds": w}),
            )
            .await;
        assert_eq!(a.status, 422, "windowSeconds {w}: {}", a.body);
        assert_eq!(paths(&a), ["windowSeconds"], "windowSeconds {w}");
    }
    api.made(
        "/orgs/acme/projects/web/metrics",
        json!({"key": "m", "kind": "conversion", "event": "purchase", "windowSeconds": 31_536_000u64}),
    )
    .await;

    // Allocation shares are weight / sum: the sum may not overflow or be 0.
    for allocation in [
        json!({"on": 1e308, "off": 1e308}),
        json!({"on": 0, "off": 0}),
    ] {
        let a = api
            .post(
                &format!("{ENV}/experiments"),
                json!({"key": "x", "flag": "checkout", "control": "off",
                       "allocation": allocation, "primaryMetric": "m"}),
            )
            .await;
        assert_eq!(a.status, 422, "allocation {allocation}: {}", a.body);
        assert_eq!(paths(&a), ["allocation"], "allocation {allocation}");
    }
}

/// PostgreSQL refuses NUL in text (500) while SQLite stores it: the API
/// refuses it before the database, in bodies (422, every field named),
/// path parameters and query values (400, named).
async fn nul_text_never_reaches_the_database(store: Store) {
    let api = Api::start(Api::state(store));
    world(&api).await;

    let a = api
        .post("/orgs", json!({"key": "nul", "name": "Nul\u{0}Corp"}))
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(paths(&a), ["name"]);

    // Every offending field at once, at any depth, object keys included.
    let a = api
        .post(
            FLAGS,
            json!({"key": "dark\u{0}mode", "flagType": "json",
                   "variants": {"on": {"deep": ["ok", "\u{0}"]}, "off\u{0}": {}},
                   "offVariant": "off", "description": "a\u{0}b", "tags": ["ok", "t\u{0}"]}),
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    let mut p = paths(&a);
    p.sort();
    assert_eq!(
        p,
        [
            "description",
            "key",
            "tags[1]",
            "variants.off\\u0000",
            "variants.on.deep[1]"
        ],
        "{}",
        a.body
    );
    assert!(
        a.body["error"]["problems"][0]["message"]
            .as_str()
            .unwrap()
            .contains("NUL"),
        "{}",
        a.body
    );

    // A rule condition and a config of a flag.
    let cfg = format!("{FLAGS}/checkout/environments/production");
    let tag = api.get(&cfg).await.etag.unwrap();
    let a = api
        .call(
            Method::PUT,
            &cfg,
            Some(json!({"enabled": true, "fallthrough": {"variant": "on"},
                        "rules": [{"id": "r\u{0}", "condition": "country == \"D\u{0}E\"",
                                   "serve": {"variant": "on"}}]})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(a.status, 422, "{}", a.body);
    let mut p = paths(&a);
    p.sort();
    assert_eq!(p, ["rules[0].condition", "rules[0].id"], "{}", a.body);

    // Path parameters and query values.
    let a = api.get("/orgs/ac%00me/projects").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(paths(&a), ["path.org"], "{}", a.body);
    let a = api.get(&format!("{FLAGS}/check%00out")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(paths(&a), ["path.flag"], "{}", a.body);
    let a = api.get(&format!("{FLAGS}?q=a%00b&tag=%00")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let mut p = paths(&a);
    p.sort();
    assert_eq!(p, ["query.q", "query.tag"], "{}", a.body);
    let a = api.get("/orgs/acme/audit?actor=%00&entityType=flag").await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(paths(&a), ["query.actor"], "{}", a.body);

    // Nothing was stored; ordinary text (tabs, new lines, Unicode) still is.
    let orgs = api.get("/orgs").await.body;
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1, "{orgs}");
    let a = api
        .post("/orgs", json!({"key": "tabs", "name": "T\tabs\n☂"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body["name"], "T\tabs\n☂");
    assert_eq!(api.get(&format!("{FLAGS}?q=%E2%98%82")).await.status, 200);
}

fn fast(state: &AppState) -> PublishOptions {
    PublishOptions {
        wakeup: state.publish_wakeup.clone(),
        ..publishing::fast()
    }
}

/// Organization, project and environment keys are at most 64 bytes, so
/// that `snapshot:<org>/<project>/<env>` fits Cloudflare KV (512 bytes) and
/// a file name (255 bytes, the directory publisher's temporary file
/// included); the longest accepted keys really publish.
async fn scope_keys_fit_every_publisher(store: Store) {
    let mut state = Api::state(store);
    let dir = publishing::temp_dir("hygiene-keys");
    let targets: Vec<Arc<dyn Publisher>> = vec![Arc::new(Directory::new(&dir))];
    let handle = publish::spawn(
        state.store.clone(),
        targets,
        state.metrics.clone(),
        fast(&state),
    );
    state.publish = Some(handle.clone());
    let api = Api::start(state);

    let (o, p, e) = ("o".repeat(64), "p".repeat(64), "e".repeat(64));
    for (path, what) in [
        ("/orgs".to_string(), "organization"),
        (format!("/orgs/{o}/projects"), "project"),
        (
            format!("/orgs/{o}/projects/{p}/environments"),
            "environment",
        ),
    ] {
        let long = "k".repeat(65);
        let a = api.post(&path, json!({"key": long, "name": what})).await;
        // The first 65-byte key is refused before the parents exist.
        if what == "organization" {
            assert_eq!(a.status, 422, "{what}: {}", a.body);
            assert_eq!(paths(&a), ["key"], "{what}");
            assert!(
                a.body["error"]["problems"][0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("at most 64"),
                "{}",
                a.body
            );
        }
        let key = match what {
            "organization" => &o,
            "project" => &p,
            _ => &e,
        };
        api.made(&path, json!({"key": key, "name": what})).await;
        let a = api.post(&path, json!({"key": long, "name": what})).await;
        assert_eq!(a.status, 422, "{what}: {}", a.body);
        assert_eq!(paths(&a), ["key"], "{what}");
    }
    // Flag keys are not part of KV keys: they keep 200 bytes.
    api.made(
        &format!("/orgs/{o}/projects/{p}/flags"),
        json!({"key": "f".repeat(200), "flagType": "boolean",
               "variants": {"on": true, "off": false}, "offVariant": "off"}),
    )
    .await;

    let edge = format!("{o}/{p}/{e}");
    assert!(kv::snapshot_key(&edge).len() <= kv::MAX_KEY_BYTES);
    let status = format!("/orgs/{o}/projects/{p}/environments/{e}/publish");
    until!("the longest keys publish", {
        let s = api.get(&status).await.body;
        s["targets"][0]["publishedVersion"].as_i64().unwrap_or(0) >= 1
    });
    let s = api.get(&status).await.body;
    assert_eq!(s["targets"][0]["attempts"], 0, "{s}");
    assert_eq!(s["targets"][0]["lastErrorPermanent"], false, "{s}");
    let file = Directory::new(&dir).path(&kv::snapshot_key(&edge));
    let value = std::fs::read(&file).unwrap();
    let snapshot: Value = serde_json::from_str(publishing::snapshot_json(&value)).unwrap();
    assert_eq!(snapshot["environment"], edge.as_str());
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// An environment whose snapshot a target cannot store (here: a key made
/// before the length limit, too long for a file name) fails permanently:
/// recorded once, shown in the publication status, counted in
/// `bunting_publish_blocked`, and not retried until the environment
/// changes; it used to be retried forever.
async fn permanent_publish_failure_is_visible_and_not_retried(store: Store) {
    let mut state = Api::state(store.clone());
    let api = Api::start(state.clone());
    world(&api).await;
    // A project and an environment made before keys were limited to 64
    // bytes: `snapshot%3Aacme%2F<200>%2F<200>` is no file name (> 255 bytes).
    let long = "l".repeat(200);
    let env_id = api.get(ENV).await.body["id"].as_i64().unwrap();
    let project_id = api.get("/orgs/acme/projects/web").await.body["id"]
        .as_i64()
        .unwrap();
    for (table, id) in [("projects", project_id), ("environments", env_id)] {
        sqlx::query(&format!("UPDATE {table} SET key = $1 WHERE id = $2"))
            .bind(&long)
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
    }

    let dir = publishing::temp_dir("hygiene-permanent");
    let targets: Vec<Arc<dyn Publisher>> = vec![Arc::new(Directory::new(&dir))];
    let handle = publish::spawn(store.clone(), targets, state.metrics.clone(), fast(&state));
    state.publish = Some(handle.clone());
    // Its keys are longer than the document now allows: not checked.
    let api = Api(Api::start(state.clone()).0.unchecked());
    let project = format!("/orgs/acme/projects/{long}");
    let env = format!("{project}/environments/{long}");
    let target = |s: &Value| s["targets"][0].clone();

    until!("the failure is recorded", {
        let s = api.get(&format!("{env}/publish")).await.body;
        target(&s)["attempts"].as_i64().unwrap_or(0) >= 1
    });
    // Twenty poll intervals and more than the longest backoff later it has
    // not been tried again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = api.get(&format!("{env}/publish")).await.body;
    let t = target(&s);
    assert_eq!(t["target"], "directory", "{s}");
    assert_eq!(t["attempts"], 1, "retried: {s}");
    assert_eq!(t["publishedVersion"], 0, "{s}");
    assert_eq!(t["lastErrorPermanent"], true, "{s}");
    let error = t["lastError"].as_str().unwrap();
    assert!(error.contains("cannot be stored"), "{error}");
    assert!(error.contains("255"), "{error}");
    assert!(
        state.metrics.render().contains("bunting_publish_blocked 1"),
        "{}",
        state.metrics.render()
    );

    // A change is a new snapshot: tried once more, then left alone again.
    let a = api
        .post(
            &format!("{project}/flags/checkout/environments/{long}/toggle"),
            json!({"enabled": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    until!("the new version is tried", {
        let s = api.get(&format!("{env}/publish")).await.body;
        target(&s)["attempts"].as_i64().unwrap_or(0) >= 2
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = api.get(&format!("{env}/publish")).await.body;
    assert_eq!(target(&s)["attempts"], 2, "retried: {s}");
    assert_eq!(target(&s)["lastErrorPermanent"], true, "{s}");

    // Deleting the environment clears the block.
    let tag = api.get(&env).await.etag.unwrap();
    let a = api
        .call(Method::DELETE, &env, None, &[("if-match", &tag)])
        .await;
    assert_eq!(a.status, 204, "{}", a.body);
    until!(
        "the block is cleared",
        state.metrics.render().contains("bunting_publish_blocked 0")
    );
    handle.shutdown().await;
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `.` and `..` are no keys (they are path segments and file names), and a
/// rollout weight is 0 or a whole number of 0.001% buckets: `1e-320` used
/// to be taken as 0.
async fn dot_keys_and_tiny_weights_are_refused(store: Store) {
    let api = Api::start(Api::state(store));
    world(&api).await;
    for key in [".", ".."] {
        let named = json!({"key": key, "name": "n"});
        for (path, body) in [
            ("/orgs".to_string(), named.clone()),
            ("/orgs/acme/projects".into(), named.clone()),
            ("/orgs/acme/projects/web/environments".into(), named),
            (format!("{ENV}/segments"), json!({"key": key})),
            (
                "/orgs/acme/projects/web/metrics".into(),
                json!({"key": key, "kind": "conversion", "event": "e"}),
            ),
        ] {
            let a = api.post(&path, body).await;
            assert_eq!(a.status, 422, "{path} {key}: {}", a.body);
            assert!(
                paths(&a).iter().any(|p| p.ends_with("key")),
                "{path} {key}: {}",
                a.body
            );
        }
        let a = api
            .post(
                FLAGS,
                json!({"key": key, "flagType": "boolean",
                       "variants": {"on": true, "off": false}, "offVariant": "off"}),
            )
            .await;
        assert_eq!(a.status, 422, "flag {key}: {}", a.body);
        assert_eq!(paths(&a), ["key"]);
    }
    // Dots inside keys stay fine.
    api.made("/orgs/acme/projects", json!({"key": "v1.2", "name": "n"}))
        .await;

    let cfg = format!("{FLAGS}/checkout/environments/production");
    for weights in [(1e-320, 100.0), (0.0001, 99.9999), (1e-12, 100.0)] {
        let tag = api.get(&cfg).await.etag.unwrap();
        let a = api
            .call(
                Method::PUT,
                &cfg,
                Some(json!({"enabled": true, "fallthrough": {"rollout": [
                    {"variant": "on", "weight": weights.0},
                    {"variant": "off", "weight": weights.1}]}})),
                &[("if-match", &tag)],
            )
            .await;
        assert_eq!(a.status, 422, "{weights:?}: {}", a.body);
        assert!(
            paths(&a).iter().any(|p| p.ends_with("rollout[0].weight")),
            "{weights:?}: {}",
            a.body
        );
        // A schedule's percentages follow the same rule.
        let a = api
            .call(
                Method::PUT,
                &cfg,
                Some(json!({"enabled": true, "fallthrough": {"schedule": {
                    "variant": "on", "otherwise": "off",
                    "steps": [{"at": "2030-01-01T00:00:00Z", "percentage": weights.0}]}}})),
                &[("if-match", &tag)],
            )
            .await;
        assert_eq!(a.status, 422, "{weights:?}: {}", a.body);
        assert!(
            paths(&a)
                .iter()
                .any(|p| p.ends_with("schedule.steps[0].percentage")),
            "{weights:?}: {}",
            a.body
        );
    }
    // 0 and 0.001 are weights.
    let tag = api.get(&cfg).await.etag.unwrap();
    let a = api
        .call(
            Method::PUT,
            &cfg,
            Some(json!({"enabled": true, "fallthrough": {"rollout": [
                {"variant": "on", "weight": 0.001}, {"variant": "off", "weight": 99.999},
                {"variant": "on", "weight": 0}]}})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// The `Bearer` scheme is case-insensitive on `/events` as on the rest of
/// the API (one implementation).
async fn events_accept_any_case_of_bearer(store: Store) {
    let api = Api::start(Api::state(store));
    let send = |auth: String| {
        let r = api
            .0
            .anonymous()
            .request(Method::POST, "/events")
            .header("authorization", auth)
            .header("content-type", "application/json");
        let body = json!({"kind": "exposures", "exposures": []}).to_string();
        api.0.send(
            r.header("content-length", body.len())
                .body(Body::from(body))
                .unwrap(),
        )
    };
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = send(format!("{scheme} {INGEST}")).await;
        assert_eq!(r.status, 202, "{scheme}: {}", r.text);
        // The API's token check reads the same header the same way.
        let r = api
            .0
            .anonymous()
            .request(Method::GET, "/orgs")
            .header("authorization", format!("{scheme} {ROOT}"))
            .body(Body::empty())
            .unwrap();
        let r = api.0.send(r).await;
        assert_eq!(r.status, 200, "{scheme} on the API");
    }
    for auth in [
        format!("Basic {INGEST}"),
        format!("Bearer {INGEST}x"),
        "Bearer".into(),
        format!("Bearer{INGEST}"),
    ] {
        let r = send(auth.clone()).await;
        assert_eq!(r.status, 401, "{auth}");
    }
}

/// A client `X-Request-Id` is kept when it is 1-128 characters of
/// `A-Z a-z 0-9 - _ . : / + =`; anything else (8 KB, spaces, quotes) is
/// replaced by a generated id, which the response and the audit log carry.
async fn request_ids_are_bounded(store: Store) {
    let api = Api::start(Api::state(store));
    world(&api).await;
    let toggle = format!("{FLAGS}/checkout/environments/production/toggle");
    let kept = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let big = "x".repeat(8 * 1024);
    let limit = "y".repeat(128);
    let too_long = "y".repeat(129);
    let cases: [(&str, bool); 6] = [
        (kept, true),
        (&limit, true),
        (&big, false),
        (&too_long, false),
        ("has space", false),
        ("\"quoted\"", false),
    ];
    for (i, (sent, keep)) in cases.iter().enumerate() {
        let a = api
            .call(
                Method::POST,
                &toggle,
                Some(json!({"enabled": i % 2 == 0})),
                &[("x-request-id", sent)],
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let echoed = a.header("x-request-id").unwrap();
        if *keep {
            assert_eq!(&echoed, sent);
        } else {
            assert_ne!(&echoed, sent);
            assert_eq!(echoed.len(), 24, "{echoed}");
            assert!(echoed.bytes().all(|b| b.is_ascii_hexdigit()), "{echoed}");
        }
        let h = api.get(&format!("{FLAGS}/checkout/history")).await.body;
        let last = h["items"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["requestId"], echoed.as_str(), "{last}");
    }
    // No audit entry holds more than 128 bytes of request id.
    let audit = api.get("/orgs/acme/audit?limit=1000").await.body;
    for e in audit["items"].as_array().unwrap() {
        assert!(e["requestId"].as_str().is_none_or(|r| r.len() <= 128));
    }
}

/// Revoking a revoked API token or SDK key answers 200 with the record
/// unchanged and writes no second audit entry (revocation is idempotent).
async fn revoking_twice_changes_nothing(store: Store) {
    let api = Api::start(Api::state(store));
    world(&api).await;
    let token = api
        .made("/orgs/acme/tokens", json!({"name": "ci", "role": "viewer"}))
        .await;
    let path = format!("/orgs/acme/tokens/{}", token["id"]);
    let first = api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body["revokedAt"].is_string(), "{}", first.body);
    let second = api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body, first.body);
    let (actions, audit) = audit_actions(&api, "token", &token["id"]).await;
    assert_eq!(actions, ["create", "revoke"], "{audit}");

    let key = api
        .made(
            &format!("{ENV}/sdk-keys"),
            json!({"kind": "client", "name": "web"}),
        )
        .await;
    let path = format!("{ENV}/sdk-keys/{}", key["id"]);
    let first = api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let snapshot_version = api.get(ENV).await.body["snapshotVersion"].clone();
    let second = api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.body, first.body);
    assert_eq!(
        api.get(ENV).await.body["snapshotVersion"],
        snapshot_version,
        "nothing to publish"
    );
    let (actions, audit) = audit_actions(&api, "sdkKey", &key["id"]).await;
    assert_eq!(actions, ["create", "revoke"], "{audit}");
}

/// The actions of acme's audit entries about one entity, oldest first, and
/// the page they came from.
async fn audit_actions(api: &Api, entity_type: &str, id: &Value) -> (Vec<String>, Value) {
    let audit = api
        .get(&format!(
            "/orgs/acme/audit?entityType={entity_type}&entityId={id}"
        ))
        .await
        .body;
    let actions = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    (actions, audit)
}
