//! Switchover timing against a real cluster: how fast does rolegate follow Patroni?
//!
//! Starts etcd + three Patroni nodes + rolegate (tests/cluster), then performs switchovers
//! through Patroni's REST API while
//! - an `etcdctl watch` timestamps every DCS event as it is delivered,
//! - a session held on the old primary through the primary port waits to be killed,
//! - a poller opens a fresh connection through the primary port every few ms and asks
//!   `inet_server_port()`.
//!
//! It prints, per switchover: when the old primary became unfit in the DCS -> when its
//! session was killed; when the new leader became fit (leader key + role primary + running)
//! -> when the first new connection through the primary port reached it.
//! Run: `cargo bench --bench switchover` (ROLEGATE_SWITCHOVERS=N, default 3).

#[path = "../tests/cluster/mod.rs"]
mod cluster;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{standard_listeners, Cluster, Role, Rolegate, Session};

type Events = Arc<Mutex<Vec<(Instant, String, Option<String>)>>>;

fn main() {
    let rounds: usize = std::env::var("ROLEGATE_SWITCHOVERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let base = 24_000;
    let cluster = Cluster::start(base);
    let rg = Rolegate::start(&cluster, &standard_listeners(base));
    let primary_port = rg.port(Role::Primary);
    let events = watch_events(&cluster);
    let mut rows = Vec::new();
    for i in 0..rounds {
        cluster.wait_healthy(Duration::from_secs(60));
        let old = cluster.leader().expect("leader");
        let old_port = cluster.pg_port(&old);
        let held = Session::connect(primary_port).expect("session through the primary port");
        assert_eq!(held.server().expect("server").0, old_port);
        let close_watch = watch_close(held);
        let polls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let poller = spawn_poller(primary_port, polls.clone(), stop.clone());
        let from = events.lock().unwrap().len();
        let t0 = Instant::now();
        cluster.switchover(None).expect("switchover");
        let (killed, why) = closed_at(close_watch);
        let new = cluster.leader().expect("new leader");
        let new_port = cluster.pg_port(&new);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline
            && !polls.lock().unwrap().iter().any(|(_, p)| *p == new_port)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::Relaxed);
        poller.join().expect("poller");
        let ev = events.lock().unwrap().clone();
        let unfit = first_time(&ev, from, |s| !fit(s, &old));
        let fit_at = first_time(&ev, from, |s| fit(s, &new));
        let routed = polls
            .lock()
            .unwrap()
            .iter()
            .find(|(_, p)| *p == new_port)
            .map(|(t, _)| *t);
        let ms = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => format!(
                "{:.1}",
                b.saturating_duration_since(a).as_secs_f64() * 1000.0
            ),
            _ => "n/a".into(),
        };
        println!(
            "switchover {}: {old} -> {new}: kill after unfit {} ms ({why}); route after fit {} ms; \
             primary port unavailable (unfit -> routed) {} ms; whole switchover {} ms",
            i + 1,
            ms(unfit, killed),
            ms(fit_at, routed),
            ms(unfit, routed),
            ms(Some(t0), routed),
        );
        rows.push((ms(unfit, killed), ms(fit_at, routed)));
    }
    println!("summary (kill ms, route ms): {rows:?}");
    for i in 0..rounds {
        sync_change(&cluster, &rg, &events, i + 1);
    }
    drop(rg);
    drop(cluster);
}

/// Waits (in a thread) for the server to end `held`; see [`closed_at`].
fn watch_close(
    mut held: Session,
) -> std::thread::JoinHandle<anyhow::Result<(Instant, Option<String>)>> {
    std::thread::spawn(move || {
        held.wait_closed(Duration::from_secs(60))
            .map(|e| (Instant::now(), e.map(|e| e.to_string())))
    })
}

/// When the session ended and the error that ended it.
fn closed_at(
    watch: std::thread::JoinHandle<anyhow::Result<(Instant, Option<String>)>>,
) -> (Option<Instant>, String) {
    match watch.join().expect("close watch thread") {
        Ok((t, why)) => (Some(t), why.unwrap_or_else(|| "closed".into())),
        Err(e) => (None, e.to_string()),
    }
}

/// `b - a` in milliseconds, negative when `b` came first.
fn signed_ms(a: Option<Instant>, b: Option<Instant>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => format!("{:.1}", (b - a).as_secs_f64() * 1000.0),
        (Some(a), Some(b)) => format!("-{:.1}", (a - b).as_secs_f64() * 1000.0),
        _ => "n/a".into(),
    }
}

/// Moves the sync standby with the `nosync` tag while PostgreSQL keeps running, so only
/// rolegate can end the session held on it through the sync port: this times rolegate's
/// own fencing from the DCS event.
fn sync_change(cluster: &Cluster, rg: &Rolegate, events: &Events, round: usize) {
    let view = cluster.wait_healthy(Duration::from_secs(60));
    let sync = view.sync_standbys()[0].name.clone();
    let held = Session::connect(rg.port(Role::Sync)).expect("session through the sync port");
    assert_eq!(held.server().expect("server").0, cluster.pg_port(&sync));
    let from = events.lock().unwrap().len();
    let close_watch = watch_close(held);
    cluster.set_nosync(&sync, true).expect("set nosync");
    let (killed, why) = closed_at(close_watch);
    let ev = events.lock().unwrap().clone();
    let lower = sync.to_lowercase();
    let unfit = first_time(&ev, from, |s| {
        let member = member(s, &sync);
        let tagged = member["tags"]["nosync"].as_bool() == Some(true);
        let listed = s.get("sync").is_some_and(|v| {
            v.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .any(|n| n == lower)
        });
        tagged || !listed
    });
    println!(
        "sync change {round}: {sync} -> async: session killed {} ms after the DCS event ({why})",
        signed_ms(unfit, killed)
    );
    cluster.set_nosync(&sync, false).expect("clear nosync");
}

fn member(state: &BTreeMap<String, String>, name: &str) -> serde_json::Value {
    state
        .get(&format!("members/{name}"))
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or_default()
}

/// Whether `state` (relative key -> value) shows `name` as a routable primary.
fn fit(state: &BTreeMap<String, String>, name: &str) -> bool {
    let m = member(state, name);
    state.get("leader").map(String::as_str) == Some(name)
        && m["role"] == "primary"
        && m["state"] == "running"
}

/// Replays all events and returns the time of the first state at or after event `from`
/// that satisfies `pred`.
fn first_time(
    events: &[(Instant, String, Option<String>)],
    from: usize,
    pred: impl Fn(&BTreeMap<String, String>) -> bool,
) -> Option<Instant> {
    let mut state = BTreeMap::new();
    for (i, (t, k, v)) in events.iter().enumerate() {
        match v {
            Some(v) => state.insert(k.clone(), v.clone()),
            None => state.remove(k),
        };
        if i >= from && pred(&state) {
            return Some(*t);
        }
    }
    None
}

/// Opens a fresh connection through `port` in a loop, recording (time answered, server port).
fn spawn_poller(
    port: u16,
    polls: Arc<Mutex<Vec<(Instant, u16)>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(s) = Session::connect(port) {
                if let Ok((p, _)) = s.server() {
                    polls.lock().unwrap().push((Instant::now(), p));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// `etcdctl watch --prefix --rev 1` on the cluster's keys: the whole history first (so
/// replays see whole states), then every new event timestamped on arrival.
fn watch_events(cluster: &Cluster) -> Events {
    let events: Events = Arc::default();
    let prefix = format!("/service/{}/", cluster.scope());
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &cluster.etcd_endpoint(),
            "watch",
            "--prefix",
            "--rev",
            "1",
            &prefix,
            "-w",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl watch");
    let out = child.stdout.take().expect("stdout");
    let ev = events.clone();
    std::thread::spawn(move || {
        let _child = child; // killed with the process
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let now = Instant::now();
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            for e in json["Events"].as_array().into_iter().flatten() {
                let key = b64(e["kv"]["key"].as_str().unwrap_or(""));
                let key = key.strip_prefix(prefix.as_str()).unwrap_or(&key).to_owned();
                let value = (e["type"].as_i64().unwrap_or(0) == 0)
                    .then(|| b64(e["kv"]["value"].as_str().unwrap_or("")));
                ev.lock().unwrap().push((now, key, value));
            }
        }
    });
    // Let the history replay arrive before any switchover starts.
    std::thread::sleep(Duration::from_millis(500));
    events
}

fn b64(s: &str) -> String {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
