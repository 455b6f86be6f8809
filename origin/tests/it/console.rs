//! The web console as `bunting serve` serves it, over real HTTP: the
//! files of `--console-dir` with their media types, cache and security
//! headers, client-side routes loading the application, the API's and the
//! sign-in's paths untouched, path traversal refused, and the 503 page of a
//! console that is not built.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::common::cli::scratch;
use crate::common::origin::Origin;

const INDEX: &str = "<!doctype html><html><head><title>bunting</title>\
    <script type=\"module\" src=\"/assets/app-abc.js\"></script></head>\
    <body><div id=\"app\"></div></body></html>";
const SCRIPT: &str = "console.log('bunting');";
/// The start of a WebAssembly module (magic and version).
const WASM: &[u8] = b"\0asm\x01\0\0\0";

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Header names in lower case.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// `method target` sent as written (no normalisation of `..`, unlike an
/// HTTP client library), with `headers`.
fn send(origin: &Origin, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let address = origin.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connecting to the origin");
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (n, v) = line.split_once(':').unwrap();
            (n.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// The payload of a chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        let start = line_end + 2;
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

fn get(origin: &Origin, target: &str) -> Answer {
    send(origin, "GET", target, &[("Accept", "*/*")])
}

/// A browser navigating to `target`.
fn navigate(origin: &Origin, target: &str) -> Answer {
    send(
        origin,
        "GET",
        target,
        &[(
            "Accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )],
    )
}

/// A console build in `dir/dist`, and a secret beside it that must never
/// be served.
fn console_build(dir: &Path) -> PathBuf {
    let dist = dir.join("dist");
    fs::create_dir_all(dist.join("assets")).unwrap();
    fs::write(dist.join("index.html"), INDEX).unwrap();
    fs::write(dist.join("assets/app-abc.js"), SCRIPT).unwrap();
    fs::write(dist.join("assets/x.wasm"), WASM).unwrap();
    fs::write(dist.join("assets/style-1.css"), "body{margin:0}").unwrap();
    fs::write(
        dist.join("favicon.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
    )
    .unwrap();
    fs::write(dir.join("secret.txt"), "the secret").unwrap();
    dist
}

fn start(dir: &Path, console: &Path) -> Origin {
    let database = format!("sqlite://{}", dir.join("bunting.db").display());
    Origin::start_with(
        dir,
        &database,
        &["--console-dir", console.to_str().unwrap()],
    )
}

/// The security headers of a console response.
fn assert_secure(a: &Answer, what: &str) {
    let csp = a
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    for directive in [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive:?}"
        );
    }
    assert!(
        !csp.contains("http"),
        "{what}: CSP names another origin: {csp}"
    );
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("same-origin"), "{what}");
}

#[test]
fn serves_the_console_from_a_directory() {
    let dir = scratch("console", "directory");
    let dist = console_build(&dir);
    let origin = start(&dir, &dist);

    let index = navigate(&origin, "/");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_eq!(index.text(), INDEX);
    assert_secure(&index, "/");

    let script = get(&origin, "/assets/app-abc.js");
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        script.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(script.text(), SCRIPT);
    assert_secure(&script, "/assets/app-abc.js");

    let wasm = get(&origin, "/assets/x.wasm");
    assert_eq!(wasm.status, 200);
    assert_eq!(wasm.header("content-type"), Some("application/wasm"));
    assert_eq!(
        wasm.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(wasm.body, WASM);

    let css = get(&origin, "/assets/style-1.css");
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));

    // A top-level file of the build (vite copies public/ there).
    let icon = get(&origin, "/favicon.svg");
    assert_eq!(icon.status, 200);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));

    // HEAD: the headers of GET, no body.
    let head = send(&origin, "HEAD", "/assets/x.wasm", &[]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/wasm"));
    assert!(head.body.is_empty());
    let head = send(&origin, "HEAD", "/orgs/demo", &[("Accept", "text/html")]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(head.body.is_empty());

    // A precompressed sibling goes to clients that take gzip, only to them.
    let gzip: &[u8] = b"\x1f\x8b\x08\0precompressed";
    fs::write(dist.join("assets/app-abc.js.gz"), gzip).unwrap();
    let a = send(
        &origin,
        "GET",
        "/assets/app-abc.js",
        &[("Accept-Encoding", "gzip, br")],
    );
    assert_eq!(a.header("content-encoding"), Some("gzip"));
    assert_eq!(
        a.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(a.header("vary"), Some("Accept-Encoding"));
    assert_eq!(a.body, gzip);
    let a = get(&origin, "/assets/app-abc.js");
    assert_eq!(a.header("content-encoding"), None);
    assert_eq!(a.text(), SCRIPT);

    // A missing asset is a 404, never the application.
    let missing = navigate(&origin, "/assets/app-old.js");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

#[test]
fn deep_links_load_the_application() {
    let dir = scratch("console", "deep-links");
    let dist = console_build(&dir);
    let origin = start(&dir, &dist);

    for path in [
        "/orgs/demo/projects/demo/flags",
        "/orgs/demo/projects/demo/flags/new-checkout?env=production",
        "/signed-out",
    ] {
        let a = navigate(&origin, path);
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.text(), INDEX, "{path}");
        assert_eq!(a.header("cache-control"), Some("no-cache"), "{path}");
        assert_secure(&a, path);
    }

    // Not a browser (no text/html): the API's JSON 404.
    let a = get(&origin, "/orgs/demo/projects/demo/flags");
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "not_found");
    // Not a GET: the JSON 404 too.
    let a = send(
        &origin,
        "POST",
        "/orgs/demo",
        &[("Accept", "text/html"), ("Content-Length", "0")],
    );
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["error"]["code"], "not_found");
}

#[test]
fn api_auth_and_operational_paths_are_not_the_consoles() {
    let dir = scratch("console", "reserved");
    let dist = console_build(&dir);
    let origin = start(&dir, &dist);

    // An unknown API path is the JSON 404, even for a browser.
    for path in ["/api/v1/nope", "/api", "/api/v2/flags"] {
        let a = navigate(&origin, path);
        assert_eq!(a.status, 404, "{path}");
        assert!(
            a.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "{path}: {:?}",
            a.header("content-type")
        );
        assert_eq!(a.json()["error"]["code"], "not_found", "{path}");
        assert_eq!(a.header("content-security-policy"), None, "{path}");
    }
    // The API still answers.
    let a = navigate(&origin, "/api/v1/openapi.json");
    assert_eq!(a.status, 200);
    let document = a.json();
    let paths = document["paths"].as_object().unwrap();
    assert!(
        !paths.contains_key("/") && !paths.keys().any(|p| p.contains("assets")),
        "the console's routes are not in the OpenAPI document: {:?}",
        paths.keys().collect::<Vec<_>>()
    );

    // Sign-in paths: their own answers (no identity provider here), not
    // the application.
    for path in ["/auth/login", "/auth/callback", "/auth/unknown"] {
        let a = navigate(&origin, path);
        assert_ne!(a.text(), INDEX, "{path}");
        assert!(
            a.header("content-type")
                .unwrap_or("")
                .starts_with("application/json"),
            "{path}: {} {:?}",
            a.status,
            a.header("content-type")
        );
    }
    let a = navigate(&origin, "/healthz");
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "ok");
    let a = navigate(&origin, "/readyz");
    assert_eq!(a.json()["status"], "ready");
    let a = navigate(&origin, "/metrics");
    assert_eq!(a.status, 401);
}

#[test]
fn path_traversal_is_refused() {
    let dir = scratch("console", "traversal");
    let dist = console_build(&dir);
    let origin = start(&dir, &dist);

    for target in [
        "/assets/../../etc/passwd",
        "/assets/../secret.txt",
        "/assets/%2e%2e/%2e%2e/etc/passwd",
        "/assets/%2E%2E/secret.txt",
        "/assets/..%2f..%2fetc%2fpasswd",
        "/assets/..%2Fsecret.txt",
        "/assets/%2e%2e%5csecret.txt",
        "/assets/%2fetc%2fpasswd",
        "/assets//etc/passwd",
        "/assets/.hidden",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
    ] {
        for a in [get(&origin, target), navigate(&origin, target)] {
            let text = a.text();
            assert!(
                !text.contains("the secret") && !text.contains("root:"),
                "{target} leaked a file: {text}"
            );
            if a.status == 200 {
                // A browser's deep link that is no file: the application.
                assert_eq!(text, INDEX, "{target}");
            } else {
                assert!(
                    matches!(a.status, 400 | 404),
                    "{target}: {} {text}",
                    a.status
                );
            }
        }
        let a = get(&origin, target);
        assert!(matches!(a.status, 400 | 404), "{target}: {}", a.status);
    }
}

#[test]
fn a_console_that_is_not_built_says_how_to_build_it() {
    let dir = scratch("console", "not-built");
    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    let origin = start(&dir, &empty);
    for path in ["/", "/orgs/demo/projects/demo/flags"] {
        let a = navigate(&origin, path);
        assert_eq!(a.status, 503, "{path}");
        assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
        let page = a.text();
        assert!(page.contains("the console is not built"), "{page}");
        assert!(page.contains("cargo xtask console"), "{page}");
        assert_secure(&a, path);
    }
    assert_eq!(get(&origin, "/assets/app-abc.js").status, 404);
    // The API is unaffected.
    assert_eq!(get(&origin, "/healthz").status, 200);
}

#[test]
fn the_embedded_console_is_the_build_of_console_dist() {
    let dir = scratch("console", "embedded");
    let database = format!("sqlite://{}", dir.join("bunting.db").display());
    let origin = Origin::start(&dir, &database);
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("../console/dist/index.html");
    let a = navigate(&origin, "/");
    assert_secure(&a, "/");
    match fs::read(&built) {
        // build.rs re-embeds a rebuilt console, so the binary serves it.
        Ok(index) => {
            assert_eq!(a.status, 200);
            assert_eq!(a.body, index);
        }
        Err(_) => {
            assert_eq!(a.status, 503);
            assert!(a.text().contains("cargo xtask console"));
        }
    }
}

#[test]
fn a_console_dir_that_is_not_a_directory_is_refused() {
    let dir = scratch("console", "no-dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bunting"))
        .current_dir(&dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--console-dir",
            "no/such/dir",
        ])
        .args(["--database-url", "sqlite::memory:"])
        .env_remove("BUNTING_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--console-dir no/such/dir is not a directory"),
        "{stderr}"
    );
}
