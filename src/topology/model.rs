//! The published, immutable view of the cluster that routing reads.

use std::fmt;

use super::state::{MemberRecord, MemberRole, SyncMode};

/// What a listener serves: the four autobase ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// 5000: the leader, read/write.
    Primary,
    /// 5001: every healthy replica.
    Replica,
    /// 5002: synchronous standbys only.
    Sync,
    /// 5003: asynchronous replicas only.
    Async,
}

impl Service {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
            Self::Sync => "sync",
            Self::Async => "async",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A member with the judgements routing needs already made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub record: MemberRecord,
    /// Holds the leader key, has role primary and state running, has a `conn_url`,
    /// and the cluster is not a standby cluster.
    pub primary_ok: bool,
    /// Running replica, not the leader, no `noloadbalance`, has a `conn_url`
    /// (lag is checked per listener, see [`Topology::candidates`]).
    pub replica_ok: bool,
    /// Named in a `sync` key whose leader is the current leader (sync mode on or quorum).
    pub is_sync: bool,
    /// Bytes behind the leader's last known WAL position; `None` when unknown.
    pub lag_bytes: Option<u64>,
}

impl Member {
    #[must_use]
    pub fn name(&self) -> &str {
        &self.record.name
    }

    /// `host:port` to connect to, when the member has a `conn_url`.
    #[must_use]
    pub fn addr(&self) -> Option<(&str, u16)> {
        self.record.host.as_deref().map(|h| (h, self.record.port))
    }

    fn within_lag(&self, max_lag: Option<u64>) -> bool {
        match (max_lag, self.lag_bytes) {
            (Some(max), Some(lag)) => lag <= max,
            // Unknown lag is not lagging, as in Patroni's own `/replica?lag=`.
            _ => true,
        }
    }
}

/// One consistent, immutable cluster view. Routing decides on exactly one of these.
// Independent facts read from the DCS, not states of one machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    /// Assigned by the store on publish; strictly increasing.
    pub generation: u64,
    /// etcd revision the view was built from.
    pub revision: i64,
    /// Value of the leader key (may name a member that is not routable).
    pub leader: Option<String>,
    /// Members sorted by name.
    pub members: Vec<Member>,
    pub sync_mode: SyncMode,
    pub standby_cluster: bool,
    pub paused: bool,
    pub failsafe_mode: bool,
    /// Patroni's `ttl`: how long an old primary may stay writable without the DCS.
    pub ttl_secs: u64,
    pub loop_wait_secs: u64,
    /// Leader's last WAL position (`status.optime`).
    pub optime: Option<u64>,
    /// A pending switchover/failover: (from, to).
    pub failover: Option<(Option<String>, Option<String>)>,
    pub timeline: Option<u64>,
    /// No DCS contact for longer than `ttl`: Patroni has demoted (or may have replaced)
    /// the leader by now, so this view names no primary. Replicas are still served.
    pub dcs_lost: bool,
}

impl Topology {
    /// The member port 5000 may use, if any.
    #[must_use]
    pub fn primary(&self) -> Option<&Member> {
        self.members.iter().find(|m| m.primary_ok && !self.dcs_lost)
    }

    #[must_use]
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.record.name == name)
    }

    /// Members a listener of `service` may route to, in name order.
    /// `max_lag` (bytes) applies to the replica services only.
    pub fn candidates(
        &self,
        service: Service,
        max_lag: Option<u64>,
    ) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(move |m| match service {
            Service::Primary => m.primary_ok && !self.dcs_lost,
            Service::Replica => m.replica_ok && m.within_lag(max_lag),
            Service::Sync => m.replica_ok && m.is_sync && m.within_lag(max_lag),
            Service::Async => m.replica_ok && !m.is_sync && m.within_lag(max_lag),
        })
    }

    /// The leader is being switched away from `name`: a `failover` key names it as the
    /// leader to leave. It still holds the key (its sessions may finish), but new work
    /// should wait for its successor.
    #[must_use]
    pub fn leaving(&self, name: &str) -> bool {
        matches!(&self.failover, Some((Some(from), to)) if from == name && to.as_deref() != Some(name))
            && self.leader.as_deref() == Some(name)
    }

    /// The leader-key holder while it is being promoted: it holds the key and runs, but
    /// its member key does not say `primary` yet (Patroni writes that on its next loop,
    /// seconds after the promotion itself finishes). Pooling listeners may use it once
    /// a server connection to it reports `in_hot_standby = off`; nothing else may.
    #[must_use]
    pub fn promoting(&self) -> Option<&Member> {
        if self.standby_cluster || self.dcs_lost || self.primary().is_some() {
            return None;
        }
        let leader = self.member(self.leader.as_deref()?)?;
        let role_ok = matches!(
            leader.record.role,
            MemberRole::Promoted | MemberRole::Replica | MemberRole::Primary
        );
        (role_ok && leader.record.state == "running" && leader.addr().is_some()).then_some(leader)
    }

    /// The leader is changing: a switchover or failover is pending, or no member can
    /// take writes (no leader key, or its holder is not yet a running primary).
    #[must_use]
    pub fn leader_changing(&self) -> bool {
        self.failover.is_some() || self.primary().is_none()
    }

    /// Whether `name` is in the candidate set of `service`.
    #[must_use]
    pub fn serves(&self, service: Service, max_lag: Option<u64>, name: &str) -> bool {
        self.candidates(service, max_lag).any(|m| m.name() == name)
    }
}
