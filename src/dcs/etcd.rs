//! etcd v3 source: one range read of the Patroni prefix, then one prefix watch from the
//! read's revision + 1. Every change is applied to a raw key map, parsed, derived and
//! published. On watch loss, compaction, or etcd restart: re-read and re-watch, with
//! backoff. Runs under a supervisor so even a panic inside the client only restarts it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, TlsOptions, WatchOptions,
};

use super::patroni::cluster_from_keys;
use crate::config::EtcdConfig;
use crate::topology::{derive, Topology, TopologyStore};

/// Why one read-and-watch round ended.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("watch canceled by etcd: {0}")]
    Canceled(String),
    #[error("watch start revision compacted (compact revision {0})")]
    Compacted(i64),
    #[error("watch stream ended")]
    Ended,
    #[error("cannot read TLS file {0}: {1}")]
    TlsFile(String, std::io::Error),
}

/// Follows the cluster under `prefix` forever, publishing into `store`.
pub async fn run(config: EtcdConfig, prefix: String, store: Arc<TopologyStore>) {
    tokio::spawn(watchdog(store.clone()));
    let mut backoff = Backoff::new(config.retry_backoff_max.0);
    loop {
        let round = tokio::spawn(watch_round(config.clone(), prefix.clone(), store.clone()));
        let result = match round.await {
            Ok(r) => r,
            Err(e) => Err((
                false,
                WatchError::Canceled(format!("watch task failed: {e}")),
            )),
        };
        store.dcs.set_watch_up(false);
        let (healthy, err) = match result {
            Ok(()) => (true, WatchError::Ended),
            Err((healthy, e)) => (healthy, e),
        };
        if healthy {
            backoff.reset();
        }
        let wait = backoff.next();
        tracing::warn!(error = %err, retry_in = ?wait, "lost the etcd watch; re-reading and re-watching");
        tokio::time::sleep(wait).await;
    }
}

/// How often a healthy watch proves the DCS still answers (a watch on a quiet cluster
/// may carry no events for a long time).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Marks the view stale once the DCS has not answered for longer than Patroni's `ttl`:
/// by then a primary that lost the DCS has demoted itself and another member may have
/// taken the leader key, so writes must not go to the last known primary any more.
async fn watchdog(store: Arc<TopologyStore>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        let current = store.load();
        let (Some(last), false) = (store.last_contact(), current.dcs_lost) else {
            continue;
        };
        let ttl = Duration::from_secs(current.ttl_secs.max(1));
        if last.elapsed() > ttl {
            tracing::error!(silent = ?last.elapsed(), ?ttl, "no answer from the DCS for longer than Patroni's ttl: the last primary may have been demoted; holding writes until the DCS answers");
            let mut stale = (*current).clone();
            stale.dcs_lost = true;
            store.publish(stale);
        }
    }
}

/// Doubling backoff from 50ms to `max`.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Self {
            next: Duration::from_millis(50),
            max,
        }
    }
    fn reset(&mut self) {
        self.next = Duration::from_millis(50);
    }
    fn next(&mut self) -> Duration {
        let now = self.next.min(self.max);
        self.next = (self.next * 2).min(self.max);
        now
    }
}

async fn connect(config: &EtcdConfig) -> Result<Client, WatchError> {
    if config.keepalive_interval.0 < Duration::from_secs(5) {
        tracing::warn!(
            interval = ?config.keepalive_interval.0,
            "dcs.etcd.keepalive_interval is below etcd's default --grpc-keepalive-min-time (5s); \
             etcd may answer with GOAWAY and break the watch"
        );
    }
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(config.dial_timeout.0)
        .with_keep_alive(config.keepalive_interval.0, config.keepalive_timeout.0)
        .with_keep_alive_while_idle(true)
        // A watch on an etcd member that lost quorum is cancelled instead of going silent.
        .with_require_leader(true);
    if let (Some(u), Some(p)) = (&config.username, &config.password) {
        opts = opts.with_user(u.clone(), p.expose().to_owned());
    }
    if let Some(tls) = &config.tls {
        let read = |p: &std::path::PathBuf| {
            std::fs::read(p).map_err(|e| WatchError::TlsFile(p.display().to_string(), e))
        };
        let mut t = TlsOptions::new();
        if let Some(ca) = &tls.ca_file {
            t = t.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(c), Some(k)) = (&tls.cert_file, &tls.key_file) {
            t = t.identity(Identity::from_pem(read(c)?, read(k)?));
        }
        if let Some(d) = &tls.domain {
            t = t.domain_name(d.clone());
        }
        opts = opts.with_tls(t);
    }
    Ok(Client::connect(&config.endpoints, Some(opts)).await?)
}

/// One round: connect, read, watch until something breaks. The error says whether the
/// round got as far as a working watch (then backoff restarts from the bottom).
async fn watch_round(
    config: EtcdConfig,
    prefix: String,
    store: Arc<TopologyStore>,
) -> Result<(), (bool, WatchError)> {
    let mut client = connect(&config).await.map_err(|e| (false, e))?;
    let resp = client
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(|e| (false, e.into()))?;
    let revision = resp
        .header()
        .map_or(0, etcd_client::ResponseHeader::revision);
    let mut keys = BTreeMap::new();
    for kv in resp.kvs() {
        if let Some(k) = relative(kv.key(), &prefix) {
            keys.insert(k, kv.value().to_vec());
        }
    }
    store.touch();
    store
        .dcs
        .event(format!("read {} keys at revision {revision}", keys.len()));
    publish(&store, &keys, revision);
    tracing::info!(revision, keys = keys.len(), %prefix, "read cluster state from etcd; watching");
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(revision + 1)
        .with_progress_notify();
    let mut stream = client
        .watch(prefix.as_str(), Some(opts))
        .await
        .map_err(|e| (false, e.into()))?;
    store.dcs.set_watch_up(true);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let leader_key = format!("{prefix}leader");
    loop {
        let msg = tokio::select! {
            m = stream.message() => m.map_err(|e| (true, e.into()))?,
            _ = heartbeat.tick() => {
                client
                    .get(leader_key.as_str(), Some(GetOptions::new().with_count_only()))
                    .await
                    .map_err(|e| (true, e.into()))?;
                store.touch();
                continue;
            }
        };
        let Some(resp) = msg else {
            return Err((true, WatchError::Ended));
        };
        store.touch();
        if resp.compact_revision() > 0 {
            return Err((true, WatchError::Compacted(resp.compact_revision())));
        }
        if resp.canceled() {
            return Err((true, WatchError::Canceled(resp.cancel_reason().to_owned())));
        }
        if resp.events().is_empty() {
            continue; // created or progress notification
        }
        let mut rev = revision;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let Some(k) = relative(kv.key(), &prefix) else {
                continue;
            };
            rev = rev.max(kv.mod_revision());
            match ev.event_type() {
                EventType::Put => {
                    store.dcs.event(format!("put {k}"));
                    keys.insert(k, kv.value().to_vec())
                }
                EventType::Delete => {
                    store.dcs.event(format!("delete {k}"));
                    keys.remove(&k)
                }
            };
        }
        publish(&store, &keys, rev);
    }
}

fn relative(key: &[u8], prefix: &str) -> Option<String> {
    let rest = key.strip_prefix(prefix.as_bytes())?;
    std::str::from_utf8(rest).ok().map(str::to_owned)
}

fn publish(store: &TopologyStore, keys: &BTreeMap<String, Vec<u8>>, revision: i64) {
    let topology: Topology = derive(&cluster_from_keys(keys, revision));
    let before = store.load();
    let generation = store.publish(topology);
    if generation != before.generation {
        log_change(&before, &store.load());
    }
}

fn log_change(before: &Topology, after: &Topology) {
    use crate::topology::Service::{Async, Primary, Replica, Sync};
    let names = |t: &Topology, s| {
        t.candidates(s, None)
            .map(|m| m.name().to_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let sets = |t: &Topology| {
        (
            t.leader.clone(),
            [Primary, Replica, Sync, Async].map(|s| names(t, s)),
            t.failover.clone(),
        )
    };
    let (leader, [primary, replicas, sync, r#async], failover) = sets(after);
    if sets(before)
        == (
            leader.clone(),
            [
                primary.clone(),
                replicas.clone(),
                sync.clone(),
                r#async.clone(),
            ],
            failover.clone(),
        )
    {
        // Members' positions and the like: routing is unchanged.
        tracing::debug!(
            generation = after.generation,
            revision = after.revision,
            "topology refreshed"
        );
        return;
    }
    tracing::info!(
        generation = after.generation,
        revision = after.revision,
        leader = leader.as_deref().unwrap_or("-"),
        %primary,
        %replicas,
        %sync,
        %r#async,
        was_primary = %names(before, Primary),
        switchover = ?failover,
        "routing changed"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn silent_dcs_past_ttl_drops_the_primary_until_it_answers() {
        use crate::topology::Service;
        let store = Arc::new(TopologyStore::new());
        let keys: BTreeMap<String, Vec<u8>> = [
            ("leader", "pg1"),
            ("config", r#"{"ttl":1}"#),
            ("members/pg1", r#"{"conn_url":"postgres://127.0.0.1:1/postgres","role":"primary","state":"running"}"#),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.as_bytes().to_vec()))
        .collect();
        store.touch();
        publish(&store, &keys, 1);
        assert!(store.load().primary().is_some());
        tokio::spawn(watchdog(store.clone()));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!store.load().dcs_lost, "within ttl the last view stands");
        tokio::time::sleep(Duration::from_millis(900)).await;
        let t = store.load();
        assert!(t.dcs_lost);
        assert!(t.primary().is_none() && t.candidates(Service::Primary, None).next().is_none());
        assert!(t.leader_changing(), "primary listeners hold writes");
        // The DCS answers again: a fresh read publishes a live view.
        store.touch();
        publish(&store, &keys, 2);
        assert!(!store.load().dcs_lost && store.load().primary().is_some());
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(300));
        let got: Vec<_> = (0..5).map(|_| b.next().as_millis()).collect();
        assert_eq!(got, [50, 100, 200, 300, 300]);
        b.reset();
        assert_eq!(b.next().as_millis(), 50);
    }

    #[test]
    fn keys_are_made_relative_to_the_prefix() {
        assert_eq!(
            relative(b"/service/demo/members/pg1", "/service/demo/"),
            Some("members/pg1".into())
        );
        assert_eq!(relative(b"/service/other/leader", "/service/demo/"), None);
        assert_eq!(relative(b"/service/demo/\xff", "/service/demo/"), None);
    }
}
