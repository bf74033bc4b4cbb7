//! Pure derivation: [`ClusterState`] -> [`Topology`]. Section 5.2 of the Patroni reference.
//!
//! Decisions where the reference leaves a choice:
//! - 5000 is strict: the leader must already report role `primary`/`master` and state
//!   `running`. A leader still `promoted` or `replica` right after a lock change is not
//!   served (writes would fail with read-only errors anyway).
//! - `replica_ok` does not look at `replication_state` or the timeline: Patroni's own
//!   `/replica` does not either, and archive-only (`nostream`) replicas are caught by the
//!   per-listener lag limit instead.
//! - Quorum voters count as sync: 5002 mirrors Patroni's `/sync` in `on` mode and
//!   `/quorum` in `quorum` mode, so operators on quorum mode still get a sync port.
//!   Note that with `ANY n` a single voter may miss the latest commit.
//! - A member listed in `sync` but tagged `nosync` is not sync: the tag is being applied
//!   and the leader is about to drop it from `synchronous_standby_names`.
//! - The leader's lag is `Some(0)` when a reference position is known (it *is* the
//!   reference), `None` otherwise; it never matters for routing since it is not a replica.
//! - 5002 never falls back to the primary (no `/read-only-sync` behaviour).

use std::collections::BTreeSet;

use super::model::Member;
use super::state::{MemberRecord, MemberRole, SyncMode};
use super::{ClusterState, Topology};

/// Builds the routing view of one DCS state. Pure: same input, same output.
#[must_use]
pub fn derive(state: &ClusterState) -> Topology {
    let ctx = Context::new(state);
    Topology {
        generation: 0,
        revision: state.revision,
        leader: state.leader.clone(),
        members: state.members.values().map(|m| ctx.judge(m)).collect(),
        sync_mode: state.config.synchronous_mode,
        standby_cluster: state.config.standby_cluster,
        paused: state.config.pause || state.members.values().any(|m| m.pause),
        failsafe_mode: state.config.failsafe_mode,
        ttl_secs: state.config.ttl,
        loop_wait_secs: state.config.loop_wait,
        optime: state.optime,
        failover: state
            .failover
            .as_ref()
            .map(|f| (f.leader.clone(), f.member.clone())),
        timeline: ctx
            .leader
            .and_then(|l| l.timeline)
            .or(state.history_timeline),
        dcs_lost: false,
    }
}

/// What every member is judged against.
struct Context<'a> {
    leader: Option<&'a MemberRecord>,
    leader_name: Option<&'a str>,
    standby_cluster: bool,
    /// Lower-cased names from a `sync` key that is current; empty when sync mode is off.
    sync_set: BTreeSet<String>,
    /// The leader's last known WAL position: max(`status.optime`, leader `xlog_location`).
    reference_lsn: Option<u64>,
}

impl<'a> Context<'a> {
    fn new(state: &'a ClusterState) -> Self {
        let leader_name = state.leader.as_deref();
        let leader = leader_name.and_then(|l| state.members.get(l));
        let reference_lsn = state.optime.max(leader.and_then(|l| l.xlog_location));
        Self {
            leader,
            leader_name,
            standby_cluster: state.config.standby_cluster,
            sync_set: sync_set(state),
            reference_lsn,
        }
    }

    fn judge(&self, m: &MemberRecord) -> Member {
        let is_leader = self.leader_name == Some(m.name.as_str());
        let usable = m.state == "running" && m.host.is_some();
        let is_replica = !is_leader && m.role == MemberRole::Replica;
        let listed = self.sync_set.contains(&m.name.to_lowercase());
        Member {
            primary_ok: is_leader
                && usable
                && m.role == MemberRole::Primary
                && !self.standby_cluster,
            replica_ok: is_replica && usable && !m.tags.noloadbalance,
            is_sync: is_replica && listed && !m.tags.nosync,
            lag_bytes: self.lag(m, is_leader),
            record: m.clone(),
        }
    }

    /// Bytes behind the reference; replay position preferred (4.1+) for read freshness.
    fn lag(&self, m: &MemberRecord, is_leader: bool) -> Option<u64> {
        let reference = self.reference_lsn?;
        if is_leader {
            return Some(0);
        }
        let position = m.replay_lsn.or(m.xlog_location)?;
        Some(reference.saturating_sub(position))
    }
}

/// Names in the `sync` key, if sync mode is active and the key names the current leader.
fn sync_set(state: &ClusterState) -> BTreeSet<String> {
    let mode = state.config.synchronous_mode;
    let active = !state.config.standby_cluster && matches!(mode, SyncMode::On | SyncMode::Quorum);
    let leader = state.leader.as_deref().map(str::to_lowercase);
    match &state.sync {
        Some(sync)
            if active
                && leader.is_some()
                && sync.leader.as_deref().map(str::to_lowercase) == leader =>
        {
            sync.sync_standby.iter().map(|n| n.to_lowercase()).collect()
        }
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::state::{FailoverRecord, SyncRecord};

    fn record(
        name: &str,
        role: MemberRole,
        xlog: Option<u64>,
        replay: Option<u64>,
    ) -> MemberRecord {
        MemberRecord {
            host: Some(format!("{name}.db")),
            role,
            state: "running".to_owned(),
            version: Some("4.1.4".to_owned()),
            timeline: Some(4),
            xlog_location: xlog,
            replay_lsn: replay,
            ..MemberRecord::new(name)
        }
    }

    fn cluster(members: Vec<MemberRecord>) -> ClusterState {
        ClusterState {
            leader: Some("pg1".to_owned()),
            members: members.into_iter().map(|m| (m.name.clone(), m)).collect(),
            revision: 9,
            ..ClusterState::default()
        }
    }

    fn lags(t: &Topology) -> Vec<(&str, Option<u64>)> {
        t.members.iter().map(|m| (m.name(), m.lag_bytes)).collect()
    }

    #[test]
    fn lag_uses_max_of_optime_and_leader_xlog_and_prefers_replay() {
        let mut state = cluster(vec![
            record("pg1", MemberRole::Primary, Some(1000), None),
            record("pg2", MemberRole::Replica, Some(990), Some(900)),
            record("pg3", MemberRole::Replica, Some(980), None),
            record("pg4", MemberRole::Replica, None, None),
            record("pg5", MemberRole::Replica, Some(2000), None),
        ]);
        state.optime = Some(800);
        let want = [
            ("pg1", Some(0)),
            ("pg2", Some(100)),
            ("pg3", Some(20)),
            ("pg4", None),
            ("pg5", Some(0)),
        ];
        assert_eq!(lags(&derive(&state)), want);
        state.optime = Some(1100);
        assert_eq!(lags(&derive(&state))[1], ("pg2", Some(200)));
    }

    #[test]
    fn no_reference_means_unknown_lag_everywhere() {
        let state = cluster(vec![
            record("pg1", MemberRole::Primary, None, None),
            record("pg2", MemberRole::Replica, Some(10), Some(10)),
        ]);
        assert_eq!(lags(&derive(&state)), [("pg1", None), ("pg2", None)]);
    }

    #[test]
    fn scalar_fields_are_copied() {
        let mut follower = record("pg2", MemberRole::Replica, None, None);
        follower.pause = true;
        let mut state = cluster(vec![
            record("pg1", MemberRole::Primary, None, None),
            follower,
        ]);
        state.config.failsafe_mode = true;
        state.config.ttl = 20;
        state.config.loop_wait = 5;
        state.history_timeline = Some(7);
        state.failover = Some(FailoverRecord {
            leader: Some("pg1".into()),
            member: Some("pg2".into()),
            scheduled_at: None,
        });
        let t = derive(&state);
        assert_eq!(
            (t.generation, t.revision, t.leader.as_deref()),
            (0, 9, Some("pg1"))
        );
        assert!(t.paused && t.failsafe_mode && !t.standby_cluster);
        assert_eq!((t.ttl_secs, t.loop_wait_secs, t.timeline), (20, 5, Some(4)));
        assert_eq!(t.failover, Some((Some("pg1".into()), Some("pg2".into()))));
    }

    #[test]
    fn timeline_falls_back_to_history() {
        let mut state = cluster(vec![record("pg2", MemberRole::Replica, None, None)]);
        state.history_timeline = Some(7);
        assert_eq!(derive(&state).timeline, Some(7));
    }

    #[test]
    fn sync_names_match_case_insensitively_and_skip_nosync() {
        let mut tagged = record("pg3", MemberRole::Replica, None, None);
        tagged.tags.nosync = true;
        let mut state = cluster(vec![record("PG2", MemberRole::Replica, None, None), tagged]);
        state.leader = Some("Pg1".to_owned());
        state.config.synchronous_mode = SyncMode::On;
        state.sync = Some(SyncRecord {
            leader: Some("pG1".to_owned()),
            sync_standby: vec!["pg2".to_owned(), "PG3".to_owned()],
            quorum: 0,
        });
        let flags: Vec<_> = derive(&state)
            .members
            .iter()
            .map(|m| (m.name().to_owned(), m.is_sync))
            .collect();
        assert_eq!(flags, [("PG2".to_owned(), true), ("pg3".to_owned(), false)]);
    }
}
