//! The accept loop and the per-connection HTTP service.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tern_api::RawRoutes;

use crate::body::IdleTimeoutBody;
use tern_gateway::{Gateway, upgrade};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tower_service::Service;

/// How long a client may take over the parts of a request.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// From the connection (or the previous response) to the end of the request headers.
    pub header_read: Duration,
    /// Between two pieces of a request body.
    pub body_idle: Duration,
}

/// The path WebSocket clients connect to.
pub const WEBSOCKET_PATH: &str = "/ws";

/// Serves HTTP and WebSocket on `tcp`: WebSocket upgrades go to the gateway, the streamed
/// routes (downloads, export) to `raw`, everything else to warp.
#[allow(clippy::too_many_arguments)]
pub async fn serve<S>(
    tcp: TcpListener,
    warp_service: S,
    raw: Arc<RawRoutes>,
    gateway: Arc<Gateway>,
    timeouts: Timeouts,
    grace: Duration,
    mut shutdown: watch::Receiver<bool>,
) where
    S: Service<Request<IdleTimeoutBody>, Response = warp::reply::Response, Error = Infallible>,
    S: Clone + Send + 'static,
    S::Future: Send,
{
    // Every connection task holds a clone of `alive`; once the originals are dropped,
    // `all_done` yields None when the last connection has finished.
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, _peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Usually out of file descriptors: wait instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let warp_service = warp_service.clone();
        let raw = raw.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let gateway = gateway.clone();
            let mut warp_service = warp_service.clone();
            let streamed = raw.handle(&req);
            async move {
                if let Some(streamed) = streamed {
                    return Ok::<_, Infallible>(streamed.await.map(|body| Either::Left(Either::Right(body))));
                }
                if req.uri().path() == WEBSOCKET_PATH && upgrade::is_websocket_request(&req) {
                    let response = upgrade::accept(&gateway, req);
                    return Ok(response.map(Either::Right));
                }
                let req = req.map(|body| IdleTimeoutBody::new(body, timeouts.body_idle));
                let response = match warp_service.call(req).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok(response.map(|body| Either::Left(Either::Left(body))))
            }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(timeouts.header_read)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut shutdown = shutdown.clone();
        let alive = alive.clone();
        tokio::spawn(async move {
            let _alive = alive;
            let mut connection = std::pin::pin!(connection);
            let outcome = tokio::select! {
                outcome = connection.as_mut() => outcome,
                _ = shutdown.changed() => {
                    // Finish the request in progress, then close; upgraded sockets are
                    // already detached and get their own shutdown signal.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = outcome {
                tracing::debug!(error = %err, "http connection ended with an error");
            }
        });
    }
    drop(tcp);
    drop(alive);
    if tokio::time::timeout(grace, all_done.recv()).await.is_err() {
        tracing::warn!("some HTTP connections did not finish within the grace period");
    }
}
