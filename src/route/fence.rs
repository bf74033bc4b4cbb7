//! Fencing: when a member leaves a listener's role set, its sessions on that listener are
//! killed at once, with a message saying what changed.

use std::sync::Arc;

use super::{KillReason, Listener};
use crate::topology::{Service, Topology, TopologyStore};

/// Applies `topology` to every listener: kills sessions on members that no longer serve it.
/// Returns how many sessions were signalled. `wake` runs when a fence fired: it wakes the
/// sessions that watch their fence through another waker (pooled sessions, see
/// `ClientRegistry::wake_all`).
pub fn apply(listeners: &[Arc<Listener>], topology: &Topology, wake: &dyn Fn()) -> usize {
    let mut killed = 0;
    for l in listeners {
        if let Some(p) = &l.pool {
            p.pools.drain_unless(|member| l.serves(topology, member));
        }
        killed += l.sessions.fence(
            |member| l.serves(topology, member),
            |member| KillReason {
                member: member.to_owned(),
                message: why_not(topology, l, member),
            },
        );
    }
    if killed > 0 {
        wake();
    }
    killed
}

/// Follows the store and fences on every publish, until the store is dropped (`wake`: see
/// [`apply`]).
pub async fn run(store: Arc<TopologyStore>, listeners: Vec<Arc<Listener>>, wake: impl Fn()) {
    let mut changes = store.subscribe();
    while changes.changed().await.is_ok() {
        let topology = store.load();
        let killed = apply(&listeners, &topology, &wake);
        if killed > 0 {
            tracing::warn!(
                generation = topology.generation,
                killed,
                "killed sessions on members that changed role"
            );
        }
    }
}

/// A sentence for the client: why `member` no longer serves `listener`.
#[must_use]
pub fn why_not(topology: &Topology, listener: &Listener, member: &str) -> String {
    let role = listener.service;
    let head = format!(
        "rolegate: member {member} no longer serves the {role} role of listener {}",
        listener.name
    );
    let Some(m) = topology.member(member) else {
        return format!("{head}: it is gone from the DCS (Patroni stopped or its lease expired)");
    };
    let cause = if role == Service::Primary {
        match topology.leader.as_deref() {
            None => "the cluster has no leader (failover in progress)".to_owned(),
            Some(l) if l != member => format!("the leader is now {l}"),
            Some(_) => format!(
                "it holds the leader key but is {} / {}",
                m.record.role.as_str(),
                m.record.state
            ),
        }
    } else if topology.leader.as_deref() == Some(member) {
        "it became the leader".to_owned()
    } else if m.record.state != "running" {
        format!("it is {}", m.record.state)
    } else if m.record.tags.noloadbalance {
        "it has the noloadbalance tag".to_owned()
    } else if let (Some(lag), Some(max)) = (m.lag_bytes, listener.tuning.load().max_lag) {
        if lag > max {
            format!("it is {lag} bytes behind the leader (max_lag {max})")
        } else {
            sync_cause(role, m.is_sync)
        }
    } else if !m.replica_ok {
        format!("its role is {}", m.record.role.as_str())
    } else {
        sync_cause(role, m.is_sync)
    };
    format!("{head}: {cause}")
}

fn sync_cause(role: Service, is_sync: bool) -> String {
    match (role, is_sync) {
        (Service::Sync, false) => "it is no longer a synchronous standby".into(),
        (Service::Async, true) => "it became a synchronous standby".into(),
        _ => "its state changed".into(),
    }
}
