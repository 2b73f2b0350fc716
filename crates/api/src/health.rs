//! Liveness, readiness and Prometheus metrics.

use std::fmt::Write;
use std::sync::Arc;

use tern_chat::Chat;
use tern_gateway::Gateway;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::auth::with_chat;

pub fn routes(
    chat: Arc<Chat>,
    gateway: Arc<Gateway>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let healthz = warp::path!("healthz").and(warp::get()).map(|| "ok");
    let readyz = warp::path!("readyz").and(warp::get()).and(with_chat(chat.clone())).and_then(readyz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_chat(chat))
        .and(warp::any().map(move || gateway.clone()))
        .map(metrics);
    healthz.or(readyz).or(metrics)
}

/// Ready when a database round trip succeeds.
async fn readyz(chat: Arc<Chat>) -> Result<warp::reply::Response, Rejection> {
    let probe = chat
        .blocking(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1").map_err(|e| tern_chat::ChatError::Unavailable(e.to_string()))
        })
        .await;
    Ok(match probe {
        Ok(()) => warp::reply::with_status("ready", StatusCode::OK).into_response(),
        Err(_) => warp::reply::with_status("database unreachable", StatusCode::SERVICE_UNAVAILABLE).into_response(),
    })
}

fn metrics(chat: Arc<Chat>, gateway: Arc<Gateway>) -> impl Reply {
    let ids = chat.ids().metrics();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
    };
    gauge("tern_websocket_connections", "Open WebSocket connections on this node.", gateway.open_connections() as u64);
    gauge("tern_sessions", "Authenticated sessions registered for delivery.", chat.hub().connection_count());
    let pool = chat.pool().state();
    gauge("tern_db_pool_connections", "Database connections held by the pool.", u64::from(pool.connections));
    gauge("tern_db_pool_idle", "Idle database connections in the pool.", u64::from(pool.idle_connections));
    gauge("tern_idgen_segments_claimed_total", "Id segments claimed from the database.", ids.segments_claimed);
    gauge("tern_idgen_caller_waits_total", "Id requests that had to wait for the database.", ids.caller_waits);
    gauge("tern_idgen_evictions_total", "Idle id generators evicted from memory.", ids.evictions);
    gauge("tern_idgen_generators", "Id generators in memory.", ids.live_generators);
    warp::reply::with_header(out, "content-type", "text/plain; version=0.0.4")
}
