//! The commands that work through the origin's HTTP API with a token:
//! `apply` (GitOps plan and apply), `import`, `export`, `token create`,
//! `experiment results` and `audit export`. Each runs on a
//! single-threaded runtime; an error answer of the API is printed with
//! every problem it names, a network failure with the URL it could not
//! reach.

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use bunting_origin::store::plan::{Change, ChangeOp, Plan};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::args::{
    Apply, AuditExport, ExperimentResultsArgs, Export, Format, Import, Remote, TokenCreate,
};
use crate::output::{entries, plural, write_atomically};

/// Exit status of `apply --plan` when applying would change the project
/// (terraform's `-detailed-exitcode`).
const DIFFERENCE: u8 = 2;

/// A client of the origin's API.
struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// An answer of the API: status and body.
struct Answer {
    status: StatusCode,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

impl Api {
    fn new(remote: &Remote) -> Result<Api> {
        let Some(token) = remote.token.clone().filter(|t| !t.is_empty()) else {
            bail!("no API token: pass --token or set BUNTING_TOKEN");
        };
        Ok(Api {
            base: format!("{}/api/v1", remote.url.trim_end_matches('/')),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// `method path` with `body` of `content_type`, if any.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut r = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some((content_type, bytes)) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(bytes);
        }
        let response = r
            .send()
            .await
            .with_context(|| format!("could not reach the origin at {url}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .with_context(|| format!("reading the answer of {method} {url}"))?;
        Ok(Answer { status, text })
    }

    /// The JSON of a successful answer, or the error it carries.
    async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        file: Option<&Path>,
    ) -> Result<Answer> {
        let a = self.send(method.clone(), path, body).await?;
        if a.status.is_success() {
            Ok(a)
        } else {
            Err(api_error(
                &method,
                &format!("{}{path}", self.base),
                &a,
                file,
            ))
        }
    }
}

/// The error of a 4xx/5xx answer: its message, then every problem (a
/// definition file's at `FILE:LINE:COLUMN`, as `bunting validate` prints
/// them).
fn api_error(method: &Method, url: &str, a: &Answer, file: Option<&Path>) -> anyhow::Error {
    let body = a.json();
    let error = &body["error"];
    let message = error["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| a.text.trim().to_string());
    let mut out = format!("{method} {url} answered {}: {message}", a.status);
    let problems = error["problems"].as_array().cloned().unwrap_or_default();
    for p in &problems {
        let path = p["path"].as_str().unwrap_or_default();
        let text = p["message"].as_str().unwrap_or_default();
        let entity = p["entity"].as_str();
        let at_position = path.split_once(':').is_some_and(|(l, c)| {
            l.bytes().all(|b| b.is_ascii_digit()) && c.bytes().all(|b| b.is_ascii_digit())
        });
        let line = match (file, at_position, entity) {
            (Some(f), true, Some(e)) => format!("{}:{path}: {e}: {text}", f.display()),
            (Some(f), true, None) => format!("{}:{path}: {text}", f.display()),
            (_, _, Some(e)) => format!("{e}: {path}: {text}"),
            (_, _, None) => format!("{path}: {text}"),
        };
        out.push('\n');
        out.push_str(&line);
    }
    if let (Some(f), false) = (file, problems.is_empty()) {
        out.push_str(&format!(
            "\n{}: {}",
            f.display(),
            plural(problems.len(), "problem")
        ));
    }
    anyhow!(out)
}

/// The path of a project's definitions.
fn definitions(org: &str, project: &str) -> String {
    format!("/orgs/{org}/projects/{project}/definitions")
}

/// The file's bytes and media type (JSON by a `.json` extension, YAML
/// otherwise).
fn read_file(file: &Path) -> Result<(&'static str, Vec<u8>)> {
    let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let json = file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok((
        if json {
            "application/json"
        } else {
            "application/yaml"
        },
        bytes,
    ))
}

fn parse_plan(a: &Answer) -> Result<Plan> {
    serde_json::from_str(&a.text).context("reading the plan the origin answered")
}

/// `bunting apply FILE [--plan] [--prune]`.
pub(crate) async fn apply(a: Apply) -> Result<ExitCode> {
    let api = Api::new(&a.remote)?;
    let body = read_file(&a.file)?;
    let target = format!("{}/{}", a.org, a.project);
    let path = definitions(&a.org, &a.project);
    if a.plan {
        let answer = api
            .expect(
                Method::POST,
                &format!("{path}/plan?prune={}", a.prune),
                Some(body),
                Some(&a.file),
            )
            .await?;
        let plan = parse_plan(&answer)?;
        print!("{}", render_changes(&plan.changes));
        note_unmanaged(&plan, &a.file);
        if plan.changes.is_empty() {
            println!(
                "No changes: {target} matches {} (base {}).",
                a.file.display(),
                plan.base
            );
            Ok(ExitCode::SUCCESS)
        } else {
            println!(
                "Plan: {} to create, {} to update, {} to delete in {target} (base {}).",
                plan.summary.create, plan.summary.update, plan.summary.delete, plan.base
            );
            Ok(ExitCode::from(DIFFERENCE))
        }
    } else {
        let mut query = format!("?prune={}", a.prune);
        if let Some(base) = &a.expected_base {
            if base.is_empty() || !base.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("--expected-base {base:?} is not a plan's base (hexadecimal digits)");
            }
            query.push_str(&format!("&expectedBase={base}"));
        }
        let answer = api
            .expect(
                Method::PUT,
                &format!("{path}{query}"),
                Some(body),
                Some(&a.file),
            )
            .await?;
        let plan = parse_plan(&answer)?;
        print!("{}", render_changes(&plan.changes));
        note_unmanaged(&plan, &a.file);
        // Protected environments' changes wait for approval.
        for cr in answer.json()["changeRequests"]
            .as_array()
            .into_iter()
            .flatten()
        {
            println!(
                "Opened change request {} ({}): {} change(s) wait for approval; not live yet.",
                cr["id"],
                cr["title"].as_str().unwrap_or_default(),
                cr["changes"].as_array().map_or(0, Vec::len)
            );
        }
        if plan.changes.is_empty() {
            println!("No changes: {target} already matches {}.", a.file.display());
        } else {
            println!(
                "Applied {} to {target}: {} created, {} updated, {} deleted.",
                a.file.display(),
                plan.summary.create,
                plan.summary.update,
                plan.summary.delete
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Notes, on standard error, what the project holds beyond the file.
fn note_unmanaged(plan: &Plan, file: &Path) {
    if !plan.unmanaged.is_empty() {
        eprintln!(
            "note: not in {} and left alone{}: {}",
            file.display(),
            if plan.prune {
                ""
            } else {
                " (--prune deletes flags, segments and layers)"
            },
            plan.unmanaged.join(", ")
        );
    }
}

/// Each change as `+ flag beta`, `~ flagConfig beta/production`, `- segment
/// old (production)`, followed by the fields that change, indented.
fn render_changes(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let sign = match c.op {
            ChangeOp::Create => '+',
            ChangeOp::Update => '~',
            ChangeOp::Delete => '-',
        };
        out.push_str(&format!("{sign} {} {}\n", c.kind, c.target()));
        for line in field_diff(c.before.as_ref(), c.after.as_ref()) {
            out.push_str(&format!("    {line}\n"));
        }
    }
    out
}

/// The top-level fields that differ between `before` and `after`, as
/// `field: OLD -> NEW` (`field: NEW` for a create; nothing for a delete).
fn field_diff(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let Some(Value::Object(after)) = after else {
        return Vec::new();
    };
    let empty = serde_json::Map::new();
    let before_map = match before {
        Some(Value::Object(b)) => b,
        _ => &empty,
    };
    let mut keys: Vec<&String> = before_map.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for k in keys {
        if k == "key" {
            continue;
        }
        let (b, a) = (before_map.get(k), after.get(k));
        if b == a {
            continue;
        }
        let shown = |v: Option<&Value>| v.map_or("(none)".to_string(), short);
        if before.is_none() {
            if a.is_some_and(|v| !is_empty(v)) {
                out.push(format!("{k}: {}", shown(a)));
            }
        } else {
            out.push(format!("{k}: {} -> {}", shown(b), shown(a)));
        }
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// `v` as compact JSON, cut to 72 characters.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 72 {
        let cut: String = s.chars().take(69).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// Makes sure `org/project` exists; with `create`, makes what is missing.
async fn ensure_project(api: &Api, org: &str, project: &str, create: bool) -> Result<()> {
    let path = format!("/orgs/{org}/projects/{project}");
    let a = api.send(Method::GET, &path, None).await?;
    if a.status.is_success() {
        return Ok(());
    }
    if a.status != StatusCode::NOT_FOUND {
        return Err(api_error(
            &Method::GET,
            &format!("{}{path}", api.base),
            &a,
            None,
        ));
    }
    let o = api.send(Method::GET, &format!("/orgs/{org}"), None).await?;
    if o.status == StatusCode::NOT_FOUND {
        if !create {
            bail!("organization {org:?} not found (`--create` creates it)");
        }
        api.expect(
            Method::POST,
            "/orgs",
            Some(json_body(&json!({"key": org, "name": org}))),
            None,
        )
        .await
        .with_context(|| format!("creating organization {org:?}"))?;
        eprintln!("created organization {org}");
    } else if !o.status.is_success() {
        return Err(api_error(
            &Method::GET,
            &format!("{}/orgs/{org}", api.base),
            &o,
            None,
        ));
    }
    if !create {
        bail!("project {project:?} not found in organization {org:?} (`--create` creates it)");
    }
    api.expect(
        Method::POST,
        &format!("/orgs/{org}/projects"),
        Some(json_body(&json!({"key": project, "name": project}))),
        None,
    )
    .await
    .with_context(|| format!("creating project {org}/{project}"))?;
    eprintln!("created project {org}/{project}");
    Ok(())
}

fn json_body(v: &Value) -> (&'static str, Vec<u8>) {
    ("application/json", v.to_string().into_bytes())
}

/// `bunting import`: applies a definition file without deleting anything.
pub(crate) async fn import(i: Import) -> Result<ExitCode> {
    let api = Api::new(&i.remote)?;
    let body = read_file(&i.file)?;
    ensure_project(&api, &i.org, &i.project, i.create).await?;
    let answer = api
        .expect(
            Method::PUT,
            &format!("{}?prune=false", definitions(&i.org, &i.project)),
            Some(body),
            Some(&i.file),
        )
        .await?;
    let plan = parse_plan(&answer)?;
    let flags_left: Vec<&str> = plan
        .unmanaged
        .iter()
        .filter_map(|u| u.strip_prefix("flag "))
        .collect();
    if !flags_left.is_empty() {
        eprintln!(
            "note: {} of {}/{} not in {} left as they are (import never deletes): {}",
            plural(flags_left.len(), "flag"),
            i.org,
            i.project,
            i.file.display(),
            flags_left.join(", ")
        );
    }
    let sum = bunting_origin::store::ImportSummary::of(&plan.changes);
    println!(
        "imported {} into {}/{}: created {}, {}, {}, {}; updated {}, {}, {}, {}",
        i.file.display(),
        i.org,
        i.project,
        plural(sum.environments_created as usize, "environment"),
        plural(sum.layers_created as usize, "layer"),
        plural(sum.flags_created as usize, "flag"),
        plural(sum.segments_created as usize, "segment"),
        plural(sum.layers_updated as usize, "layer"),
        plural(sum.flags_updated as usize, "flag"),
        plural(sum.configs_updated as usize, "configuration"),
        plural(sum.segments_updated as usize, "segment"),
    );
    Ok(ExitCode::SUCCESS)
}

/// `bunting export`: writes a project as a definition file.
pub(crate) async fn export(e: Export) -> Result<ExitCode> {
    let format = e.format.unwrap_or(match &e.output {
        Some(out)
            if out
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| x.eq_ignore_ascii_case("json")) =>
        {
            Format::Json
        }
        _ => Format::Yaml,
    });
    let api = Api::new(&e.remote)?;
    ensure_project(&api, &e.org, &e.project, false).await?;
    let name = if format == Format::Json {
        "json"
    } else {
        "yaml"
    };
    let answer = api
        .expect(
            Method::GET,
            &format!("{}?format={name}", definitions(&e.org, &e.project)),
            None,
            None,
        )
        .await
        .with_context(|| format!("exporting {}/{}", e.org, e.project))?;
    match &e.output {
        Some(out) => {
            write_atomically(out, &answer.text)?;
            eprintln!(
                "wrote {} ({}/{} as {})",
                out.display(),
                e.org,
                e.project,
                name.to_uppercase()
            );
        }
        None => io::stdout()
            .write_all(answer.text.as_bytes())
            .context("writing the export")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `bunting token create`: makes an API token; its secret alone on
/// standard output.
pub(crate) async fn token_create(t: TokenCreate) -> Result<ExitCode> {
    let api = Api::new(&t.remote)?;
    let answer = api
        .expect(
            Method::POST,
            &format!("/orgs/{}/tokens", t.org),
            Some(json_body(&json!({"name": t.name, "role": t.role}))),
            None,
        )
        .await
        .with_context(|| format!("creating a token in organization {:?}", t.org))?;
    let token = answer.json();
    let Some(secret) = token["secret"].as_str() else {
        bail!("the origin answered no secret: {}", answer.text);
    };
    eprintln!(
        "created token {} (id {}, role {}, prefix {}) in organization {}; \
         its secret follows on standard output and is not shown again",
        token["name"],
        token["id"],
        t.role,
        token["prefix"].as_str().unwrap_or_default(),
        t.org
    );
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

/// `bunting experiment results`: the results table of one experiment.
pub(crate) async fn experiment_results(a: ExperimentResultsArgs) -> Result<ExitCode> {
    let api = Api::new(&a.remote)?;
    let answer = api
        .expect(
            Method::GET,
            &format!(
                "/orgs/{}/projects/{}/environments/{}/experiments/{}/results?format=table",
                a.org, a.project, a.env, a.key
            ),
            None,
            None,
        )
        .await
        .with_context(|| format!("reading the results of experiment {:?}", a.key))?;
    print!("{}", answer.text);
    Ok(ExitCode::SUCCESS)
}

/// `value` percent-encoded for a query string (RFC 3986 unreserved
/// characters as they are).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `bunting audit export --org ORG`: an organization's audit entries as
/// JSON lines, oldest first (admin).
pub(crate) async fn audit_export(a: AuditExport) -> Result<ExitCode> {
    let Some(org) = &a.org else {
        bail!(
            "audit export through the API needs --org; an operator exports every \
             organization from the store with --database-url"
        );
    };
    let api = Api::new(&a.remote)?;
    let filters = [
        ("entityType", &a.entity_type),
        ("actor", &a.actor),
        ("from", &a.from),
        ("until", &a.until),
    ];
    let query: Vec<String> = filters
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    let path = format!("/orgs/{org}/audit/export?{}", query.join("&"));
    let answer = api
        .expect(Method::GET, &path, None, None)
        .await
        .with_context(|| format!("exporting the audit log of organization {org:?}"))?;
    match &a.output {
        Some(out) => {
            write_atomically(out, &answer.text)?;
            eprintln!(
                "wrote {} ({})",
                out.display(),
                entries(answer.text.lines().count())
            );
        }
        None => io::stdout()
            .write_all(answer.text.as_bytes())
            .context("writing the audit log")?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_shows_the_fields_that_differ() {
        let before = json!({"enabled": true, "rules": [], "fallthrough": {"variant": "on"}});
        let after = json!({"enabled": false, "rules": [], "fallthrough": {"variant": "on"}});
        assert_eq!(
            field_diff(Some(&before), Some(&after)),
            ["enabled: true -> false"]
        );
        assert_eq!(
            field_diff(None, Some(&after)),
            ["enabled: false", "fallthrough: {\"variant\":\"on\"}"]
        );
        assert!(field_diff(Some(&before), None).is_empty());
        assert_eq!(encode("token:3:ci é"), "token%3A3%3Aci%20%C3%A9");
        let long = Value::String("x".repeat(100));
        assert_eq!(short(&long).chars().count(), 72);
    }
}
