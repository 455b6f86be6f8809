//! People signing in: the OpenID Connect code flow against a real provider
//! (`tests/oidc/provider.mjs`, the `oidc-provider` package: real keys, real
//! signatures, PKCE required), sessions and their cookie, CSRF, sign-out,
//! idle and absolute lifetimes, refused ID tokens and replays, the one-time
//! bootstrap sign-in link, and a personal token of a signed-in person. The
//! origin is a real server on loopback, driven like a browser: redirects
//! followed by hand, cookies kept per host.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bunting_origin::api::session::AuthConfig;
use bunting_origin::api::{AppState, ServeConfig, router};
use bunting_origin::oidc::OidcConfig;
use bunting_origin::store::sessions::SessionLimits;
use bunting_origin::store::{Actor, Role, Scope, Store, Subject, TeamSpec};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::common::app::ROOT;
use crate::common::cli;

/// Whether the provider's packages are installed; outside CI a test
/// without them is skipped with the reason printed, in CI it fails.
fn provider_installed() -> bool {
    let installed = cli::root()
        .join("node_modules/oidc-provider/package.json")
        .exists();
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    if !installed {
        assert!(
            !ci,
            "node_modules/oidc-provider is missing: run `cargo xtask setup` (npm ci)"
        );
        eprintln!("skipped: node_modules/oidc-provider is missing (run `cargo xtask setup`)");
    }
    installed
}

/// The test provider, stopped on drop.
struct Idp {
    child: Child,
    issuer: String,
    /// Its standard output, kept open (a closed pipe would stop it).
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    /// Starts the provider for `redirect` with a user of `email` and
    /// `groups`.
    fn start(redirect: &str, email: &str, groups: &[&str]) -> Idp {
        let options = json!({"redirectUri": redirect, "email": email, "groups": groups});
        // Its log (Node's warnings, a crash) goes to a file of the target
        // directory, named after the origin it serves.
        let log = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "oidc-provider-{}.log",
            Url::parse(redirect).unwrap().port().unwrap()
        ));
        let mut child = Command::new("node")
            .arg("tests/oidc/provider.mjs")
            .arg(options.to_string())
            .current_dir(cli::root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let issuer = serde_json::from_str::<Value>(&line)
            .unwrap_or_else(|_| panic!("the provider printed {line:?}"))["issuer"]
            .as_str()
            .unwrap()
            .to_string();
        Idp {
            child,
            issuer,
            _stdout: stdout,
        }
    }

    /// Makes the token endpoint's next ID token bad (`mode`: signature,
    /// audience, nonce, expired).
    async fn tamper(&self, mode: &str) {
        let r = reqwest::Client::new()
            .post(format!("{}/_test/tamper", self.issuer))
            .body(json!({"mode": mode}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
}

/// An origin over loopback.
struct Origin {
    base: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A listener on a free loopback port, and its base URL.
async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    (l, base)
}

fn serve(store: &Store, l: tokio::net::TcpListener, base: &str, auth: AuthConfig) -> Origin {
    let state = AppState::new(
        store.clone(),
        ServeConfig {
            admin_token: Some(ROOT.into()),
            auth,
            ..ServeConfig::default()
        },
    );
    let server = tokio::spawn(async move {
        axum::serve(l, router(state)).await.unwrap();
    });
    Origin {
        base: base.into(),
        server,
    }
}

/// An origin using a fresh provider (client `client_id`) whose user is
/// `email` in `groups`.
async fn with_idp(
    store: &Store,
    client_id: &str,
    email: &str,
    groups: &[&str],
    sessions: SessionLimits,
) -> (Origin, Idp) {
    let (l, base) = listener().await;
    let redirect = format!("{base}/auth/callback");
    let idp = Idp::start(&redirect, email, groups);
    let mut oidc = OidcConfig::new(&idp.issuer, client_id, &redirect);
    oidc.client_secret = Some("bunting-secret".into());
    oidc.scopes = ["openid", "email", "profile", "groups"]
        .map(String::from)
        .to_vec();
    oidc.require_verified_email = true;
    let auth = AuthConfig {
        oidc: Some(oidc),
        sessions,
        public_url: Some(base.clone()),
        ..AuthConfig::default()
    };
    (serve(store, l, &base, auth), idp)
}

/// A browser: cookies per host, redirects followed by hand.
struct Browser {
    http: reqwest::Client,
    jar: HashMap<String, HashMap<String, String>>,
    /// The `Set-Cookie` lines seen, in order.
    set_cookies: Vec<String>,
}

/// A response, read whole.
struct Page {
    url: Url,
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Page {
    fn location(&self) -> Option<Url> {
        let l = self.headers.get(LOCATION)?.to_str().ok()?;
        self.url.join(l).ok()
    }
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jar: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn host(url: &Url) -> String {
        format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(80))
    }

    /// `method url` with this browser's cookies for the host and `headers`.
    async fn send(&mut self, method: Method, url: &str, headers: &[(&str, &str)]) -> Page {
        self.send_body(method, url, headers, None).await
    }

    /// `method url` with cookies, `headers` and a JSON `body`, if any.
    async fn send_body(
        &mut self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Page {
        let url = Url::parse(url).unwrap();
        let mut r = self.http.request(method, url.clone());
        if let Some(b) = body {
            r = r
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let cookies = self.jar.entry(Browser::host(&url)).or_default();
        if !cookies.is_empty() {
            let line: Vec<String> = cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
            r = r.header("cookie", line.join("; "));
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let response = r.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        for c in headers.get_all(SET_COOKIE) {
            let line = c.to_str().unwrap().to_string();
            let (pair, attrs) = line.split_once(';').unwrap_or((&line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || attrs.contains("Max-Age=0") {
                cookies.remove(name);
            } else {
                cookies.insert(name.into(), value.into());
            }
            self.set_cookies.push(line);
        }
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Page {
            url,
            status,
            headers,
            body,
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        self.send(Method::GET, url, &[]).await
    }

    /// Follows redirects from `url` until one leads to the origin's
    /// callback (`origin`/auth/callback): that URL, not opened.
    async fn until_callback(&mut self, origin: &Origin, url: &str) -> Url {
        let mut next = Url::parse(url).unwrap();
        for _ in 0..12 {
            if next
                .as_str()
                .starts_with(&format!("{}/auth/callback", origin.base))
            {
                return next;
            }
            let page = self.get(next.as_str()).await;
            next = page
                .location()
                .unwrap_or_else(|| panic!("{} answered {} {}", page.url, page.status, page.body));
        }
        panic!("no callback after 12 redirects");
    }

    /// The whole sign-in: `/auth/login`, the provider, the callback; the
    /// callback's answer.
    async fn sign_in(&mut self, origin: &Origin) -> Page {
        let callback = self
            .until_callback(origin, &format!("{}/auth/login", origin.base))
            .await;
        self.get(callback.as_str()).await
    }

    /// `method /api/v1{path}` with `headers` and JSON `body`.
    async fn api(
        &mut self,
        origin: &Origin,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Page {
        let url = format!("{}/api/v1{path}", origin.base);
        self.send_body(method, &url, headers, body).await
    }

    fn session(&self, origin: &Origin) -> Option<String> {
        let url = Url::parse(&origin.base).unwrap();
        self.jar
            .get(&Browser::host(&url))?
            .get("bunting_session")
            .cloned()
    }
}

/// `acme` with project `web` and a team `sre` mapped from the identity
/// provider's group `sre`, editor in the organization.
async fn acme(store: &Store) {
    let root = Actor::new("admin");
    let org = store.create_org(&root, "acme", "Acme").await.unwrap();
    let actor = root.in_org(org.id);
    store
        .create_project(&actor, org.id, "web", "Web")
        .await
        .unwrap();
    let team = TeamSpec {
        key: "sre".into(),
        name: "SRE".into(),
        idp_group: Some("sre".into()),
        members: vec![],
    };
    store.create_team(&actor, org.id, &team).await.unwrap();
    store
        .create_binding(
            &actor,
            org.id,
            &Subject::Team("sre".into()),
            Role::Editor.as_str(),
            Scope::Org { org: org.id },
        )
        .await
        .unwrap();
}

fn flag(key: &str) -> Value {
    json!({"key": key, "flagType": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off"})
}

/// The actor of the newest audit entry of `acme`.
async fn last_actor(origin: &Origin) -> String {
    let mut admin = Browser::new();
    let auth = format!("Bearer {ROOT}");
    let page = admin
        .api(
            origin,
            Method::GET,
            "/orgs/acme/audit",
            None,
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    let newest = items
        .iter()
        .max_by_key(|e| e["seq"].as_i64().unwrap())
        .unwrap();
    newest["actor"].as_str().unwrap().to_string()
}

async fn sign_in_session_csrf_personal_token_and_sign_out(store: Store) {
    if !provider_installed() {
        return;
    }
    acme(&store).await;
    let (origin, _idp) = with_idp(
        &store,
        "bunting",
        "Alice@Example.com",
        &["sre", "staff"],
        SessionLimits::default(),
    )
    .await;
    let mut browser = Browser::new();

    // Not signed in: 401 from the API.
    let page = browser.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(page.status, 401);

    // The code flow ends at `/` with a session cookie of the right kind.
    let done = browser.sign_in(&origin).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.headers[LOCATION], "/");
    let cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("bunting_session="))
        .expect("a session cookie")
        .clone();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(
            cookie.split("; ").any(|a| a == attr),
            "{attr} missing in {cookie}"
        );
    }
    let csrf_at_sign_in = done.headers["x-csrf-token"].to_str().unwrap().to_string();

    // Who am I: the person, the team's grant, the CSRF token.
    let me = browser.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["kind"], "user");
    assert_eq!(me.body["email"], "alice@example.com");
    assert_eq!(me.body["name"], "user:alice@example.com");
    assert_eq!(me.body["displayName"], "Alice Example");
    assert_eq!(me.body["isAdmin"], false);
    assert_eq!(me.body["session"], true);
    assert_eq!(me.body["csrfToken"], csrf_at_sign_in.as_str());
    let grants = me.body["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["org"], "acme");
    assert!(grants[0]["project"].is_null());
    let perms = grants[0]["permissions"].as_array().unwrap();
    assert!(perms.contains(&json!("flags.write")) && !perms.contains(&json!("tokens.manage")));

    // A cookie-authenticated write needs the CSRF token (and its own
    // Origin); the editor role from the team then allows it.
    let flags = "/orgs/acme/projects/web/flags";
    let no_csrf = browser
        .api(&origin, Method::POST, flags, Some(flag("a")), &[])
        .await;
    assert_eq!(no_csrf.status, 403);
    assert_eq!(no_csrf.body["error"]["code"], "csrf");
    assert!(
        no_csrf.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("X-CSRF-Token")
    );
    let wrong = browser
        .api(
            &origin,
            Method::POST,
            flags,
            Some(flag("a")),
            &[("x-csrf-token", "0000")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let csrf = csrf_at_sign_in.as_str();
    let cross_site = browser
        .api(
            &origin,
            Method::POST,
            flags,
            Some(flag("a")),
            &[("x-csrf-token", csrf), ("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross_site.status, 403);
    assert!(
        cross_site.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Origin")
    );
    let origin_header = origin.base.clone();
    let made = browser
        .api(
            &origin,
            Method::POST,
            flags,
            Some(flag("a")),
            &[("x-csrf-token", csrf), ("origin", &origin_header)],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(last_actor(&origin).await, "user:alice@example.com");
    // The team grants no project administration.
    let project = browser
        .api(
            &origin,
            Method::POST,
            "/orgs/acme/projects",
            Some(json!({"key": "api", "name": "API"})),
            &[("x-csrf-token", csrf)],
        )
        .await;
    assert_eq!(project.status, 403, "{}", project.body);

    // A personal token made in the session acts as the person, without
    // CSRF (bearer requests are not cookie-authenticated).
    let made = browser
        .api(
            &origin,
            Method::POST,
            "/orgs/acme/tokens",
            Some(json!({"name": "laptop", "kind": "personal"})),
            &[("x-csrf-token", csrf)],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    let secret = made.body["secret"].as_str().unwrap().to_string();
    let id = made.body["id"].as_i64().unwrap();
    let mut cli = Browser::new();
    let bearer = format!("Bearer {secret}");
    let me = cli
        .api(
            &origin,
            Method::GET,
            "/me",
            None,
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(
        me.body["name"],
        format!("user:alice@example.com via token:{id}")
    );
    assert_eq!(me.body["session"], false);
    assert!(me.body["csrfToken"].is_null());
    let made = cli
        .api(
            &origin,
            Method::POST,
            flags,
            Some(flag("b")),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(
        last_actor(&origin).await,
        format!("user:alice@example.com via token:{id}")
    );

    // Sign-out needs the CSRF token too, then ends the session.
    let session = browser.session(&origin).unwrap();
    let out = browser
        .send(Method::POST, &format!("{}/auth/logout", origin.base), &[])
        .await;
    assert_eq!(out.status, 403);
    let out = browser
        .send(
            Method::POST,
            &format!("{}/auth/logout", origin.base),
            &[("x-csrf-token", csrf)],
        )
        .await;
    assert_eq!(out.status, 204);
    assert!(browser.session(&origin).is_none(), "the cookie is removed");
    let mut stale = Browser::new();
    stale.jar.insert(
        Browser::host(&Url::parse(&origin.base).unwrap()),
        HashMap::from([("bunting_session".to_string(), session)]),
    );
    let me = stale.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(me.status, 401);
    assert!(
        me.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session has ended")
    );
}

async fn refused_id_tokens_and_replays(store: Store) {
    if !provider_installed() {
        return;
    }
    // An ES256 client signs in as well.
    let (origin, idp) = with_idp(
        &store,
        "bunting-es",
        "bob@example.com",
        &[],
        SessionLimits::default(),
    )
    .await;
    let mut browser = Browser::new();
    let done = browser.sign_in(&origin).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(browser.session(&origin).is_some());

    // Each bad ID token is refused, and no session is made.
    for (mode, says) in [
        ("signature", "signature"),
        ("audience", "not meant for this client"),
        ("nonce", "nonce"),
        ("expired", "expired"),
    ] {
        let mut browser = Browser::new();
        idp.tamper(mode).await;
        let page = browser.sign_in(&origin).await;
        assert_eq!(page.status, 401, "{mode}: {}", page.body);
        let message = page.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{mode}: {message}");
        assert!(
            browser.session(&origin).is_none(),
            "{mode}: a session was made"
        );
    }

    // A replayed callback (same state and code) is refused…
    let mut browser = Browser::new();
    let callback = browser
        .until_callback(&origin, &format!("{}/auth/login", origin.base))
        .await;
    assert_eq!(browser.get(callback.as_str()).await.status, 303);
    let again = browser.get(callback.as_str()).await;
    assert_eq!(again.status, 400, "{}", again.body);
    // …and so is its code under a fresh state of this browser.
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let login = browser
        .get(&format!("{}/auth/login", origin.base))
        .await
        .location()
        .unwrap();
    let state = login
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let mut replay = Url::parse(&format!("{}/auth/callback", origin.base)).unwrap();
    replay
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    let page = browser.get(replay.as_str()).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(
        page.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid_grant")
    );

    // A callback from a sign-in another browser started is refused.
    let mut victim = Browser::new();
    let mut attacker = Browser::new();
    let planted = attacker
        .until_callback(&origin, &format!("{}/auth/login", origin.base))
        .await;
    let page = victim.get(planted.as_str()).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(victim.session(&origin).is_none());
}

async fn sessions_end_when_idle_or_old(store: Store) {
    let (l, base) = listener().await;
    let limits = SessionLimits {
        idle: Duration::from_secs(2),
        absolute: Duration::from_secs(4),
    };
    let auth = AuthConfig {
        sessions: limits,
        ..AuthConfig::default()
    };
    let origin = serve(&store, l, &base, auth.clone());
    // Idle: unused for longer than the idle timeout.
    let mut idle = Browser::new();
    let token = store
        .create_sign_in_link("admin@localhost", Duration::from_secs(60))
        .await
        .unwrap();
    let page = idle
        .get(&format!("{}/auth/bootstrap?token={token}", origin.base))
        .await;
    assert_eq!(page.status, 303);
    assert_eq!(
        idle.api(&origin, Method::GET, "/me", None, &[])
            .await
            .status,
        200
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        idle.api(&origin, Method::GET, "/me", None, &[])
            .await
            .status,
        401
    );

    // Absolute: busy, yet over after its lifetime.
    let mut busy = Browser::new();
    let token = store
        .create_sign_in_link("admin@localhost", Duration::from_secs(60))
        .await
        .unwrap();
    let start = Instant::now();
    busy.get(&format!("{}/auth/bootstrap?token={token}", origin.base))
        .await;
    loop {
        let status = busy
            .api(&origin, Method::GET, "/me", None, &[])
            .await
            .status;
        let elapsed = start.elapsed();
        if status == 401 {
            assert!(
                elapsed >= Duration::from_millis(3900),
                "ended early, at {elapsed:?}"
            );
            break;
        }
        assert_eq!(status, 200);
        assert!(
            elapsed < Duration::from_secs(8),
            "still alive at {elapsed:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn bootstrap_link_signs_in_once(store: Store) {
    let (l, base) = listener().await;
    let origin = serve(&store, l, &base, AuthConfig::default());
    let link = bunting_origin::serve::sign_in_link(
        &store,
        &origin.base,
        "root@example.com",
        Duration::from_secs(900),
    )
    .await
    .unwrap();
    assert!(link.starts_with(&format!("{}/auth/bootstrap?token=", origin.base)));
    let mut browser = Browser::new();
    let page = browser.get(&link).await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.headers[LOCATION], "/");
    let me = browser.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(me.body["email"], "root@example.com");
    assert_eq!(me.body["isAdmin"], true);
    assert_eq!(me.body["name"], "user:root@example.com");
    // The administrator acts everywhere, audited as the person.
    let csrf = me.body["csrfToken"].as_str().unwrap().to_string();
    let made = browser
        .api(
            &origin,
            Method::POST,
            "/orgs",
            Some(json!({"key": "acme", "name": "Acme"})),
            &[("x-csrf-token", &csrf)],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.body);
    assert_eq!(last_actor(&origin).await, "user:root@example.com");

    // Once only, in any browser.
    let mut other = Browser::new();
    let page = other.get(&link).await;
    assert_eq!(page.status, 401);
    assert!(other.session(&origin).is_none());
    // An expired link does not work either, nor a made-up one.
    let expired = bunting_origin::serve::sign_in_link(
        &store,
        &origin.base,
        "root@example.com",
        Duration::from_millis(1),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(other.get(&expired).await.status, 401);
    let made_up = format!("{}/auth/bootstrap?token=bsil_00", origin.base);
    assert_eq!(other.get(&made_up).await.status, 401);
    // Without an identity provider, /auth/login says how to get in.
    let page = other.get(&format!("{}/auth/login", origin.base)).await;
    assert_eq!(page.status, 404);
    assert!(
        page.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-in link")
    );
}

both!(
    sign_in_session_csrf_personal_token_and_sign_out,
    refused_id_tokens_and_replays,
    sessions_end_when_idle_or_old,
    bootstrap_link_signs_in_once,
);

/// `bunting serve` prints a one-time sign-in link at start, and `bunting
/// sign-in-link` makes another for the same store.
#[tokio::test(flavor = "multi_thread")]
async fn serve_prints_a_sign_in_link_and_the_cli_makes_another() {
    let dir = cli::scratch("signin", "serve-link");
    // Relative to `dir`, as in the examples of docs/access.md.
    let db = "sqlite://bunting.db".to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = cli::bunting(&dir)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--database-url",
            &db,
        ])
        .args([
            "--bootstrap-email",
            "ops@example.com",
            "--monitor-seconds",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let _guard = Kill(child);
    let link = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.trim().starts_with("http").then(|| l.trim().to_string()))
    })
    .await
    .unwrap()
    .expect("a sign-in link on standard output");
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        link.starts_with(&format!("{base}/auth/bootstrap?token=")),
        "{link}"
    );
    let origin = Origin {
        base: base.clone(),
        server: tokio::spawn(async {}),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(format!("{base}/readyz")).await.is_err() {
        assert!(Instant::now() < deadline, "no /readyz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut browser = Browser::new();
    assert_eq!(browser.get(&link).await.status, 303);
    let me = browser.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(me.body["email"], "ops@example.com");
    assert_eq!(me.body["isAdmin"], true);
    assert_eq!(browser.get(&link).await.status, 401);

    // Another from the command line, for the running origin.
    let out = cli::bunting(&dir)
        .args(["sign-in-link", "--database-url", &db, "--public-url", &base])
        .args(["--email", "ops@example.com"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", cli::stderr(&out));
    let again = cli::stdout(&out).trim().to_string();
    assert_ne!(again, link);
    let mut other = Browser::new();
    assert_eq!(other.get(&again).await.status, 303);
    let me = other.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(me.body["email"], "ops@example.com");

    // The examples of docs/access.md: the shape of `GET /api/v1/me`, and
    // `bunting sign-in-link` run as written (its link then used here).
    let examples = docs_console_examples();
    let me_example = examples
        .iter()
        .find(|(command, _)| command.contains("/api/v1/me"))
        .expect("a /me example");
    let documented: Value = serde_json::from_str(&me_example.1).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&documented), keys(&me.body));
    assert_eq!(
        keys(&documented["grants"][0]),
        ["environment", "org", "permissions", "project"]
    );
    let (command, expected) = examples
        .iter()
        .find(|(command, _)| command.starts_with("bunting sign-in-link"))
        .expect("a sign-in-link example");
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = cli::bunting(&dir).args(&args).output().unwrap();
    assert!(out.status.success(), "{}", cli::stderr(&out));
    let printed = cli::stdout(&out).trim().to_string();
    let (head, tail) = expected.trim().split_once('…').unwrap();
    assert!(
        printed.starts_with(head) && printed.ends_with(tail),
        "{printed} is not {expected}"
    );
    let link = printed.replace("http://127.0.0.1:8080", &base);
    let mut third = Browser::new();
    assert_eq!(third.get(&link).await.status, 303);
    let me = third.api(&origin, Method::GET, "/me", None, &[]).await;
    assert_eq!(me.body["email"], "admin@localhost");
}

/// The `$ …` commands of the console blocks of docs/access.md's "People
/// and sessions" section, each with the output shown under it (lines
/// joined).
fn docs_console_examples() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(cli::root().join("docs/access.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("People and sessions\n"))
        .expect("a People and sessions section");
    let mut examples: Vec<(String, String)> = Vec::new();
    for block in section.split("```console\n").skip(1) {
        let block = block.split("\n```").next().unwrap();
        let mut command: Option<String> = None;
        for line in block.lines() {
            if let Some(c) = line.strip_prefix("$ ") {
                command = Some(c.to_string());
                examples.push((c.to_string(), String::new()));
            } else if command.is_some() {
                examples.last_mut().unwrap().1.push_str(line);
                examples.last_mut().unwrap().1.push('\n');
            }
        }
    }
    examples
}
