//! The cluster as Patroni wrote it into the DCS, parsed but not yet judged.
//!
//! `dcs::patroni` fills these records from raw keys; `derive` turns them into a
//! [`Topology`](super::Topology). Nothing here knows about etcd or sockets.

use std::collections::BTreeMap;

/// `role` field of a member key. Patroni <= 3.x writes `master`, 4.x writes `primary`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberRole {
    Primary,
    Replica,
    StandbyLeader,
    /// `pg_ctl promote` issued, promotion not finished: still read-only.
    Promoted,
    /// Being stopped, or stopped, as an ex-primary.
    Demoted,
    Uninitialized,
    /// Anything else, kept verbatim for display.
    Other(String),
}

impl MemberRole {
    /// Maps Patroni's spelling (`master` is a synonym of `primary`).
    #[must_use]
    pub fn parse(s: &str) -> Self {
        match s {
            "primary" | "master" => Self::Primary,
            "replica" => Self::Replica,
            "standby_leader" => Self::StandbyLeader,
            "promoted" => Self::Promoted,
            "demoted" => Self::Demoted,
            "uninitialized" => Self::Uninitialized,
            other => Self::Other(other.to_owned()),
        }
    }

    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Self::Primary => "primary",
            Self::Replica => "replica",
            Self::StandbyLeader => "standby_leader",
            Self::Promoted => "promoted",
            Self::Demoted => "demoted",
            Self::Uninitialized => "uninitialized",
            Self::Other(s) => s,
        }
    }
}

/// Member tags that matter for routing; the rest are kept raw for display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags {
    /// Excluded from every replica port (Patroni's `/replica` answers 503).
    pub noloadbalance: bool,
    /// Never synchronous (`nosync: true` or `sync_priority <= 0`).
    pub nosync: bool,
    /// Never becomes leader; irrelevant for routing, shown on the stats page.
    pub nofailover: bool,
    /// Every tag as Patroni wrote it, values rendered as strings.
    pub raw: BTreeMap<String, String>,
}

/// One `members/<name>` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub name: String,
    /// Host and port from `conn_url` (userinfo stripped, `[v6]` unbracketed, default port 5432).
    /// `None` when the key has no usable `conn_url`: such a member is never routable.
    pub host: Option<String>,
    pub port: u16,
    pub api_url: Option<String>,
    pub role: MemberRole,
    /// PostgreSQL state string, `running` when usable.
    pub state: String,
    pub version: Option<String>,
    pub timeline: Option<u64>,
    /// Primary: current WAL position; replica: max(receive, replay).
    pub xlog_location: Option<u64>,
    /// 4.1+: replay position on standbys; preferred for read freshness.
    pub replay_lsn: Option<u64>,
    pub receive_lsn: Option<u64>,
    /// `streaming` / `in archive recovery`; absent before Patroni 3.0.4 and on the primary.
    pub replication_state: Option<String>,
    pub tags: Tags,
    pub pause: bool,
}

impl MemberRecord {
    /// A member known only by name: no address, unknown role and state, so never routable
    /// until the fields say otherwise.
    #[must_use]
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            host: None,
            port: 5432,
            api_url: None,
            role: MemberRole::Other(String::new()),
            state: String::new(),
            version: None,
            timeline: None,
            xlog_location: None,
            replay_lsn: None,
            receive_lsn: None,
            replication_state: None,
            tags: Tags::default(),
            pause: false,
        }
    }
}

/// The `sync` key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncRecord {
    pub leader: Option<String>,
    /// Lower-cased member names from `sync_standby` (voters in quorum mode).
    pub sync_standby: Vec<String>,
    /// 4.x only; absent = 0.
    pub quorum: u32,
}

/// `config.synchronous_mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncMode {
    #[default]
    Off,
    On,
    Quorum,
}

/// The parts of the `config` key that routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigRecord {
    pub ttl: u64,
    pub loop_wait: u64,
    pub synchronous_mode: SyncMode,
    /// `standby_cluster` has any of host/port/restore_command.
    pub standby_cluster: bool,
    pub pause: bool,
    pub failsafe_mode: bool,
    pub maximum_lag_on_failover: u64,
}

impl Default for ConfigRecord {
    fn default() -> Self {
        Self {
            ttl: 30,
            loop_wait: 10,
            synchronous_mode: SyncMode::Off,
            standby_cluster: false,
            pause: false,
            failsafe_mode: false,
            maximum_lag_on_failover: 1_048_576,
        }
    }
}

/// A non-empty `failover` key: a switchover (`leader` set) or manual failover (only `member`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailoverRecord {
    pub leader: Option<String>,
    pub member: Option<String>,
    pub scheduled_at: Option<String>,
}

/// Everything read from one consistent DCS view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Trimmed value of the `leader` key; `None` when absent or empty (cluster unlocked).
    pub leader: Option<String>,
    pub members: BTreeMap<String, MemberRecord>,
    pub sync: Option<SyncRecord>,
    pub config: ConfigRecord,
    /// `status.optime` (or legacy `optime/leader`): the leader's last reported WAL position.
    pub optime: Option<u64>,
    pub failover: Option<FailoverRecord>,
    /// Timeline from `history` (last entry + 1), when known.
    pub history_timeline: Option<u64>,
    /// etcd revision this view reflects.
    pub revision: i64,
}
