//! Wiring only: builds the shared state, binds the listeners, spawns the DCS watcher,
//! the fencer and the accept loops, then runs the control loop ([`control`]: signals,
//! console RELOAD/SHUTDOWN) until it is time to stop.

pub mod control;
pub mod reload;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::net::TcpListener;

use crate::admin::http::{self, AdminState, ListenerSet};
use crate::config::Config;
use crate::route::{fence, listener, Listener};
use crate::session::{self, AuthSetup, Shared};
use crate::topology::TopologyStore;

/// Runs rolegate until SIGTERM, SIGINT or the console's SHUTDOWN; `path` is re-read on
/// SIGHUP and RELOAD.
pub async fn run(config: Config, path: PathBuf) -> anyhow::Result<()> {
    crate::tcp::set_in_force(crate::tcp::TcpOptions::from_config(&config.general));
    let store = Arc::new(TopologyStore::new());
    let shared = Shared::new(store.clone());
    shared.auth.store(load_auth(&config)?.map(Arc::new));
    let mut bound = Vec::new();
    for lc in &config.listeners {
        let tcp = TcpListener::bind(lc.addr).await.with_context(|| {
            format!(
                "cannot listen on {} (listener {})",
                lc.addr,
                lc.display_name()
            )
        })?;
        crate::tcp::listening_socket(&tcp, &lc.display_name());
        bound.push((tcp, Arc::new(Listener::from_config(lc))));
    }
    let etcd = tokio::spawn(crate::dcs::etcd::run(
        config.dcs.etcd.clone(),
        config.dcs_prefix(),
        store.clone(),
    ));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = shared.control.set(tx);
    // What the admin server reports on; whoever replaces listeners stores the new list here.
    let listener_set: Arc<ListenerSet> = Arc::new(ArcSwap::from_pointee(
        bound.iter().map(|(_, l)| l.clone()).collect(),
    ));
    let shared = Arc::new(shared);
    serve(&shared, bound);
    start_admin(&config, &shared, listener_set).await?;
    shared.config.store(Some(Arc::new(config)));
    let stop = control::run(&shared, &path, rx).await;
    control::shutdown(&shared, stop).await;
    etcd.abort();
    tracing::info!("stopped");
    Ok(())
}

/// Binds and spawns the HTTP admin server, unless `[admin] http = ""`.
async fn start_admin(
    config: &Config,
    shared: &Arc<Shared>,
    listeners: Arc<ListenerSet>,
) -> anyhow::Result<()> {
    let Some(addr) = config.admin.http_addr().map_err(anyhow::Error::msg)? else {
        return Ok(());
    };
    let tcp = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr} ([admin] http)"))?;
    if !addr.ip().is_loopback() && !config.admin.has_auth() {
        tracing::warn!(%addr, "the admin HTTP server listens beyond loopback without [admin] token or user/password");
    }
    let state = AdminState::new(
        config.cluster.scope.clone(),
        shared.topology.clone(),
        shared.stats.clone(),
        listeners,
        &config.admin,
    );
    tracing::info!(%addr, "admin http: stats page, /metrics, /ready, /role/*");
    tokio::spawn(http::serve(tcp, Arc::new(state)));
    Ok(())
}

/// Loads `[auth]`: the method, the users of `auth.file`, and `auth.query`'s login.
pub fn load_auth(config: &Config) -> anyhow::Result<Option<AuthSetup>> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    let setup = AuthSetup::from_config(auth)?;
    tracing::info!(
        method = setup.method.as_str(),
        users = setup.users.len(),
        auth_user = setup.query.as_ref().map(|q| q.user.as_str()),
        "client authentication for pooled listeners and the admin console"
    );
    Ok(Some(setup))
}

/// Starts the fencer and one accept loop per bound listener. Whatever feeds
/// `shared.topology` (the etcd watcher, or a test) drives the routing. The accept loops
/// end (closing their ports) when the process starts stopping.
pub fn serve(shared: &Arc<Shared>, bound: Vec<(TcpListener, Arc<Listener>)>) {
    let listeners: Vec<_> = bound.iter().map(|(_, l)| l.clone()).collect();
    let _ = shared.listeners.set(listeners.clone());
    let clients = shared.clients.clone();
    tokio::spawn(fence::run(shared.topology.clone(), listeners, move || {
        clients.wake_all();
    }));
    for (tcp, l) in bound {
        if let Some(p) = &l.pool {
            tokio::spawn(p.pools.clone().maintain(std::time::Duration::from_secs(1)));
        }
        tracing::info!(listener = %l.name, addr = %l.addr, role = %l.service, "listening");
        let tcp = Arc::new(tcp);
        let _ = l.socket.set(Arc::downgrade(&tcp));
        let shared = shared.clone();
        let gate = shared.gate.clone();
        let name = l.name.clone();
        let accept = listener::accept_loop(tcp, l, move |l, stream, peer| {
            session::run(shared.clone(), l, stream, peer)
        });
        tokio::spawn(async move {
            tokio::select! {
                () = accept => {}
                () = gate.stopping() => tracing::info!(listener = %name, "no longer accepting"),
            }
        });
    }
}
