use std::time::Duration;

/// Limits of the WebSocket gateway; every number bounds what one client can make the server
/// hold or do.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Origins a browser may connect from. Empty: only clients that send no `Origin` (native
    /// apps, the CLI) and pages served by this server itself. `"*"` allows any origin.
    pub allowed_origins: Vec<String>,
    pub max_connections: usize,
    pub max_connections_per_user: usize,
    /// Frames above this get a `frame_too_large` error and the connection goes on.
    pub max_frame_bytes: usize,
    /// Messages above this are not read at all: the connection closes with code 1009.
    pub max_message_bytes: usize,
    /// A connection that has not sent a good `connect` by then is closed.
    pub auth_timeout: Duration,
    /// A connection silent for this long is closed; clients ping every `heartbeat`.
    pub idle_timeout: Duration,
    pub heartbeat: Duration,
    /// Frames queued for one connection before it counts as too slow and is kicked.
    pub outbound_queue: usize,
    /// Frames per second a connection may send, and the burst it may save up.
    pub rate_per_second: u32,
    pub rate_burst: u32,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            allowed_origins: Vec::new(),
            max_connections: 100_000,
            max_connections_per_user: 8,
            max_frame_bytes: 64 * 1024,
            max_message_bytes: 1024 * 1024,
            auth_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            heartbeat: Duration::from_secs(30),
            outbound_queue: 1024,
            rate_per_second: 200,
            rate_burst: 400,
        }
    }
}
