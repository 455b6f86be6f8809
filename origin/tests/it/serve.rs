//! `bunting serve` as a process: configuration from a TOML file overridden
//! by environment variables and flags, the directory publisher, health,
//! readiness and Prometheus metrics, and graceful shutdown on SIGTERM.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_server(cmd: &mut Command, port: u16) -> Server {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{}/readyz", server.base)).await
            && r.status() == 200
        {
            return server;
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            panic!("bunting serve exited ({status}):\n{}", server.stderr());
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no /readyz");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn config_publishing_metrics_and_graceful_shutdown() {
    let dir = scratch("config");
    let (file_port, env_port) = (free_port(), free_port());
    let kv = dir.join("kv");
    // The file names one port; the environment overrides it; the file's
    // other settings apply.
    std::fs::write(
        dir.join("bunting.toml"),
        format!(
            "listen = \"127.0.0.1:{file_port}\"\ndatabase_url = \"sqlite://{}\"\n\
             admin_token = \"from-file\"\npublish_dir = \"{}\"\npublish_poll_seconds = 0.2\n\
             log_format = \"json\"\n",
            dir.join("origin.db").display(),
            kv.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bunting"));
    cmd.args(["serve", "--config"])
        .arg(dir.join("bunting.toml"))
        .env("BUNTING_LISTEN", format!("127.0.0.1:{env_port}"))
        .env("BUNTING_METRICS_TOKEN", "scraper-token")
        .env("RUST_LOG", "info");
    let mut server = spawn_server(&mut cmd, env_port).await;
    let base = server.base.clone();
    let c = reqwest::Client::new();
    let api = |m: reqwest::Method, p: &str, body: Value| {
        common::schema::send(
            c.request(m, format!("{base}/api/v1{p}"))
                .bearer_auth("from-file")
                .json(&body),
        )
    };
    use reqwest::Method;
    for (p, b) in [
        ("/orgs", json!({"key": "acme", "name": "Acme"})),
        ("/orgs/acme/projects", json!({"key": "web", "name": "Web"})),
        (
            "/orgs/acme/projects/web/environments",
            json!({"key": "prod", "name": "Prod"}),
        ),
        (
            "/orgs/acme/projects/web/flags",
            json!({"key": "f", "flagType": "boolean", "variants": {"on": true, "off": false}, "offVariant": "off"}),
        ),
    ] {
        let r = api(Method::POST, p, b).await;
        assert_eq!(r.status(), 201, "{p}: {}", r.text().await.unwrap());
    }
    // The directory publisher writes the snapshot as a file.
    let file = kv.join("snapshot%3Aacme%2Fweb%2Fprod");
    let start = Instant::now();
    let snapshot: Value = loop {
        if let Ok(value) = std::fs::read(&file)
            && let Ok(v) =
                serde_json::from_str::<Value>(crate::common::publishing::snapshot_json(&value))
            && v["flags"].as_array().is_some_and(|f| f.len() == 1)
        {
            break v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never appeared",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(snapshot["environment"], "acme/web/prod");
    assert!(bunting_core::Engine::from_json(&snapshot.to_string()).is_ok());

    // Health, readiness, metrics.
    let h: Value = reqwest::get(format!("{base}/healthz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    // The metrics name every tenant's environments: operators only (the
    // metrics token or the administrator token), and the metrics token
    // opens nothing else.
    for token in [None, Some("wrong"), Some("from-fil")] {
        let mut r = c.get(format!("{base}/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401, "{token:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    }
    let denied = c
        .get(format!("{base}/api/v1/orgs"))
        .bearer_auth("scraper-token")
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let scrape = |token: &'static str| c.get(format!("{base}/metrics")).bearer_auth(token).send();
    let by_admin = scrape("from-file").await.unwrap();
    assert_eq!(by_admin.status(), 200);
    let metrics = scrape("scraper-token").await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("bunting_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/orgs\",status=\"201\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bunting_publish_lag_seconds{environment=\"acme/web/prod\"} 0"),
        "{metrics}"
    );
    assert!(metrics.contains("bunting_publishes_total"), "{metrics}");

    // SIGTERM: the process drains and exits 0, logging JSON lines.
    let pid = server.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still running after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = server.stderr();
    assert!(status.success(), "{status}: {log}");
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "request" && l["status"] == 201),
        "{log}"
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{log}");
    // The database kept everything: a second process serves it.
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bunting"));
    cmd.args(["serve", "--config"])
        .arg(dir.join("bunting.toml"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            "from-flag",
        ]);
    let again = spawn_server(&mut cmd, port).await;
    let r = common::schema::send(
        c.get(format!(
            "{}/api/v1/orgs/acme/projects/web/flags/f",
            again.base
        ))
        .bearer_auth("from-flag"),
    )
    .await;
    assert_eq!(
        r.status(),
        200,
        "the flag's token from the flag, the data from the file's database"
    );
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = scratch("bad");
    std::fs::write(
        dir.join("bad.toml"),
        "listen = \"127.0.0.1:1\"\nlisten_port = 3\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bunting"))
        .args(["serve", "--config"])
        .arg(dir.join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("listen_port"),
        "{err}"
    );
}
