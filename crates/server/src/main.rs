//! `tern-server [--config FILE]`: runs Tern until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::{Context, bail};
use tern_server::Config;
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let config_file = parse_args()?;
    let config = Config::load(config_file.as_deref()).context("reading configuration")?;
    init_logging(&config);
    tracing::info!(config = %config.redacted(), "effective configuration");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let running = tern_server::start(config).await?;
        wait_for_signal().await;
        running.shutdown().await
    })
}

fn parse_args() -> anyhow::Result<Option<PathBuf>> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => file = Some(PathBuf::from(args.next().context("--config needs a file")?)),
            "--help" | "-h" => {
                println!("usage: tern-server [--config FILE]\n\nSettings come from defaults, then FILE (TOML), then TERN__SECTION__KEY environment variables.");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}; try --help"),
        }
    }
    Ok(file)
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    // Colours only for a terminal: piped logs stay plain text for whatever reads them.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi);
    if config.log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
