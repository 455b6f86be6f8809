//! A real `bunting serve` over loopback for the CLI's API commands, and a
//! scratch directory whose `bunting` runs talk to it ([`Cli`]).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bunting_origin::store::Store;

use super::cli::{self, stderr, stdout};

/// The administrator token the origins of the tests are started with.
pub(crate) const ADMIN: &str = "cli-admin-token";

/// `bunting serve` on a free loopback port, killed when dropped.
pub(crate) struct Origin {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    log: PathBuf,
}

impl Origin {
    /// Starts `bunting serve` on `database_url` (its log in `dir/serve.log`)
    /// and waits until it is ready.
    pub(crate) fn start(dir: &Path, database_url: &str) -> Origin {
        Origin::start_with(dir, database_url, &[])
    }

    /// [`Origin::start`] with more options of `bunting serve`.
    pub(crate) fn start_with(dir: &Path, database_url: &str, options: &[&str]) -> Origin {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("serve.log");
        let child = Command::new(env!("CARGO_BIN_EXE_bunting"))
            .current_dir(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database-url", database_url, "--admin-token", ADMIN])
            .args(options)
            .env_remove("BUNTING_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("the log file"))
            .spawn()
            .expect("starting bunting serve");
        let mut origin = Origin {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let start = Instant::now();
        while !ready(port) {
            if let Ok(Some(status)) = origin.child.try_wait() {
                panic!(
                    "bunting serve exited ({status}):\n{}",
                    fs::read_to_string(&origin.log).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "bunting serve never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        origin
    }
}

/// Whether `GET /readyz` on `port` answers 200.
fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    s.write_all(request.as_bytes()).is_ok()
        && s.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
}

impl Drop for Origin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scratch directory, the store of an origin serving it and the origin:
/// `bunting` runs in the directory with `BUNTING_URL` and `BUNTING_TOKEN`
/// (the administrator's) naming the origin, and `BUNTING_DATABASE_URL` its
/// store when that is not the default (`bunting.db` in the directory).
pub(crate) struct Cli {
    pub(crate) dir: PathBuf,
    /// The store's URL.
    pub(crate) database: String,
    /// Whether `BUNTING_DATABASE_URL` is set for the runs.
    explicit: bool,
    // Dropped in this order: the origin before its PostgreSQL schema.
    pub(crate) origin: Origin,
    _schema: Option<super::PgSchema>,
}

impl Cli {
    /// An origin on `bunting.db` (SQLite) in a fresh directory `group/name`.
    pub(crate) fn sqlite(group: &str, name: &str) -> Cli {
        let dir = cli::scratch(group, name);
        let database = format!("sqlite://{}", dir.join("bunting.db").display());
        let origin = Origin::start(&dir, &database);
        Cli {
            dir,
            database,
            explicit: false,
            origin,
            _schema: None,
        }
    }

    /// An origin on a fresh PostgreSQL schema, in a fresh directory.
    pub(crate) fn postgres(group: &str, name: &str) -> Cli {
        let dir = cli::scratch(group, name);
        let (database, schema) = runtime().block_on(super::postgres_schema());
        let origin = Origin::start(&dir, &database);
        Cli {
            dir,
            database,
            explicit: true,
            origin,
            _schema: Some(schema),
        }
    }

    /// `bunting ARGS` in the directory, talking to the origin.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut c = cli::bunting(&self.dir);
        c.args(args)
            .env("BUNTING_URL", &self.origin.url)
            .env("BUNTING_TOKEN", ADMIN);
        if self.explicit {
            c.env("BUNTING_DATABASE_URL", &self.database);
        }
        c
    }

    /// Runs `bunting ARGS`.
    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running bunting")
    }

    /// Runs `bunting ARGS`, which must succeed; its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "bunting {args:?} failed ({:?}):\n{}",
            o.status.code(),
            stderr(&o)
        );
        stdout(&o)
    }

    /// Runs `f` on the origin's store (a second connection beside the
    /// origin's), closing it afterwards.
    pub(crate) fn with_store<T>(&self, f: impl AsyncFnOnce(&Store) -> T) -> T {
        runtime().block_on(async {
            let store = Store::open(&self.database)
                .await
                .expect("opening the store");
            let out = f(&store).await;
            store.pool().close().await;
            out
        })
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}
