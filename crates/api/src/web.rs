//! The bundled web chat page: three static files compiled into the binary.
//!
//! The page is served from the same origin as the WebSocket, which the gateway's `Origin`
//! check accepts without configuration. Its content security policy allows only its own
//! script and style and connections back to this server.

use warp::{Filter, Rejection, Reply};

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");

const POLICY: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> impl Reply {
    let reply = warp::reply::with_header(body, "content-type", content_type);
    let reply = warp::reply::with_header(reply, "content-security-policy", POLICY);
    warp::reply::with_header(reply, "x-content-type-options", "nosniff")
}

pub fn routes() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let index = warp::path::end().and(warp::get()).map(|| asset(INDEX, "text/html; charset=utf-8"));
    let script = warp::path!("app.js").and(warp::get()).map(|| asset(SCRIPT, "text/javascript; charset=utf-8"));
    let style = warp::path!("app.css").and(warp::get()).map(|| asset(STYLE, "text/css; charset=utf-8"));
    index.or(script).or(style)
}
