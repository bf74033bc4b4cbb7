//! Processes a test or bench starts beside the cluster with its own config: rolegate
//! with an arbitrary TOML, HAProxy. Each is killed when its handle drops.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Cluster;

/// A child process killed on drop.
pub struct Proc(Child);

impl Proc {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends `signal` (a `kill` name: HUP, TERM, INT).
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{signal} {}", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// rolegate with `[cluster]`/`[dcs.etcd]` for `cluster` followed by `rest` (listeners,
/// auth...). Config and log are `<dir>/<name>.toml` and `<dir>/<name>.log`. Waits until
/// every port in `ports` accepts.
pub fn rolegate(cluster: &Cluster, name: &str, rest: &str, ports: &[u16]) -> Proc {
    let dir = cluster.dir();
    let rest = without_default_admin_port(rest);
    let text = format!(
        "[cluster]\nscope = \"{}\"\n[dcs.etcd]\nendpoints = [\"{}\"]\n{rest}",
        cluster.scope(),
        cluster.etcd_endpoint(),
    );
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, text).expect("write rolegate config");
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).expect("rolegate log");
    let proc = Proc(
        Command::new(env!("CARGO_BIN_EXE_rolegate"))
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start rolegate"),
    );
    for &p in ports {
        wait_port(p);
    }
    proc
}

/// A pooled (transaction mode, trust auth) primary listener on `pooled` and a
/// passthrough primary listener on `passthrough`.
pub fn primary_listeners(pooled: u16, passthrough: u16) -> String {
    format!(
        "[auth]\ntype = \"trust\"\n\
         [[listener]]\naddr = \"127.0.0.1:{pooled}\"\nrole = \"primary\"\npool_mode = \"transaction\"\npool_size = 20\n\
         [[listener]]\naddr = \"127.0.0.1:{passthrough}\"\nrole = \"primary\"\n"
    )
}

/// HAProxy as the autobase/seed guides configure port 5000: Patroni's `/primary` check
/// every 3 s, fall 3, rise 2, sessions shut down when a server is marked down.
pub fn haproxy(cluster: &Cluster, port: u16) -> Proc {
    use std::fmt::Write as _;
    let mut text = format!(
        "global\n    maxconn 1000\ndefaults\n    mode tcp\n    retries 2\n    timeout client 30m\n    \
         timeout connect 4s\n    timeout server 30m\n    timeout check 5s\n\
         listen primary\n    bind 127.0.0.1:{port}\n    option httpchk GET /primary\n    \
         http-check expect status 200\n    \
         default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions\n"
    );
    for n in cluster.nodes() {
        let _ = writeln!(
            text,
            "    server {} 127.0.0.1:{} maxconn 100 check port {}",
            n.name, n.pg_port, n.api_port
        );
    }
    let config = cluster.dir().join("haproxy.cfg");
    std::fs::write(&config, text).expect("write haproxy config");
    let proc = Proc(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy (scripts/install-deps installs it)"),
    );
    wait_port(port);
    proc
}

pub fn wait_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "port {port} never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The admin server's default port (7000) would clash between tests running at once:
/// unless a test names its own `[admin] http`, the admin server is turned off.
fn without_default_admin_port(rest: &str) -> String {
    if rest.contains("http =") {
        rest.to_owned()
    } else if rest.contains("[admin]") {
        rest.replacen("[admin]\n", "[admin]\nhttp = \"\"\n", 1)
    } else {
        format!("{rest}\n[admin]\nhttp = \"\"\n")
    }
}
