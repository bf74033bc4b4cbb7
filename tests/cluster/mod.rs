//! Test harness: a real Patroni cluster (etcd + three Patroni/PostgreSQL 15 nodes) on loopback,
//! driven through `scripts/cluster`, plus a running rolegate in front of it.
//!
//! Each test owns one `Cluster` on its own base port; dropping it stops every process and
//! removes the directory, also when the test panics. Ports: etcd `base`, node i (1..=3)
//! PostgreSQL `base + 10 + i`, REST `base + 20 + i`; rolegate listeners `base + 31..=34` by
//! convention (`standard_listeners`). Set `ROLEGATE_KEEP_TEST_DIR=1` to keep logs after a run.
// Each test binary uses a different part of the harness.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod console;
mod http;
mod patroni;
mod pg;
mod rolegate;
pub mod sockets;
pub mod spawn;
mod wait;
pub mod writers;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

pub use patroni::{Member, PatroniView};
pub use pg::{is_disconnect, psql, server_of, Session};
pub use rolegate::{standard_listeners, Role, Rolegate};
pub use wait::{wait_for, wait_until};

/// One Patroni node as printed by `scripts/cluster up`.
#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    /// PostgreSQL port on 127.0.0.1.
    pub pg_port: u16,
    /// Patroni REST API port on 127.0.0.1.
    pub api_port: u16,
}

/// A running cluster; `Drop` runs `scripts/cluster down` and removes `dir`.
pub struct Cluster {
    dir: PathBuf,
    base_port: u16,
    scope: String,
    nodes: Vec<Node>,
}

impl Cluster {
    /// Starts a cluster with scope "demo" in `/tmp/rolegate-test-<base_port>` (leftovers of an
    /// earlier run there are stopped and wiped by the script). Panics with the logs on failure.
    pub fn start(base_port: u16) -> Cluster {
        Self::start_scoped(base_port, "demo")
    }

    pub fn start_scoped(base_port: u16, scope: &str) -> Cluster {
        // Under /tmp, not $TMPDIR: the postgres user must be able to reach it.
        let dir = PathBuf::from(format!("/tmp/rolegate-test-{base_port}"));
        let started = Instant::now();
        let out = Command::new(script())
            .args(["up", "--dir"])
            .arg(&dir)
            .args(["--base-port", &base_port.to_string(), "--scope", scope])
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster up");
        // From here on Drop cleans up, whatever happens below.
        let mut cluster = Cluster {
            dir,
            base_port,
            scope: scope.to_string(),
            nodes: Vec::new(),
        };
        assert!(
            out.status.success(),
            "scripts/cluster up failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        cluster.nodes = parse_nodes(&stdout).expect("parse scripts/cluster up output");
        eprintln!(
            "cluster on base port {base_port} up in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        cluster
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn base_port(&self) -> u16 {
        self.base_port
    }

    pub fn scope(&self) -> &str {
        &self.scope
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node called `name`; panics if there is none.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn pg_port(&self, name: &str) -> u16 {
        self.node(name).pg_port
    }

    /// The node whose PostgreSQL listens on `port`.
    pub fn node_by_pg_port(&self, port: u16) -> Option<&Node> {
        self.nodes.iter().find(|n| n.pg_port == port)
    }

    pub fn etcd_port(&self) -> u16 {
        self.base_port
    }

    /// `127.0.0.1:<port>`, as rolegate's `[dcs.etcd] endpoints` wants it.
    pub fn etcd_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.etcd_port())
    }

    /// Reads one key with `etcdctl` (v3 API); `None` if it does not exist.
    pub fn etcd_get(&self, key: &str) -> Result<Option<String>> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.etcd_endpoint(), "--dial-timeout=2s"])
            .args(["get", "--print-value-only", key])
            .stdin(Stdio::null())
            .output()
            .context("run etcdctl")?;
        if !out.status.success() {
            bail!(
                "etcdctl get {key}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let value = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        Ok((!value.is_empty()).then_some(value))
    }

    /// `psql -Atc sql` against 127.0.0.1:`port` (any port: a node's or rolegate's).
    #[allow(clippy::unused_self)] // a method so tests read `cluster.psql(..)`
    pub fn psql(&self, port: u16, sql: &str) -> Result<String> {
        psql(port, sql)
    }

    /// SIGTERM the node's Patroni (it stops its PostgreSQL first) and wait until it exited.
    pub fn stop_patroni(&self, name: &str) {
        self.control(&["patroni-stop", name]);
    }

    /// Start the node's Patroni again (it rejoins, as a replica if someone else leads).
    pub fn start_patroni(&self, name: &str) {
        self.control(&["patroni-start", name]);
    }

    /// SIGKILL the node's Patroni only: PostgreSQL keeps running, the member key expires after ttl.
    pub fn kill_patroni(&self, name: &str) {
        self.control(&["patroni-kill", name]);
    }

    /// Stop etcd (SIGTERM), keeping its data.
    pub fn stop_etcd(&self) {
        self.control(&["etcd-stop"]);
    }

    /// Start etcd again on the same data and wait until it is healthy.
    pub fn start_etcd(&self) {
        self.control(&["etcd-start"]);
    }

    fn control(&self, args: &[&str]) {
        let out = Command::new(script())
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/cluster");
        assert!(
            out.status.success(),
            "scripts/cluster {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The last `lines` lines of `<dir>/<file>`, for failure messages.
    pub fn log_tail(&self, file: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join(file)).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for file in ["pg1.log", "pg2.log", "pg3.log"] {
                eprintln!("----- {file} (tail)\n{}", self.log_tail(file, 30));
            }
            // Each rolegate a test spawned logs to `<dir>/<name>.log` (spawn::rolegate).
            let mut logs: Vec<String> = std::fs::read_dir(&self.dir)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
                .filter(|f| f.starts_with("rolegate"))
                .collect();
            logs.sort();
            for file in logs {
                eprintln!("----- {file} (tail)\n{}", self.log_tail(&file, 60));
            }
        }
        let down = Command::new(script())
            .args(["down", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .status();
        if !matches!(down, Ok(s) if s.success()) {
            eprintln!(
                "scripts/cluster down --dir {} failed: {down:?}",
                self.dir.display()
            );
        }
        if std::env::var_os("ROLEGATE_KEEP_TEST_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster")
}

/// Parses `node <name> pg_port=<n> api_port=<n> ...` lines.
fn parse_nodes(stdout: &str) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    for line in stdout.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("node") {
            continue;
        }
        let name = words.next().context("node line without name")?.to_string();
        let (mut pg_port, mut api_port) = (None, None);
        for word in words {
            match word.split_once('=') {
                Some(("pg_port", v)) => pg_port = Some(v.parse()?),
                Some(("api_port", v)) => api_port = Some(v.parse()?),
                _ => {}
            }
        }
        nodes.push(Node {
            name,
            pg_port: pg_port.context("no pg_port")?,
            api_port: api_port.context("no api_port")?,
        });
    }
    if nodes.len() != 3 {
        bail!("expected 3 node lines, got {}:\n{stdout}", nodes.len());
    }
    Ok(nodes)
}
