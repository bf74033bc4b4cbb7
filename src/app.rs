//! Wiring only: builds the shared state, binds the listeners, spawns the DCS watcher,
//! the fencer and the accept loops, and waits for a signal to stop.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::route::{fence, listener, Listener};
use crate::session::{self, AuthSetup, Shared};
use crate::topology::TopologyStore;

/// Runs rolegate until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let store = Arc::new(TopologyStore::new());
    let shared = Shared::new(store.clone());
    shared.auth.store(load_auth(&config)?.map(Arc::new));
    let shared = Arc::new(shared);
    let mut bound = Vec::new();
    for lc in &config.listeners {
        let tcp = TcpListener::bind(lc.addr).await.with_context(|| {
            format!(
                "cannot listen on {} (listener {})",
                lc.addr,
                lc.display_name()
            )
        })?;
        bound.push((tcp, Arc::new(Listener::from_config(lc))));
    }
    tokio::spawn(crate::dcs::etcd::run(
        config.dcs.etcd.clone(),
        config.dcs_prefix(),
        store.clone(),
    ));
    serve(&shared, bound);
    shutdown_signal().await;
    tracing::info!("stopping");
    Ok(())
}

/// Loads `[auth]`: the method, the users of `auth.file`, and `auth.query`'s login.
fn load_auth(config: &Config) -> anyhow::Result<Option<AuthSetup>> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    let setup = AuthSetup::from_config(auth)?;
    tracing::info!(
        method = setup.method.as_str(),
        users = setup.users.len(),
        auth_user = setup.query.as_ref().map(|q| q.user.as_str()),
        "client authentication for pooled listeners"
    );
    Ok(Some(setup))
}

/// Starts the fencer and one accept loop per bound listener. Whatever feeds
/// `shared.topology` (the etcd watcher, or a test) drives the routing.
pub fn serve(shared: &Arc<Shared>, bound: Vec<(TcpListener, Arc<Listener>)>) {
    let listeners: Vec<_> = bound.iter().map(|(_, l)| l.clone()).collect();
    tokio::spawn(fence::run(shared.topology.clone(), listeners));
    for (tcp, l) in bound {
        if let Some(p) = &l.pool {
            tokio::spawn(p.pools.clone().maintain(std::time::Duration::from_secs(1)));
        }
        tracing::info!(listener = %l.name, addr = %l.addr, role = %l.service, "listening");
        let shared = shared.clone();
        tokio::spawn(listener::accept_loop(tcp, l, move |l, stream, peer| {
            session::run(shared.clone(), l, stream, peer)
        }));
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
