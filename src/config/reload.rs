//! What a reload may change: compares the config in force with a newly loaded one and
//! says which changes need a restart (listen addresses, the set of listeners, a listener's
//! role or pool mode, `max_db_connections`, the cluster, the DCS, logging). Everything
//! else is applied live by the caller. Pure: no I/O, imports nothing internal.

use std::collections::BTreeMap;

use super::{Config, ListenerConfig};

/// The outcome of comparing two configs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Keys that changed and are applied now.
    pub applied: Vec<String>,
    /// Keys that changed but only take effect after a restart.
    pub needs_restart: Vec<String>,
    /// Listeners (by name) whose live settings may be swapped in.
    pub listeners: Vec<String>,
}

impl ReloadPlan {
    /// Compares `old` (in force) with `new` (validated).
    #[must_use]
    pub fn new(old: &Config, new: &Config) -> Self {
        let mut plan = Self::default();
        let mut note = |changed: bool, key: &str, live: bool| {
            if changed {
                if live {
                    plan.applied.push(key.to_owned());
                } else {
                    plan.needs_restart.push(key.to_owned());
                }
            }
        };
        note(old.cluster != new.cluster, "cluster", false);
        note(old.dcs != new.dcs, "dcs", false);
        note(old.log != new.log, "log", false);
        note(old.runtime != new.runtime, "runtime", false);
        note(old.auth != new.auth, "auth", true);
        note(old.admin != new.admin, "admin", true);
        note(old.general != new.general, "general", true);
        let before: BTreeMap<String, &ListenerConfig> = old
            .listeners
            .iter()
            .map(|l| (l.display_name(), l))
            .collect();
        let after: BTreeMap<String, &ListenerConfig> = new
            .listeners
            .iter()
            .map(|l| (l.display_name(), l))
            .collect();
        for name in before.keys().filter(|n| !after.contains_key(*n)) {
            note(true, &format!("listener {name} (removed)"), false);
        }
        for (name, l) in &after {
            let Some(o) = before.get(name) else {
                note(true, &format!("listener {name} (added)"), false);
                continue;
            };
            let fixed = [
                ("addr", o.addr != l.addr),
                ("role", o.role != l.role),
                ("pool_mode", o.pool_mode != l.pool_mode),
                (
                    "max_db_connections",
                    o.max_db_connections != l.max_db_connections,
                ),
            ];
            for (key, changed) in fixed {
                note(changed, &format!("listener {name}.{key}"), false);
            }
            if fixed[..3].iter().any(|(_, c)| *c) {
                continue; // another kind of listener: none of its settings apply
            }
            let mut live_old = (*o).clone();
            live_old.max_db_connections = l.max_db_connections;
            note(live_old != **l, &format!("listener {name}"), true);
            plan.listeners.push(name.clone());
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn config(extra: &str) -> Config {
        parse(
            &format!(
                "[cluster]\nscope = \"demo\"\n[auth]\ntype = \"trust\"\n\
                 [[listener]]\nname = \"rw\"\naddr = \"127.0.0.1:6000\"\nrole = \"primary\"\npool_mode = \"transaction\"\n{extra}\n\
                 [[listener]]\nname = \"ro\"\naddr = \"127.0.0.1:6001\"\nrole = \"replica\"\n"
            ),
            "t",
        )
        .unwrap()
    }

    #[test]
    fn pool_and_timeout_changes_apply_live() {
        let plan = ReloadPlan::new(
            &config("pool_size = 5"),
            &config("pool_size = 7\nquery_wait_timeout = \"3s\""),
        );
        assert_eq!(plan.applied, ["listener rw"]);
        assert!(plan.needs_restart.is_empty());
        assert_eq!(plan.listeners, ["ro", "rw"]);
    }

    #[test]
    fn addresses_modes_and_listener_sets_need_a_restart() {
        let old = config("");
        let mut new = config("max_db_connections = 9\npool_size = 3");
        new.listeners[1].addr = "127.0.0.1:6009".parse().unwrap();
        new.dcs.etcd.endpoints = vec!["10.0.0.1:2379".into()];
        let plan = ReloadPlan::new(&old, &new);
        assert_eq!(
            plan.needs_restart,
            ["dcs", "listener ro.addr", "listener rw.max_db_connections"]
        );
        // rw's pool_size still applies; ro changed kind and is left alone.
        assert_eq!(plan.applied, ["listener rw"]);
        assert_eq!(plan.listeners, ["rw"]);
        let mut fewer = config("");
        fewer.listeners.pop();
        let plan = ReloadPlan::new(&old, &fewer);
        assert_eq!(plan.needs_restart, ["listener ro (removed)"]);
    }
}
