//! `bunting serve`: the origin service — the HTTP API on a store, the
//! publisher that pushes every committed change to the edge, the webhook
//! delivery loop ([`crate::webhooks`]), structured
//! logs, and graceful shutdown on SIGINT/SIGTERM.
//!
//! Configuration comes from command-line flags, then `BUNTING_*`
//! environment variables, then a TOML file (`--config`), then defaults; the
//! file uses the flags' names with underscores:
//!
//! ```toml
//! listen = "127.0.0.1:8080"
//! database_url = "postgres://bunting@db/bunting"
//! ingest_secret = "…"
//! publish_dir = "/var/lib/bunting/kv"
//! log_format = "json"
//! monitor_seconds = 60
//! ramp_lead_seconds = 60
//! ```
//!
//! ```
//! use bunting_origin::serve::ServeArgs;
//! let args: ServeArgs = toml::from_str("listen = \"127.0.0.1:9000\"").unwrap();
//! assert_eq!(args.listen.unwrap().port(), 9000);
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::api::{AppState, ServeConfig, router};
use crate::kv::Wrangler;
use crate::publish::{
    CloudflareKv, Directory, EdgePointer, PublishHandle, PublishOptions, Publisher, WranglerLocal,
};
use crate::store::{Actor, SdkKeyKind, Store};

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE: &str = "sqlite://bunting.db";

/// Options of `bunting serve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServeArgs {
    /// A TOML file with any of these options (flag names with underscores).
    #[arg(long, env = "BUNTING_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "BUNTING_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The database: `sqlite://FILE`, a file path, `sqlite::memory:` or
    /// `postgres://…` [default: sqlite://bunting.db].
    #[arg(long, env = "BUNTING_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    /// The bootstrap administrator token (creates organizations and their
    /// tokens). Without it, make tokens with `bunting token create
    /// --database-url`.
    #[arg(
        long,
        env = "BUNTING_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,
    /// The secret event producers (the edge's `INGEST_SECRET`) send to
    /// `POST /api/v1/events`; ingestion answers 503 without it.
    #[arg(
        long,
        env = "BUNTING_INGEST_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub ingest_secret: Option<String>,
    /// The bearer token a metrics scraper sends to `GET /metrics` (the
    /// administrator token works too; without either, `/metrics` answers
    /// 401: its labels name every tenant's environments).
    #[arg(
        long,
        env = "BUNTING_METRICS_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Log format: `text` or `json` [default: text]. Levels follow
    /// `RUST_LOG` (default `info`).
    #[arg(long, env = "BUNTING_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Publish snapshots and SDK keys as files into this directory (for
    /// wasmtime hosts).
    #[arg(long, env = "BUNTING_PUBLISH_DIR", value_name = "DIR")]
    pub publish_dir: Option<PathBuf>,
    /// Publish into the local KV of `wrangler dev` (through wrangler).
    #[arg(long, env = "BUNTING_PUBLISH_WRANGLER_LOCAL")]
    #[serde(default)]
    pub publish_wrangler_local: bool,
    /// The wrangler command [default: npx wrangler].
    #[arg(long, env = "BUNTING_WRANGLER", value_name = "CMD")]
    pub wrangler: Option<String>,
    /// wrangler's `--persist-to` directory (the one `wrangler dev` uses).
    #[arg(long, value_name = "DIR")]
    pub persist_to: Option<PathBuf>,
    /// wrangler's `--config` file.
    #[arg(long, value_name = "FILE")]
    pub wrangler_config: Option<PathBuf>,
    /// Cloudflare account id (KV REST publisher).
    #[arg(long, env = "CLOUDFLARE_ACCOUNT_ID", value_name = "ID")]
    pub cloudflare_account_id: Option<String>,
    /// Cloudflare KV namespace id (KV REST publisher).
    #[arg(long, env = "BUNTING_KV_NAMESPACE_ID", value_name = "ID")]
    pub cloudflare_namespace_id: Option<String>,
    /// Cloudflare API token with KV write permission.
    #[arg(
        long,
        env = "CLOUDFLARE_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub cloudflare_api_token: Option<String>,
    /// The Cloudflare API root [default: `https://api.cloudflare.com/client/v4`]
    /// (a KV REST fake in tests).
    #[arg(long, env = "BUNTING_CLOUDFLARE_API_URL", value_name = "URL")]
    pub cloudflare_api_url: Option<String>,
    /// The edge worker's URL: each published snapshot is also sent to its
    /// environment's pointer there (`POST /edge/v1/snapshot`), which makes
    /// the change visible at the edge within about a second.
    #[arg(long, env = "BUNTING_EDGE_URL", value_name = "URL")]
    pub edge_url: Option<String>,
    /// The worker's `POINTER_SECRET` (with --edge-url).
    #[arg(
        long,
        env = "BUNTING_EDGE_POINTER_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub edge_pointer_secret: Option<String>,
    /// POST rollbacks and other notifications as JSON to this URL
    /// (repeatable).
    #[arg(long = "webhook-url", value_name = "URL")]
    #[serde(default)]
    pub webhook_urls: Vec<String>,
    /// Seconds between two rounds of the guardrail monitor (automatic
    /// rollback of running experiments) [default: 60]; 0 turns it off.
    #[arg(long, env = "BUNTING_MONITOR_SECONDS", value_name = "SECONDS")]
    pub monitor_seconds: Option<f64>,
    /// Seconds between two refreshes of every running experiment's
    /// results (PostgreSQL only; `crate::refresh`): opening the results
    /// then costs the events since the last refresh, not every user
    /// [default: 60]; 0 turns it off.
    #[arg(long, env = "BUNTING_RESULTS_REFRESH_SECONDS", value_name = "SECONDS")]
    pub results_refresh_seconds: Option<f64>,
    /// Seconds between two looks for scheduled change requests that are
    /// due [default: 5]; 0 turns it off.
    #[arg(long, env = "BUNTING_SCHEDULE_SECONDS", value_name = "SECONDS")]
    pub schedule_seconds: Option<f64>,
    /// Publication margin of the ramp holds of guarded rollouts
    /// (`MonitorOptions::ramp_lead`): a gated ramp's next step is held
    /// when it is due before the next monitor round plus this lead, and
    /// moves to one lead beyond [default: 60, Cloudflare KV's propagation
    /// bound]. At least 0.
    #[arg(long, env = "BUNTING_RAMP_LEAD_SECONDS", value_name = "SECONDS")]
    pub ramp_lead_seconds: Option<f64>,
    /// Seconds between publisher polls [default: 1].
    #[arg(long, value_name = "SECONDS")]
    pub publish_poll_seconds: Option<f64>,
    /// The form of the `snapshot:<env>` values published to every target
    /// [default: packed]: the packed binary form, with the JSON text
    /// inside, which the edge loads about twice as fast for a new
    /// version's first request; `json` puts the JSON text itself, for
    /// readers that predate packed values (an edge worker or server SDK
    /// from before them refuses packed values and keeps its last
    /// snapshot; a current edge worker reads `json` only when built with
    /// its `json-snapshots` feature). The edge pointer gets the same value
    /// (the JSON text if its worker predates packed pointer values).
    #[arg(long, env = "BUNTING_KV_FORMAT", value_name = "FORMAT", value_enum)]
    pub kv_format: Option<crate::publish::KvFormat>,
    /// Seconds to let requests and the publisher finish on shutdown
    /// [default: 10].
    #[arg(long, value_name = "SECONDS")]
    pub shutdown_seconds: Option<u64>,
    /// Demo/bootstrap: import this definition file into `--seed-org` /
    /// `--seed-project` (created if missing) at start.
    #[arg(long, value_name = "FILE")]
    pub seed: Option<PathBuf>,
    /// Organization key of `--seed` [default: demo].
    #[arg(long, value_name = "KEY")]
    pub seed_org: Option<String>,
    /// Project key of `--seed` [default: demo].
    #[arg(long, value_name = "KEY")]
    pub seed_project: Option<String>,
    /// Demo/bootstrap: register this raw SDK key (client) for the seeded
    /// environment `--seed-env`, unless it is registered already.
    #[arg(long, value_name = "KEY", hide_env_values = true)]
    pub seed_sdk_key: Option<String>,
    /// The environment of `--seed-sdk-key` [default: production].
    #[arg(long, value_name = "KEY")]
    pub seed_env: Option<String>,
    /// The origin's public URL, as browsers reach it
    /// (`https://flags.example.com`) [default: http://LISTEN]: the address
    /// of sign-in links and of the OpenID Connect redirect, and the only
    /// `Origin` a signed-in browser may write from.
    #[arg(long, env = "BUNTING_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,
    /// OpenID Connect: the identity provider's issuer URL (discovery at
    /// `ISSUER/.well-known/openid-configuration`). With
    /// `--oidc-client-id`, people sign in at `/auth/login`.
    #[arg(long, env = "BUNTING_OIDC_ISSUER", value_name = "URL")]
    pub oidc_issuer: Option<String>,
    /// OpenID Connect: the client id registered at the provider.
    #[arg(long, env = "BUNTING_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// OpenID Connect: the client secret (none for a public client).
    #[arg(
        long,
        env = "BUNTING_OIDC_CLIENT_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// OpenID Connect: the redirect URL registered at the provider
    /// [default: PUBLIC_URL/auth/callback].
    #[arg(long, env = "BUNTING_OIDC_REDIRECT_URL", value_name = "URL")]
    pub oidc_redirect_url: Option<String>,
    /// OpenID Connect: the scopes asked for, space-separated
    /// [default: "openid email profile"]; some providers need `groups`.
    #[arg(long, env = "BUNTING_OIDC_SCOPES", value_name = "SCOPES")]
    pub oidc_scopes: Option<String>,
    /// OpenID Connect: the ID-token claim holding the e-mail
    /// [default: email] (`upn` or `preferred_username` for some Azure AD
    /// setups).
    #[arg(long, env = "BUNTING_OIDC_EMAIL_CLAIM", value_name = "CLAIM")]
    pub oidc_email_claim: Option<String>,
    /// OpenID Connect: the ID-token claim holding the groups teams map
    /// from [default: groups]; a dotted path reaches into objects
    /// (`realm_access.roles`).
    #[arg(long, env = "BUNTING_OIDC_GROUPS_CLAIM", value_name = "CLAIM")]
    pub oidc_groups_claim: Option<String>,
    /// OpenID Connect: refuse a sign-in whose `email_verified` claim is not
    /// true.
    #[arg(long, env = "BUNTING_OIDC_REQUIRE_VERIFIED_EMAIL")]
    #[serde(default)]
    pub oidc_require_verified_email: bool,
    /// A browser session unused for this long ends [default: 28800, 8 h].
    #[arg(long, env = "BUNTING_SESSION_IDLE_SECONDS", value_name = "SECONDS")]
    pub session_idle_seconds: Option<f64>,
    /// A browser session ends this long after sign-in [default: 604800,
    /// 7 days].
    #[arg(long, env = "BUNTING_SESSION_LIFETIME_SECONDS", value_name = "SECONDS")]
    pub session_lifetime_seconds: Option<f64>,
    /// The e-mail of the administrator the one-time sign-in link signs in
    /// (default: `admin@localhost`).
    #[arg(long, env = "BUNTING_BOOTSTRAP_EMAIL", value_name = "EMAIL")]
    pub bootstrap_email: Option<String>,
    /// How long the sign-in link printed at start works [default: 900];
    /// 0 prints none.
    #[arg(long, env = "BUNTING_SIGN_IN_LINK_SECONDS", value_name = "SECONDS")]
    pub sign_in_link_seconds: Option<f64>,
    /// Serve the web console from this directory (a `console/dist` build,
    /// read at each request) instead of the copy embedded in the binary:
    /// for console development, where a rebuilt console needs no Rust
    /// rebuild.
    #[arg(long, env = "BUNTING_CONSOLE_DIR", value_name = "DIR")]
    pub console_dir: Option<PathBuf>,
}

impl ServeArgs {
    /// These options, with unset ones taken from the `--config` file: an
    /// option given on the command line or in the environment wins; a flag
    /// (`publish_wrangler_local`) is on if either turns it on; a list
    /// (`webhook_urls`) comes whole from one side.
    ///
    /// ```
    /// use bunting_origin::serve::ServeArgs;
    /// let dir = std::env::temp_dir().join(format!("bunting-resolve-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let file = dir.join("serve.toml");
    /// std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nlog_format = \"json\"\npublish_wrangler_local = true").unwrap();
    /// let cli = ServeArgs { config: Some(file), log_format: Some("text".into()), ..Default::default() };
    /// let args = cli.resolve().unwrap();
    /// assert_eq!(args.listen.unwrap().port(), 9000);
    /// assert_eq!(args.log_format.as_deref(), Some("text"));
    /// assert!(args.publish_wrangler_local);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn resolve(self) -> Result<ServeArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading the configuration {}", path.display()))?;
        let file: ServeArgs = toml::from_str(&text)
            .with_context(|| format!("in the configuration {}", path.display()))?;
        // Field by field through serde, so a new option needs no edit here:
        // the options that are set (not null, not false, not an empty list)
        // override the file's.
        let (serde_json::Value::Object(mut merged), serde_json::Value::Object(given)) =
            (serde_json::to_value(&file)?, serde_json::to_value(&self)?)
        else {
            anyhow::bail!("serve options are not a JSON object");
        };
        for (name, value) in given {
            let unset = match &value {
                serde_json::Value::Null | serde_json::Value::Bool(false) => true,
                serde_json::Value::Array(items) => items.is_empty(),
                _ => false,
            };
            if !unset {
                merged.insert(name, value);
            }
        }
        let mut resolved: ServeArgs = serde_json::from_value(merged.into())?;
        resolved.config = self.config;
        Ok(resolved)
    }
}

impl ServeArgs {
    /// The guardrail monitor's options from `--monitor-seconds` (default
    /// 60; 0 or less: `None`, no monitor) and `--ramp-lead-seconds`
    /// (default 60); an error for a lead that is negative or not finite.
    ///
    /// ```
    /// use bunting_origin::serve::ServeArgs;
    /// let args: ServeArgs = toml::from_str("monitor_seconds = 30\nramp_lead_seconds = 5").unwrap();
    /// let o = args.monitor_options().unwrap().unwrap();
    /// assert_eq!((o.interval.as_secs(), o.ramp_lead.as_secs()), (30, 5));
    /// let off: ServeArgs = toml::from_str("monitor_seconds = 0").unwrap();
    /// assert!(off.monitor_options().unwrap().is_none());
    /// let bad: ServeArgs = toml::from_str("ramp_lead_seconds = -1").unwrap();
    /// assert!(bad.monitor_options().is_err());
    /// ```
    pub fn monitor_options(&self) -> Result<Option<crate::monitor::MonitorOptions>> {
        let defaults = crate::monitor::MonitorOptions::default();
        let ramp_lead = match self.ramp_lead_seconds {
            None => defaults.ramp_lead,
            Some(s) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
            Some(s) => anyhow::bail!("--ramp-lead-seconds must be a number ≥ 0, got {s}"),
        };
        let interval = self.monitor_seconds.unwrap_or(60.0);
        Ok((interval > 0.0).then(|| crate::monitor::MonitorOptions {
            interval: Duration::from_secs_f64(interval.max(0.05)),
            ramp_lead,
            ..defaults
        }))
    }
}

impl ServeArgs {
    /// How often running experiments' results are refreshed
    /// (`--results-refresh-seconds`, default 60 s; 0: `None`, never); an
    /// error for a value that is negative or not finite.
    ///
    /// ```
    /// use bunting_origin::serve::ServeArgs;
    /// let args: ServeArgs = toml::from_str("results_refresh_seconds = 30").unwrap();
    /// assert_eq!(args.results_refresh().unwrap().unwrap().as_secs(), 30);
    /// assert_eq!(ServeArgs::default().results_refresh().unwrap().unwrap().as_secs(), 60);
    /// let off: ServeArgs = toml::from_str("results_refresh_seconds = 0").unwrap();
    /// assert!(off.results_refresh().unwrap().is_none());
    /// let bad: ServeArgs = toml::from_str("results_refresh_seconds = -1").unwrap();
    /// assert!(bad.results_refresh().is_err());
    /// ```
    pub fn results_refresh(&self) -> Result<Option<Duration>> {
        let every = seconds(
            self.results_refresh_seconds,
            Duration::from_secs(60),
            "results-refresh-seconds",
            true,
        )?;
        Ok((!every.is_zero()).then(|| every.max(Duration::from_millis(50))))
    }
}

/// Seconds as a duration: `default` when unset; an error naming `flag`
/// for a value that is not a finite number above 0 (or at least 0 with
/// `zero_ok`).
fn seconds(value: Option<f64>, default: Duration, flag: &str, zero_ok: bool) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(s) if s.is_finite() && (s > 0.0 || (zero_ok && s == 0.0)) => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => anyhow::bail!(
            "--{flag} must be a number {} 0, got {s}",
            if zero_ok { "≥" } else { ">" }
        ),
    }
}

impl ServeArgs {
    /// Where the console comes from: `--console-dir` (which must be a
    /// directory), else the embedded copy.
    ///
    /// ```
    /// use bunting_origin::console::ConsoleSource;
    /// use bunting_origin::serve::ServeArgs;
    /// assert_eq!(ServeArgs::default().console_source().unwrap(), ConsoleSource::Embedded);
    /// let args: ServeArgs = toml::from_str("console_dir = \"/no/such/dir\"").unwrap();
    /// assert!(args.console_source().is_err());
    /// ```
    pub fn console_source(&self) -> Result<crate::console::ConsoleSource> {
        use crate::console::ConsoleSource;
        match &self.console_dir {
            None => Ok(ConsoleSource::Embedded),
            Some(dir) if dir.is_dir() => Ok(ConsoleSource::Dir(dir.clone())),
            Some(dir) => anyhow::bail!(
                "--console-dir {} is not a directory (build the console with \
                 `cargo xtask console`: console/dist)",
                dir.display()
            ),
        }
    }

    /// The public URL: `--public-url` (without a trailing `/`), else
    /// `http://` and the listening address (`localhost` for an
    /// unspecified one).
    ///
    /// ```
    /// use bunting_origin::serve::ServeArgs;
    /// let args = ServeArgs::default();
    /// assert_eq!(args.public_url("0.0.0.0:8080".parse().unwrap()), "http://localhost:8080");
    /// assert_eq!(args.public_url("127.0.0.1:9000".parse().unwrap()), "http://127.0.0.1:9000");
    /// let args: ServeArgs = toml::from_str("public_url = \"https://flags.example.com/\"").unwrap();
    /// assert_eq!(args.public_url("0.0.0.0:8080".parse().unwrap()), "https://flags.example.com");
    /// ```
    pub fn public_url(&self, listen: SocketAddr) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None if listen.ip().is_unspecified() => format!("http://localhost:{}", listen.port()),
            None => format!("http://{listen}"),
        }
    }

    /// How people sign in, from the `--oidc-*`, `--session-*`,
    /// `--bootstrap-email` and `--sign-in-link-seconds` options; `listen`
    /// is the address the server listens on (for the default public URL).
    ///
    /// ```
    /// use bunting_origin::serve::ServeArgs;
    /// let args: ServeArgs = toml::from_str(r#"
    /// oidc_issuer = "https://id.example.com"
    /// oidc_client_id = "bunting"
    /// oidc_scopes = "openid email groups"
    /// session_idle_seconds = 600
    /// "#).unwrap();
    /// let auth = args.auth_config("127.0.0.1:8080".parse().unwrap()).unwrap();
    /// let oidc = auth.oidc.unwrap();
    /// assert_eq!(oidc.redirect_url, "http://127.0.0.1:8080/auth/callback");
    /// assert_eq!(oidc.scopes, ["openid", "email", "groups"]);
    /// assert_eq!(auth.sessions.idle.as_secs(), 600);
    /// let half: ServeArgs = toml::from_str("oidc_issuer = \"https://id.example.com\"").unwrap();
    /// assert!(half.auth_config("127.0.0.1:8080".parse().unwrap()).is_err());
    /// ```
    pub fn auth_config(&self, listen: SocketAddr) -> Result<crate::api::session::AuthConfig> {
        use crate::api::session::AuthConfig;
        use crate::oidc::OidcConfig;
        let defaults = AuthConfig::default();
        let public = self.public_url(listen);
        reqwest::Url::parse(&public)
            .with_context(|| format!("--public-url {public:?} is not a URL"))?;
        let oidc = match (&self.oidc_issuer, &self.oidc_client_id) {
            (None, None) => None,
            (Some(issuer), Some(client)) => {
                let redirect = self
                    .oidc_redirect_url
                    .clone()
                    .unwrap_or_else(|| format!("{public}/auth/callback"));
                let mut c = OidcConfig::new(issuer, client, &redirect);
                c.client_secret = self.oidc_client_secret.clone();
                if let Some(scopes) = &self.oidc_scopes {
                    c.scopes = scopes.split_whitespace().map(str::to_string).collect();
                }
                if let Some(claim) = &self.oidc_email_claim {
                    c.email_claim = claim.clone();
                }
                if let Some(claim) = &self.oidc_groups_claim {
                    c.groups_claim = claim.clone();
                }
                c.require_verified_email = self.oidc_require_verified_email;
                Some(c)
            }
            _ => anyhow::bail!(
                "OpenID Connect needs both --oidc-issuer (BUNTING_OIDC_ISSUER) and \
                 --oidc-client-id (BUNTING_OIDC_CLIENT_ID)"
            ),
        };
        let sessions = crate::store::sessions::SessionLimits {
            idle: seconds(
                self.session_idle_seconds,
                defaults.sessions.idle,
                "session-idle-seconds",
                false,
            )?,
            absolute: seconds(
                self.session_lifetime_seconds,
                defaults.sessions.absolute,
                "session-lifetime-seconds",
                false,
            )?,
        };
        Ok(AuthConfig {
            oidc,
            sessions,
            public_url: self.public_url.as_ref().map(|_| public),
            bootstrap_email: self
                .bootstrap_email
                .clone()
                .unwrap_or(defaults.bootstrap_email),
            sign_in_link_ttl: seconds(
                self.sign_in_link_seconds,
                defaults.sign_in_link_ttl,
                "sign-in-link-seconds",
                true,
            )?,
            login_ttl: defaults.login_ttl,
        })
    }
}

/// Makes a one-time sign-in link for the administrator `email` valid for
/// `ttl`, at `public_url` (`{public_url}/auth/bootstrap?token=…`).
pub async fn sign_in_link(
    store: &Store,
    public_url: &str,
    email: &str,
    ttl: Duration,
) -> Result<String> {
    let token = store.create_sign_in_link(email, ttl).await?;
    Ok(format!(
        "{}/auth/bootstrap?token={token}",
        public_url.trim_end_matches('/')
    ))
}

/// Sets up `tracing` output (text or JSON lines on stderr).
pub fn init_logging(format: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == Some("json") {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Imports `args.seed` (if any) and registers `args.seed_sdk_key`.
async fn seed(store: &Store, args: &ServeArgs) -> Result<()> {
    let Some(file) = &args.seed else {
        return Ok(());
    };
    let org_key = args.seed_org.as_deref().unwrap_or("demo");
    let project_key = args.seed_project.as_deref().unwrap_or("demo");
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the seed file {}", file.display()))?;
    let syntax = match file.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("json") => bunting_defs::Syntax::Json,
        _ => bunting_defs::Syntax::Yaml,
    };
    let name = file.display().to_string();
    let defs = bunting_defs::load(&text, syntax).map_err(|d| {
        anyhow::anyhow!(
            "the seed file has problems:\n{}",
            d.iter()
                .map(|d| d.render(&name))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let root = Actor::new("seed");
    let org = match store.org_by_key(org_key).await {
        Ok(o) => o,
        Err(_) => store.create_org(&root, org_key, org_key).await?,
    };
    let actor = root.in_org(org.id);
    let project = match store.project_by_key(org.id, project_key).await {
        Ok(p) => p,
        Err(_) => {
            store
                .create_project(&actor, org.id, project_key, project_key)
                .await?
        }
    };
    let summary = store.import(&actor, project.id, &defs).await?;
    tracing::info!(?summary, org = org_key, project = project_key, "seeded");
    if let Some(raw) = &args.seed_sdk_key {
        let env_key = args.seed_env.as_deref().unwrap_or("production");
        let env = store
            .environment_by_key(project.id, env_key)
            .await
            .with_context(|| {
                format!("the seed has no environment {env_key:?} for --seed-sdk-key")
            })?;
        match store
            .register_sdk_key(&actor, env.id, SdkKeyKind::Client, "seed", raw)
            .await
        {
            Ok(_) | Err(crate::store::StoreError::Duplicate { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Runs the origin until SIGINT/SIGTERM.
pub async fn run(args: ServeArgs) -> Result<()> {
    let args = args.resolve()?;
    init_logging(args.log_format.as_deref());
    let listen = args
        .listen
        .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid"));
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    serve(args, listener, shutdown_signal()).await
}

/// Serves on `listener` until `shutdown` resolves, then drains requests and
/// the publisher for at most `shutdown_seconds`.
pub async fn serve(
    args: ServeArgs,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let monitor_options = args.monitor_options()?;
    let results_refresh = args.results_refresh()?;
    let url = args
        .database_url
        .clone()
        .unwrap_or_else(|| DEFAULT_DATABASE.into());
    let store = Store::open(&url)
        .await
        .with_context(|| format!("opening the database {}", redact(&url)))?;
    seed(&store, &args).await?;
    let addr = listener.local_addr()?;
    let auth = args.auth_config(addr)?;
    let console = args.console_source()?;
    if !auth.sign_in_link_ttl.is_zero() {
        let public = args.public_url(addr);
        let link = sign_in_link(
            &store,
            &public,
            &auth.bootstrap_email,
            auth.sign_in_link_ttl,
        )
        .await?;
        // On standard output, not in the log: the link is a credential.
        println!(
            "Sign in as the administrator {} (once, within {} minutes):\n    {link}",
            auth.bootstrap_email,
            auth.sign_in_link_ttl.as_secs().div_ceil(60)
        );
        tracing::info!(
            email = %auth.bootstrap_email,
            "a one-time sign-in link was printed on standard output (`bunting sign-in-link` makes another)"
        );
    }
    if let Some(oidc) = &auth.oidc {
        tracing::info!(issuer = %oidc.issuer, client_id = %oidc.client_id, "OpenID Connect sign-in at /auth/login");
    }
    let state = AppState::new(
        store.clone(),
        ServeConfig {
            admin_token: args.admin_token.clone(),
            ingest_secret: args.ingest_secret.clone(),
            metrics_token: args.metrics_token.clone(),
            auth,
            console,
        },
    );
    let publisher = start_publisher(&args, &state)?;
    let mut state = state;
    state.notifier = crate::notify::Notifier::new(args.webhook_urls.clone());
    state.publish = publisher.clone();
    tracing::info!(%addr, database = %redact(&url), backend = ?store.backend(), "bunting origin listening");
    let grace = Duration::from_secs(args.shutdown_seconds.unwrap_or(10));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, router(state.clone())).with_graceful_shutdown({
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    });
    let server = tokio::spawn(async move { server.await });
    let monitor = monitor_options.map(|o| crate::monitor::spawn(monitor_services(&state), o));
    let purge = crate::retention::spawn(store.clone(), Duration::from_secs(60));
    // Only PostgreSQL keeps incremental state: on SQLite every look
    // aggregates in full, and refreshing would just repeat it.
    let refresh = results_refresh
        .filter(|_| store.backend() == crate::store::Backend::Postgres)
        .map(|every| crate::refresh::spawn(store.clone(), every));
    let deliveries = crate::webhooks::spawn(
        store.clone(),
        state.metrics.clone(),
        crate::webhooks::DeliveryOptions::default(),
    );
    let schedule = args.schedule_seconds.unwrap_or(5.0);
    let schedule = (schedule > 0.0).then(|| {
        crate::schedule::spawn(
            store.clone(),
            state.publish_wakeup.clone(),
            Duration::from_secs_f64(schedule.max(0.05)),
        )
    });
    shutdown.await;
    tracing::info!("shutting down: draining requests");
    if let Some(m) = monitor {
        m.abort();
    }
    purge.abort();
    if let Some(r) = refresh {
        r.abort();
    }
    if let Some(s) = schedule {
        s.abort();
    }
    let _ = stop_tx.send(true);
    match tokio::time::timeout(grace, server).await {
        Ok(r) => r??,
        Err(_) => tracing::warn!("requests still running after the grace period; stopping"),
    }
    if let Some(p) = publisher {
        let _ = tokio::time::timeout(grace, p.shutdown()).await;
    }
    let _ = tokio::time::timeout(grace, deliveries.shutdown()).await;
    store.pool().close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The publishers the options ask for, and the loop over them (none when
/// no publisher is configured: changes then wait in the outbox).
fn start_publisher(args: &ServeArgs, state: &AppState) -> Result<Option<PublishHandle>> {
    let mut publishers: Vec<Arc<dyn Publisher>> = Vec::new();
    if let Some(dir) = &args.publish_dir {
        publishers.push(Arc::new(Directory::new(dir.clone())));
    }
    if args.publish_wrangler_local {
        let wrangler = Wrangler::from_command_line(
            args.wrangler
                .as_deref()
                .unwrap_or(crate::kv::DEFAULT_WRANGLER),
        )?;
        publishers.push(Arc::new(WranglerLocal::new(
            wrangler,
            args.persist_to.clone(),
            args.wrangler_config.clone(),
        )));
    }
    match (
        &args.cloudflare_account_id,
        &args.cloudflare_namespace_id,
        &args.cloudflare_api_token,
    ) {
        (Some(a), Some(n), Some(t)) => {
            let mut kv = CloudflareKv::new(a, n, t);
            if let Some(url) = &args.cloudflare_api_url {
                kv = kv.with_base_url(url);
            }
            publishers.push(Arc::new(kv));
        }
        (None, None, _) => {}
        _ => anyhow::bail!(
            "the Cloudflare KV publisher needs --cloudflare-account-id, --cloudflare-namespace-id and \
             --cloudflare-api-token (CLOUDFLARE_API_TOKEN)"
        ),
    }
    match (&args.edge_url, &args.edge_pointer_secret) {
        (Some(url), Some(secret)) if !secret.is_empty() => {
            // First: the loop publishes to its targets in turn, and the
            // pointer is the fast path to the edge (a KV publisher such as
            // wrangler can take seconds per key).
            publishers.insert(0, Arc::new(EdgePointer::new(url, secret)));
        }
        (None, None) => {}
        _ => anyhow::bail!(
            "the edge pointer publisher needs --edge-url and a non-empty --edge-pointer-secret \
             (BUNTING_EDGE_POINTER_SECRET)"
        ),
    }
    if publishers.is_empty() {
        tracing::warn!(
            "no publisher configured (--publish-dir, --publish-wrangler-local, --cloudflare-*): \
             changes are kept for later publication"
        );
        return Ok(None);
    }
    let mut options = PublishOptions {
        wakeup: state.publish_wakeup.clone(),
        kv_format: args.kv_format.unwrap_or_default(),
        ..PublishOptions::default()
    };
    if let Some(s) = args.publish_poll_seconds {
        options.poll_interval = Duration::from_secs_f64(s.max(0.01));
    }
    Ok(Some(crate::publish::spawn(
        state.store.clone(),
        publishers,
        state.metrics.clone(),
        options,
    )))
}

/// What the guardrail monitor gets of the service: its store, its webhook
/// notifier and the publisher's wake-up (the monitor knows nothing of the
/// HTTP layer).
pub fn monitor_services(state: &AppState) -> crate::monitor::Services {
    crate::monitor::Services {
        store: state.store.clone(),
        notifier: state.notifier.clone(),
        publish_wakeup: state.publish_wakeup.clone(),
    }
}

/// The URL without its password, for logs and error messages.
///
/// ```
/// use bunting_origin::serve::redact;
/// assert_eq!(redact("postgres://app:s3cr@t@db:5432/flags"), "postgres://app:***@db:5432/flags");
/// assert_eq!(redact("sqlite://bunting.db"), "sqlite://bunting.db");
/// ```
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn config_file(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "bunting-serve-{}-{:?}.toml",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn ramp_lead_flag_overrides_the_file_which_overrides_the_default() {
        let file = config_file("monitor_seconds = 2\nramp_lead_seconds = 7.5\n");
        let config = format!("--config={}", file.display());

        // The flag wins over the file.
        let cli = Cli::try_parse_from(["serve", &config, "--ramp-lead-seconds", "1.5"]).unwrap();
        let args = cli.serve.resolve().unwrap();
        assert_eq!(args.ramp_lead_seconds, Some(1.5));
        let o = args.monitor_options().unwrap().unwrap();
        assert_eq!(o.ramp_lead, Duration::from_millis(1500));
        assert_eq!(o.interval, Duration::from_secs(2));

        // Without the flag, the file's value.
        let cli = Cli::try_parse_from(["serve", &config]).unwrap();
        let o = cli.serve.resolve().unwrap().monitor_options().unwrap();
        assert_eq!(o.unwrap().ramp_lead, Duration::from_millis(7500));
        std::fs::remove_file(&file).unwrap();

        // Neither: the monitor's default (60 s).
        let cli = Cli::try_parse_from(["serve"]).unwrap();
        let o = cli.serve.monitor_options().unwrap().unwrap();
        assert_eq!(o.ramp_lead, Duration::from_secs(60));
        assert_eq!(o.interval, Duration::from_secs(60));

        // Not a number, or negative: refused.
        assert!(Cli::try_parse_from(["serve", "--ramp-lead-seconds", "soon"]).is_err());
        let cli = Cli::try_parse_from(["serve", "--ramp-lead-seconds=-1"]).unwrap();
        let err = cli.serve.monitor_options().unwrap_err().to_string();
        assert!(err.contains("--ramp-lead-seconds"), "{err}");
    }

    #[test]
    fn kv_format_from_flag_environment_or_file_default_packed() {
        use crate::publish::KvFormat;
        // Unset: packed.
        let cli = Cli::try_parse_from(["serve"]).unwrap();
        assert_eq!(cli.serve.kv_format, None);
        assert_eq!(cli.serve.kv_format.unwrap_or_default(), KvFormat::Packed);
        // The flag.
        let cli = Cli::try_parse_from(["serve", "--kv-format", "packed"]).unwrap();
        assert_eq!(cli.serve.kv_format, Some(KvFormat::Packed));
        let cli = Cli::try_parse_from(["serve", "--kv-format", "json"]).unwrap();
        assert_eq!(cli.serve.kv_format, Some(KvFormat::Json));
        assert!(Cli::try_parse_from(["serve", "--kv-format", "binary"]).is_err());
        // The file, and the flag over the file.
        let file = config_file("kv_format = \"packed\"\n");
        let config = format!("--config={}", file.display());
        let cli = Cli::try_parse_from(["serve", &config]).unwrap();
        assert_eq!(
            cli.serve.resolve().unwrap().kv_format,
            Some(KvFormat::Packed)
        );
        let cli = Cli::try_parse_from(["serve", &config, "--kv-format", "json"]).unwrap();
        assert_eq!(cli.serve.resolve().unwrap().kv_format, Some(KvFormat::Json));
        std::fs::remove_file(&file).unwrap();
        assert!(toml::from_str::<ServeArgs>("kv_format = \"binary\"").is_err());
        // Version 1 of the packed form, for workers from before version 2.
        let cli = Cli::try_parse_from(["serve", "--kv-format", "packed-v1"]).unwrap();
        assert_eq!(cli.serve.kv_format, Some(KvFormat::PackedV1));
        let file: ServeArgs = toml::from_str("kv_format = \"packed-v1\"").unwrap();
        assert_eq!(file.kv_format, Some(KvFormat::PackedV1));
        // The environment variable, on the definition.
        let cmd = <Cli as clap::CommandFactory>::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "kv_format")
            .unwrap();
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some("BUNTING_KV_FORMAT")
        );
    }

    #[test]
    fn ramp_lead_has_its_environment_variable() {
        // clap reads `BUNTING_RAMP_LEAD_SECONDS` (between the flag and the
        // file); checked on the definition rather than by mutating the
        // process environment under a parallel test harness.
        let cmd = <Cli as clap::CommandFactory>::command();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "ramp_lead_seconds")
            .unwrap();
        assert_eq!(arg.get_long(), Some("ramp-lead-seconds"));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some("BUNTING_RAMP_LEAD_SECONDS")
        );
    }
}
