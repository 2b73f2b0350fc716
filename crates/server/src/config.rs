//! Configuration: defaults, then an optional TOML file, then `TERN__SECTION__KEY` variables.
//!
//! Unknown keys are an error in every section, so a typo is caught at start instead of being
//! silently ignored. `tern.example.toml` at the repository root lists every key with its
//! default and reason.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub storage: StorageSection,
    pub auth: AuthSection,
    pub websocket: WebSocketSection,
    pub messages: MessagesSection,
    pub cluster: ClusterSection,
    pub log: LogSection,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// NATS server that carries live deliveries between nodes, e.g. `nats://127.0.0.1:4222`.
    /// Empty: a single node, nothing relayed.
    pub nats_url: String,
    /// The NATS subject this cluster's nodes share; another cluster on the same NATS server
    /// needs another subject.
    pub subject: String,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection { nats_url: String::new(), subject: "tern.relay".into() }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: SocketAddr,
    /// How long a client may take to send its request headers.
    pub header_read_timeout_ms: u64,
    /// How long a request body may pause between two pieces before the request fails.
    pub body_idle_timeout_ms: u64,
    /// How long shutdown waits for connections to finish before closing them.
    pub shutdown_grace_ms: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            header_read_timeout_ms: 10_000,
            body_idle_timeout_ms: 30_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://path`, `postgres://...` or `mysql://...`. Empty: SQLite in the data folder.
    pub url: String,
    pub pool_size: u32,
    /// How long a request waits for a pooled connection before failing.
    pub connection_timeout_ms: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection { url: String::new(), pool_size: 8, connection_timeout_ms: 2_000 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageSection {
    /// Holds the SQLite database (by default) and uploaded files.
    pub data_dir: PathBuf,
    /// The largest file one upload may carry; larger uploads are refused while streaming.
    pub max_upload_bytes: u64,
    /// The largest picture; pictures are decoded for their size and thumbnail, so they get a
    /// lower cap than other files.
    pub max_image_bytes: u64,
    /// Pictures with more pixels than this are refused before decoding (decompression bombs).
    pub max_image_pixels: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: PathBuf::from("data"),
            max_upload_bytes: 100 * 1024 * 1024,
            max_image_bytes: 20 * 1024 * 1024,
            max_image_pixels: 50_000_000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub token_ttl_hours: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection { token_ttl_hours: 24 * 30 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketSection {
    pub allowed_origins: Vec<String>,
    pub max_connections: usize,
    pub max_connections_per_user: usize,
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub auth_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub heartbeat_ms: u64,
    pub outbound_queue: usize,
    pub rate_per_second: u32,
    pub rate_burst: u32,
}

impl Default for WebSocketSection {
    fn default() -> Self {
        let g = tern_gateway::GatewayConfig::default();
        WebSocketSection {
            allowed_origins: g.allowed_origins,
            max_connections: g.max_connections,
            max_connections_per_user: g.max_connections_per_user,
            max_frame_bytes: g.max_frame_bytes,
            max_message_bytes: g.max_message_bytes,
            auth_timeout_ms: millis(g.auth_timeout),
            idle_timeout_ms: millis(g.idle_timeout),
            heartbeat_ms: millis(g.heartbeat),
            outbound_queue: g.outbound_queue,
            rate_per_second: g.rate_per_second,
            rate_burst: g.rate_burst,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesSection {
    pub max_text_bytes: usize,
    /// How long after sending a message its sender may recall it.
    pub recall_window_secs: u64,
    pub max_group_members: usize,
    pub sync_limit: usize,
    pub history_max_limit: usize,
    pub writer_queue: usize,
    pub writer_max_batch: usize,
}

impl Default for MessagesSection {
    fn default() -> Self {
        let c = tern_chat::ChatConfig::default();
        MessagesSection {
            max_text_bytes: c.limits.max_text_bytes,
            recall_window_secs: c.recall_window.as_secs(),
            max_group_members: c.max_group_members,
            sync_limit: c.sync_limit,
            history_max_limit: c.history_max_limit,
            writer_queue: c.writer.queue_capacity,
            writer_max_batch: c.writer.max_batch,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// A `tracing` filter such as `info` or `tern_gateway=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection { level: "info".into(), format: "text".into() }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Config {
    /// Reads the layers in order: defaults, the file (if given), the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, config::ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let env = config::Environment::with_prefix("TERN")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("websocket.allowed_origins");
        builder.add_source(env).build()?.try_deserialize()
    }

    /// The database URL, defaulting to SQLite inside the data folder.
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}", self.storage.data_dir.join("tern.db").display())
        } else {
            self.database.url.clone()
        }
    }

    /// The configuration as JSON with secrets hidden, for the start-up log.
    pub fn redacted(&self) -> String {
        let mut shown = self.clone();
        shown.database.url = tern_db::redact_url(&self.database_url());
        shown.cluster.nats_url = tern_db::redact_url(&self.cluster.nats_url);
        serde_json::to_string(&shown).unwrap_or_default()
    }

    pub fn gateway(&self) -> tern_gateway::GatewayConfig {
        let w = &self.websocket;
        tern_gateway::GatewayConfig {
            allowed_origins: w.allowed_origins.clone(),
            max_connections: w.max_connections,
            max_connections_per_user: w.max_connections_per_user,
            max_frame_bytes: w.max_frame_bytes,
            max_message_bytes: w.max_message_bytes,
            auth_timeout: Duration::from_millis(w.auth_timeout_ms),
            idle_timeout: Duration::from_millis(w.idle_timeout_ms),
            heartbeat: Duration::from_millis(w.heartbeat_ms),
            outbound_queue: w.outbound_queue,
            rate_per_second: w.rate_per_second,
            rate_burst: w.rate_burst,
        }
    }

    pub fn chat(&self) -> tern_chat::ChatConfig {
        let mut c = tern_chat::ChatConfig::default();
        let m = &self.messages;
        c.token_ttl = Duration::from_secs(self.auth.token_ttl_hours.saturating_mul(3600));
        c.limits.max_text_bytes = m.max_text_bytes;
        c.sync_limit = m.sync_limit;
        c.history_max_limit = m.history_max_limit;
        c.writer.queue_capacity = m.writer_queue;
        c.writer.max_batch = m.writer_max_batch;
        c.max_db_jobs = (self.database.pool_size as usize) * 4;
        c.recall_window = Duration::from_secs(m.recall_window_secs);
        c.max_group_members = m.max_group_members;
        c
    }

    pub fn api(&self) -> tern_api::ApiConfig {
        let s = &self.storage;
        tern_api::ApiConfig {
            data_dir: s.data_dir.clone(),
            max_upload_bytes: s.max_upload_bytes,
            max_image_bytes: s.max_image_bytes,
            max_image_pixels: s.max_image_pixels,
        }
    }
}
