//! Runs the rolegate binary under test in front of a `Cluster`.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Cluster;

/// How long rolegate may take to open its listeners.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A listener role, as written in rolegate's config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    Sync,
    Async,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::Sync => "sync",
            Role::Async => "async",
        }
    }
}

/// The four listeners on `base + 31..=34`: primary, replica, sync, async.
pub fn standard_listeners(base: u16) -> [(u16, Role); 4] {
    [
        (base + 31, Role::Primary),
        (base + 32, Role::Replica),
        (base + 33, Role::Sync),
        (base + 34, Role::Async),
    ]
}

/// A running rolegate; `Drop` kills it. Its log is `<cluster dir>/rolegate.log`.
pub struct Rolegate {
    child: Child,
    listeners: Vec<(u16, Role)>,
    log_path: PathBuf,
}

impl Rolegate {
    /// Writes `<cluster dir>/rolegate.toml`, spawns `rolegate --config` and waits until every
    /// listener accepts TCP connections. Panics with the log if it exits or never listens.
    pub fn start(cluster: &Cluster, listeners: &[(u16, Role)]) -> Rolegate {
        let config_path = cluster.dir().join("rolegate.toml");
        std::fs::write(&config_path, config_text(cluster, listeners)).expect("write config");
        let log_path = cluster.dir().join("rolegate.log");
        let log = File::create(&log_path).expect("create rolegate.log");
        let child = Command::new(env!("CARGO_BIN_EXE_rolegate"))
            .arg("--config")
            .arg(&config_path)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn rolegate");
        let mut rolegate = Rolegate {
            child,
            listeners: listeners.to_vec(),
            log_path,
        };
        rolegate.wait_listening();
        rolegate
    }

    fn wait_listening(&mut self) {
        let start = Instant::now();
        for &(port, role) in &self.listeners {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!(
                        "rolegate exited ({status}) before listening:\n{}",
                        self.log()
                    );
                }
                assert!(
                    start.elapsed() < START_TIMEOUT,
                    "rolegate {role:?} listener {addr} not accepting after {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The port of the (first) listener with `role`.
    pub fn port(&self, role: Role) -> u16 {
        self.listeners
            .iter()
            .find(|(_, r)| *r == role)
            .unwrap_or_else(|| panic!("no {role:?} listener"))
            .0
    }

    /// Everything rolegate logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Rolegate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The TOML config for `listeners` in front of `cluster`.
fn config_text(cluster: &Cluster, listeners: &[(u16, Role)]) -> String {
    let mut text = format!(
        "[cluster]\nscope = \"{}\"\nnamespace = \"/service/\"\n\n\
         [dcs.etcd]\nendpoints = [\"{}\"]\n",
        cluster.scope(),
        cluster.etcd_endpoint()
    );
    // The admin server's default port (7000) would clash between tests running at once.
    text.push_str("\n[admin]\nhttp = \"\"\n");
    for &(port, role) in listeners {
        let _ = write!(
            text,
            "\n[[listener]]\naddr = \"127.0.0.1:{port}\"\nrole = \"{}\"\n",
            role.as_str()
        );
        if role == Role::Replica {
            text.push_str("balance = \"round-robin\"\n");
        }
    }
    text
}
