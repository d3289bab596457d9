//! A real nats-server for the tests: started on a free loopback port with JetStream and a
//! temporary store directory, stopped when dropped. The binary comes from `NATS_SERVER` or
//! `PATH` (`tests/run.sh` provides one); without it the tests fail with instructions, they are
//! never skipped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("nats-server not found: set NATS_SERVER, put it on PATH, or run tests/run.sh (which installs it)")
    })
}

/// A free loopback port below Linux's ephemeral range (32768 and up), for a listener a child
/// process binds later (a nats-server, a metrics endpoint). The kernel hands out ephemeral
/// ports to every outgoing connection, so one picked there can be taken before the child binds
/// it; these it does not hand out. Within this process no port is given twice: the tests run
/// in parallel and each may still be starting the child it picked a port for.
pub(crate) fn free_port_for_child() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 5_000) as u16 * 2;
    for _ in 0..10_000 {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed) % 10_000;
        let port = 20_000 + (start + offset) % 10_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 30000")
}

/// The arguments that make a server read `config` (written into its store directory); none
/// without one.
fn config_file(store: &tempfile::TempDir, config: Option<&str>) -> Vec<String> {
    let Some(text) = config else {
        return Vec::new();
    };
    let path = store.path().join("server.conf");
    std::fs::write(&path, text).unwrap();
    vec!["-c".to_string(), path.display().to_string()]
}

/// One JetStream-enabled nats-server.
pub(crate) struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    /// More arguments: cluster routes for a member of a [`Cluster`], or a configuration file.
    cluster: Vec<String>,
}

impl NatsServer {
    /// Starts a server and waits until it accepts connections.
    pub(crate) fn start() -> NatsServer {
        NatsServer::start_with_config(None)
    }

    /// Starts a server with this configuration file's text too (for example users and their
    /// permissions), and waits until it accepts connections.
    pub(crate) fn start_with_config(config: Option<&str>) -> NatsServer {
        let store = tempfile::tempdir().unwrap();
        let extra = config_file(&store, config);
        let mut server = NatsServer {
            child: None,
            port: free_port_for_child(),
            store,
            cluster: extra,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new(binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.cluster)
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                panic!(
                    "nats-server on port {} exited at start: {status}; its log ends: {tail}",
                    self.port
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within 15 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where its stderr goes: next to its store directory, not in it (tests read the store's
    /// raw bytes).
    fn log_path(&self) -> std::path::PathBuf {
        let store = self.store.path();
        store.with_file_name(format!(
            "{}.log",
            store.file_name().unwrap().to_string_lossy()
        ))
    }

    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    /// The client URL.
    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store directory (to inspect its raw bytes).
    pub(crate) fn store_dir(&self) -> &std::path::Path {
        self.store.path()
    }

    /// Kills the server (as a crash would).
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends it a signal (`STOP`, `CONT`, ...).
    pub(crate) fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("a running server").id();
        let status = Command::new("kill")
            .args([format!("-{name}"), pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} {pid}");
    }

    /// Starts it (again) on the same port with the same store, when it is not running.
    pub(crate) fn start_again(&mut self) {
        if self.child.is_none() {
            self.spawn();
        }
    }

    /// Starts it again on the same port with the same store.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Stops it, removes everything its store holds (a server that lost what it had
    /// acknowledged), and starts it again, empty, on the same port.
    pub(crate) fn lose_everything(&mut self) {
        self.kill();
        for entry in std::fs::read_dir(self.store_dir()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            }
        }
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(self.log_path());
    }
}

/// A JetStream cluster of servers on loopback, routed to each other.
pub(crate) struct Cluster {
    pub(crate) servers: Vec<NatsServer>,
}

impl Cluster {
    /// Starts `n` servers named `n0`, `n1`, ... in the cluster `personctl-test`.
    pub(crate) fn start(n: usize) -> Cluster {
        Cluster::start_with(n, None)
    }

    /// [`Cluster::start`], each server also reading this configuration file's text (for
    /// example `jetstream { sync_interval: always }`).
    pub(crate) fn start_with(n: usize, config: Option<&str>) -> Cluster {
        let route_ports: Vec<u16> = (0..n).map(|_| free_port_for_child()).collect();
        let routes: Vec<String> = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let mut servers = Vec::new();
        for (i, port) in route_ports.iter().enumerate() {
            let store = tempfile::tempdir().unwrap();
            let file = config_file(&store, config);
            let mut server = NatsServer {
                child: None,
                port: free_port_for_child(),
                store,
                cluster: file
                    .into_iter()
                    .chain(vec![
                        "-n".into(),
                        format!("n{i}"),
                        "--cluster_name".into(),
                        "personctl-test".into(),
                        "--cluster".into(),
                        format!("nats://127.0.0.1:{port}"),
                        "--routes".into(),
                        routes.join(","),
                    ])
                    .collect(),
            };
            server.spawn();
            servers.push(server);
        }
        Cluster { servers }
    }

    /// Every member's client URL, comma-separated.
    pub(crate) fn urls(&self) -> String {
        let urls: Vec<String> = self.servers.iter().map(NatsServer::url).collect();
        urls.join(",")
    }
}
