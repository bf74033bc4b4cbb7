//! Applying a reload: loads and validates the whole file (and the auth_file it names),
//! then swaps in what may change live in one step per target: each listener's tuning and
//! pool settings, `[auth]`, the config snapshot. A rejected file changes nothing; changes
//! that need a restart are logged and left out.

use std::path::Path;
use std::sync::Arc;

use crate::config::reload::ReloadPlan;
use crate::pool::PoolSettings;
use crate::route::listener::Tuning;
use crate::session::{AuthSetup, Shared};

/// Re-reads `path` and applies it; the message says what happened. Counted in
/// `rolegate_config_reloads_total{result="ok|error"}`.
pub fn reload(shared: &Shared, path: &Path) -> Result<String, String> {
    match try_reload(shared, path) {
        Ok(summary) => {
            shared.stats.config_reloads.record(true);
            tracing::info!("config reloaded: {summary}");
            Ok(summary)
        }
        Err(reason) => {
            shared.stats.config_reloads.record(false);
            tracing::error!("config reload rejected, keeping the previous config: {reason}");
            Err(reason)
        }
    }
}

fn try_reload(shared: &Shared, path: &Path) -> Result<String, String> {
    let new = crate::config::load(path).map_err(|e| e.to_string())?;
    let auth = match &new.auth {
        Some(a) => Some(Arc::new(
            AuthSetup::from_config(a).map_err(|e| e.to_string())?,
        )),
        None => None,
    };
    let Some(old) = shared.config.load_full() else {
        return Err("no config in force to compare with".into());
    };
    let plan = ReloadPlan::new(&old, &new);
    for key in &plan.needs_restart {
        tracing::warn!(key, "config change needs restart; not applied");
    }
    for l in shared.listeners() {
        if !plan.listeners.iter().any(|n| **n == *l.name) {
            continue;
        }
        let Some(lc) = new.listeners.iter().find(|c| *c.display_name() == *l.name) else {
            continue;
        };
        l.tuning.store(Arc::new(Tuning::from_config(lc)));
        if let Some(setup) = &l.pool {
            let mut settings = PoolSettings::from_config(lc);
            // max_db_connections budgets live as long as the listener: restart to change.
            settings.db_size = setup.settings().db_size;
            setup.apply(settings);
        }
    }
    // A tighter max_lag takes effect now, not at the next topology change.
    let fenced = crate::route::fence::apply(shared.listeners(), &shared.topology.load(), &|| {
        shared.clients.wake_all();
    });
    if fenced > 0 {
        tracing::warn!(
            sessions = fenced,
            "reload: ended sessions on members the new settings exclude"
        );
    }
    let tcp = crate::tcp::TcpOptions::from_config(&new.general);
    if tcp != crate::tcp::in_force() {
        // New server connections and, through their listening sockets, new clients;
        // connections open now keep the options they have.
        crate::tcp::set_in_force(tcp);
        for l in shared.listeners() {
            if let Some(socket) = l.socket.get().and_then(std::sync::Weak::upgrade) {
                crate::tcp::listening_socket(&socket, &l.name);
            }
        }
    }
    // Always: the auth_file may have changed even when [auth] did not.
    shared.auth.store(auth);
    shared.config.store(Some(Arc::new(new)));
    Ok(summary(&plan))
}

fn summary(plan: &ReloadPlan) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "nothing".to_owned()
        } else {
            v.join(", ")
        }
    };
    format!(
        "applied: {}; needs restart: {}",
        list(&plan.applied),
        list(&plan.needs_restart)
    )
}
