//! System tests: the real `personctl` binary against real sled stores in temporary directories.
//!
//! The binary is built once per run (`cargo build -p personctl`), so these tests never run a
//! stale one.

mod backbone;
mod bench;
mod car;
mod cli;
mod crash;
mod erasure;
mod faults;
mod first_hour;
mod fuzz;
mod hostile;
mod identity;
mod jetstream;
mod library;
mod nats;
mod persons;
mod read_side;
mod repair;
mod service;
mod tamper;
mod transparency;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use personctl_ledger::Signer;

/// Path of a freshly built `personctl`.
pub(crate) fn personctl() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "personctl", "--bin", "personctl"])
            .status()
            .expect("running cargo build for personctl");
        assert!(status.success(), "building personctl failed");
        // tests run from target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().unwrap();
        let bin = exe.parent().unwrap().parent().unwrap().join("personctl");
        assert!(bin.is_file(), "no personctl binary at {}", bin.display());
        bin
    })
}

/// The key seed used by fixture stores: bytes 0x01 to 0x20 (as in `fixtures/golden`).
pub(crate) fn fixture_signer() -> Signer {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8 + 1;
    }
    Signer::from_seed(seed)
}

/// A home with a key made by `personctl keygen`; returns the did:key.
pub(crate) fn keyed() -> (Home, String) {
    let home = Home::new();
    let run = home.run(&["keygen"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let did = run.stdout.trim().to_string();
    assert!(did.starts_with("did:key:z6Mk"), "{did}");
    (home, did)
}

/// Every file below `dir`.
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The files under `dir` whose raw bytes hold `value`.
pub(crate) fn holding(dir: &Path, value: &str) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap();
            bytes.windows(value.len()).any(|w| w == value.as_bytes())
        })
        .collect()
}

/// A temporary data directory.
pub(crate) struct Home {
    pub(crate) dir: tempfile::TempDir,
}

/// The result of one run of the binary.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().expect("exited normally"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// The `data` of every record of type `ty`, in order.
    pub(crate) fn of_type(&self, ty: &str) -> Vec<serde_json::Value> {
        self.records()
            .into_iter()
            .filter(|(t, _)| t == ty)
            .map(|(_, d)| d)
            .collect()
    }

    /// Every stdout line as a JSON Lines record; panics unless each is `{"type", "data"}`.
    pub(crate) fn records(&self) -> Vec<(String, serde_json::Value)> {
        self.stdout
            .lines()
            .map(|line| {
                let v: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                let ty = v["type"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no type: {line}"))
                    .to_string();
                assert!(v.get("data").is_some(), "no data: {line}");
                (ty, v["data"].clone())
            })
            .collect()
    }
}

impl Home {
    pub(crate) fn new() -> Home {
        Home {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn store_path(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Runs each `(args, needle)` case and requires an error: exit code 2, one message on stderr
    /// that starts with `personctl: ` and mentions the needle, nothing on stdout.
    #[track_caller]
    pub(crate) fn expect_errors(&self, cases: &[(&[&str], &str)]) {
        for (args, needle) in cases {
            let run = self.run(args);
            assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
            assert!(
                run.stderr.starts_with("personctl: "),
                "{args:?}: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains(needle),
                "{args:?}: {:?} does not mention {needle:?}",
                run.stderr
            );
            assert!(run.stdout.is_empty(), "{args:?}: stdout {:?}", run.stdout);
        }
    }

    /// Runs `personctl` with this home and the given arguments.
    pub(crate) fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().unwrap())
    }

    /// `personctl` with this home and the given arguments, not yet started; no personctl
    /// setting comes from the test's environment.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(personctl());
        command
            .args(args)
            .env("PERSONCTL_HOME", self.path())
            .env_remove("PERSONCTL_KEY")
            .env_remove("PERSONCTL_NATS")
            .env_remove("PERSONCTL_NATS_PREFIX")
            .env_remove("PERSONCTL_NATS_REPLICAS")
            .env_remove("PERSONCTL_NATS_MONITOR")
            .env_remove("RUST_LOG");
        command
    }

    /// `personctl args...` started in the background, its stdout and stderr piped.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// Writes `lines` as a JSON Lines file in `home`.
pub(crate) fn commands(home: &Home, name: &str, lines: &[serde_json::Value]) -> PathBuf {
    let path = home.path().join(name);
    let mut file = std::fs::File::create(&path).unwrap();
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    path
}

#[track_caller]
pub(crate) fn ok(run: &Run) -> &Run {
    assert_eq!(
        run.code, 0,
        "stderr: {}\nstdout: {}",
        run.stderr, run.stdout
    );
    run
}

/// Registers a person through the binary; returns its `appended` record (`person`, `cid`, ...).
pub(crate) fn registered(home: &Home, name: &str) -> serde_json::Value {
    let run = home.run(&["--json", "append", "register", "--legal-name", name]);
    ok(&run).records()[0].1.clone()
}

/// Registers a person through the binary; returns its id.
pub(crate) fn register(home: &Home, name: &str) -> String {
    registered(home, name)["person"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The CIDs of the `appended` records of a `--json append` run.
pub(crate) fn appended(run: &Run) -> Vec<String> {
    run.of_type("appended")
        .iter()
        .map(|d| d["cid"].as_str().unwrap().to_string())
        .collect()
}

/// A time as RFC 3339 (microseconds), as personctl prints and reads it.
pub(crate) fn output_time(us: u64) -> String {
    jiff::Timestamp::from_microsecond(us as i64)
        .expect("a time personctl handles")
        .to_string()
}
