//! Running commands, finding tools, timing steps.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The Rust target of every WebAssembly build (core modules, the worker).
pub(crate) const TARGET: &str = "wasm32-unknown-unknown";

/// The workspace and the steps run so far.
pub(crate) struct Ctx {
    /// Workspace root.
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR`).
    pub target_dir: PathBuf,
    cargo: PathBuf,
    started: Instant,
    timings: RefCell<Vec<(String, Duration)>>,
}

impl Ctx {
    pub(crate) fn new() -> Result<Ctx> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask lives inside the workspace")?
            .to_path_buf();
        // `cargo run` tells us which cargo (and so which toolchain) it is.
        let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
        let mut ctx = Ctx {
            root,
            target_dir: PathBuf::new(),
            cargo,
            started: Instant::now(),
            timings: RefCell::new(Vec::new()),
        };
        let meta = ctx.capture(ctx.cargo(&["metadata", "--no-deps", "--format-version", "1"]))?;
        let meta: serde_json::Value =
            serde_json::from_str(&meta).context("cargo metadata printed invalid JSON")?;
        ctx.target_dir = meta["target_directory"]
            .as_str()
            .map(PathBuf::from)
            .context("cargo metadata names no target_directory")?;
        Ok(ctx)
    }

    /// A cargo command run in the workspace root.
    pub(crate) fn cargo(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.cargo);
        c.args(args).current_dir(&self.root);
        c
    }

    /// Any command run in the workspace root.
    pub(crate) fn cmd(&self, program: impl AsRef<OsStr>, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args).current_dir(&self.root);
        c
    }

    /// Prints a section heading.
    pub(crate) fn section(&self, title: &str) {
        println!("\n==> {title}");
    }

    /// Runs a named step with inherited output; fails with the command line
    /// when it fails.
    pub(crate) fn step(&self, name: &str, mut cmd: Command) -> Result<()> {
        self.section(name);
        println!("$ {}", show(&cmd));
        let start = Instant::now();
        let status = cmd
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("{name}: could not start `{}`", show(&cmd)))?;
        self.record(name, start.elapsed());
        if !status.success() {
            bail!(
                "step `{name}` failed ({status}).\nRe-run it with:\n  (cd {} && {})",
                self.root.display(),
                show(&cmd)
            );
        }
        Ok(())
    }

    /// Runs a command quietly and returns its standard output; stderr goes
    /// to the terminal.
    pub(crate) fn capture(&self, mut cmd: Command) -> Result<String> {
        let out = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("could not start `{}`", show(&cmd)))?;
        if !out.status.success() {
            bail!("`{}` failed ({})", show(&cmd), out.status);
        }
        String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", show(&cmd)))
    }

    /// Records how long something took, for the summary.
    pub(crate) fn record(&self, name: &str, took: Duration) {
        self.timings.borrow_mut().push((name.to_string(), took));
    }

    /// Prints the time of every step.
    pub(crate) fn print_timings(&self) {
        let timings = self.timings.borrow();
        if timings.is_empty() {
            return;
        }
        println!("\n==> timings");
        for (name, took) in timings.iter() {
            println!("  {:>7.1}s  {name}", took.as_secs_f64());
        }
        println!("  {:>7.1}s  total", self.started.elapsed().as_secs_f64());
    }
}

/// A command line as a user would type it (environment first).
pub(crate) fn show(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_string_lossy(), v?.to_string_lossy())))
        .collect();
    let program = cmd.get_program().to_string_lossy();
    // Show `cargo`, not the toolchain's full path.
    let program = match Path::new(&*program).file_name() {
        Some(name) if name == "cargo" => "cargo".into(),
        _ => program,
    };
    parts.push(program.into_owned());
    parts.extend(cmd.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(char::is_whitespace) {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

/// Finds an executable on `PATH`, then in cargo's bin directory (where
/// `cargo install` puts things even when it is not on `PATH`).
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let exe = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo").join("bin"));
    }
    dirs.into_iter().map(|d| d.join(&exe)).find(|p| p.is_file())
}

/// The output of `tool --version`, trimmed, if it runs.
pub(crate) fn version_of(tool: &Path) -> Option<String> {
    let out = Command::new(tool)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A path relative to `base` when it is inside it, for shorter messages.
pub(crate) fn rel<'a>(path: &'a Path, base: &Path) -> std::borrow::Cow<'a, str> {
    path.strip_prefix(base).unwrap_or(path).to_string_lossy()
}
