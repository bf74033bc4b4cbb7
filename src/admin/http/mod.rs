//! The HTTP admin server (hyper 1, HTTP/1.1): the stats page at `/`, Prometheus
//! `/metrics`, `/health`, `/ready`, `/role/{primary,replica,sync,async}`, and the JSON
//! views `/topology`, `/listeners`, `/pools`. Reads shared state only.
//!
//! Authentication (`[admin] token` or `user`/`password`) applies to every path but
//! `/health`.

pub mod auth;
pub mod health;
pub mod metrics;
pub mod page;
pub mod rates;
pub mod views;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::TcpListener;

use crate::config::AdminConfig;
use crate::route::Listener;
use crate::stats::Stats;
use crate::topology::{Service, TopologyStore};
use auth::Auth;

/// The listeners the admin server reports on; `app` (or a reload) stores a new list.
pub type ListenerSet = ArcSwap<Vec<Arc<Listener>>>;

/// What the admin server reads.
pub struct AdminState {
    /// Patroni scope, for the page title.
    pub scope: String,
    pub topology: Arc<TopologyStore>,
    pub stats: Arc<Stats>,
    pub listeners: Arc<ListenerSet>,
    pub auth: Auth,
    /// Transactions per second, sampled once a second.
    pub rates: rates::Rates,
}

impl AdminState {
    #[must_use]
    pub fn new(
        scope: String,
        topology: Arc<TopologyStore>,
        stats: Arc<Stats>,
        listeners: Arc<ListenerSet>,
        config: &AdminConfig,
    ) -> Self {
        Self {
            scope,
            topology,
            stats,
            listeners,
            auth: Auth::from_config(config),
            rates: rates::Rates::default(),
        }
    }
}

type Body = Full<Bytes>;

/// Serves HTTP on `tcp` until the process ends; also samples the transaction counters.
pub async fn serve(tcp: TcpListener, state: Arc<AdminState>) {
    tokio::spawn(sample_rates(state.clone()));
    loop {
        let (stream, _) = match tcp.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "admin http: accept failed; retrying in 100ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, &req)) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin http connection ended");
            }
        });
    }
}

async fn sample_rates(state: Arc<AdminState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let now = Instant::now();
        for l in state.listeners.load().iter() {
            state.rates.sample(&l.name, now, l.stats.transactions.get());
        }
    }
}

/// Answers one request.
#[must_use]
pub fn handle<B>(state: &AdminState, req: &Request<B>) -> Response<Body> {
    let path = req.uri().path();
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    }
    if path != "/health" {
        if let Err(challenge) = state.auth.check(req.headers()) {
            let mut r = text(StatusCode::UNAUTHORIZED, "authentication required\n");
            r.headers_mut().insert("www-authenticate", challenge);
            return r;
        }
    }
    route(state, path)
}

fn route(state: &AdminState, path: &str) -> Response<Body> {
    match path {
        "/" => with_type(StatusCode::OK, page::render(state), "text/html; charset=utf-8"),
        "/metrics" => with_type(
            StatusCode::OK,
            metrics::render(state),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => check(&health::ready(state)),
        "/role/primary" => check(&health::role(state, Service::Primary)),
        "/role/replica" => check(&health::role(state, Service::Replica)),
        "/role/sync" => check(&health::role(state, Service::Sync)),
        "/role/async" => check(&health::role(state, Service::Async)),
        "/topology" => json(StatusCode::OK, &views::topology(state)),
        "/listeners" => json(StatusCode::OK, &views::listeners(state)),
        "/pools" => json(StatusCode::OK, &views::pools(state)),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try / /metrics /health /ready /role/primary /role/replica /role/sync /role/async /topology /listeners /pools\n",
        ),
    }
}

fn check(c: &health::Check) -> Response<Body> {
    let status = if c.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(status, c)
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            with_type(status, s, "application/json")
        }
        Err(e) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot encode JSON: {e}\n"),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    with_type(status, body.to_owned(), "text/plain; charset=utf-8")
}

#[cfg(test)]
mod tests;

fn with_type(status: StatusCode, body: String, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
