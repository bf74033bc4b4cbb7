//! `/ready` and the `/role/*` checks for keepalived, vip-manager and load balancers: each
//! answers 200 or 503 with a one-line JSON reason.

use std::time::Duration;

use serde::Serialize;

use super::views::role_set;
use super::AdminState;
use crate::topology::{Service, Topology};

/// The answer of a check.
#[derive(Debug, Serialize)]
pub struct Check {
    pub ok: bool,
    pub reason: String,
    /// Members of the role set (role checks only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
}

/// Why the DCS view cannot be trusted now, if it cannot.
fn stale(state: &AdminState, t: &Topology) -> Option<String> {
    if t.generation == 0 {
        return Some("rolegate has not read the cluster state from the DCS yet".into());
    }
    if t.dcs_lost {
        return Some("the DCS has not answered for longer than Patroni's ttl".into());
    }
    let ttl = Duration::from_secs(t.ttl_secs.max(1));
    match state.topology.last_contact() {
        None => Some("no answer from the DCS yet".into()),
        Some(at) if at.elapsed() > ttl => Some(format!(
            "the DCS has not answered for {:.1}s (ttl {}s)",
            at.elapsed().as_secs_f64(),
            t.ttl_secs
        )),
        Some(_) => None,
    }
}

/// `/ready`: the DCS view is fresh and the listeners are bound.
#[must_use]
pub fn ready(state: &AdminState) -> Check {
    let t = state.topology.load();
    let reason = if state.listeners.load().is_empty() {
        Some("no listener is bound".to_owned())
    } else {
        stale(state, &t)
    };
    Check {
        ok: reason.is_none(),
        reason: reason.unwrap_or_else(|| "ready".into()),
        members: None,
    }
}

/// `/role/<service>`: primary = this rolegate can send writes to a primary now; the others =
/// their set is not empty.
#[must_use]
pub fn role(state: &AdminState, service: Service) -> Check {
    let t = state.topology.load();
    let members = role_set(state, &t, service);
    let reason = if service == Service::Primary {
        stale(state, &t).or_else(|| {
            members
                .is_empty()
                .then(|| "no member is a running primary holding the leader key".into())
        })
    } else {
        members
            .is_empty()
            .then(|| format!("no member is in the {service} set"))
    };
    Check {
        ok: reason.is_none(),
        reason: reason.unwrap_or_else(|| format!("{service}: {}", members.join(", "))),
        members: Some(members),
    }
}
