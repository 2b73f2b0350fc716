//! Configuration layers, checked through the real binary.

use std::process::Command;

fn server() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tern-server"));
    command.env_remove("RUST_LOG");
    command
}

#[test]
fn the_committed_example_config_is_valid_and_complete() -> Result<(), Box<dyn std::error::Error>> {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tern.example.toml");
    let parsed = tern_server::Config::load(Some(std::path::Path::new(example)))?;
    let defaults = tern_server::Config::default();
    assert_eq!(
        serde_json::to_value(&parsed)?,
        serde_json::to_value(&defaults)?,
        "the example file shows exactly the defaults"
    );
    Ok(())
}

#[test]
fn an_unknown_key_in_the_file_stops_the_server() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tern.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:0\"\nlisten_port = 9\n")?;
    let output = server().arg("--config").arg(&file).output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen_port"), "the error names the key: {stderr}");
    Ok(())
}

#[test]
fn an_unknown_environment_key_stops_the_server() -> Result<(), Box<dyn std::error::Error>> {
    let output = server().env("TERN__SERVER__LISTN", "127.0.0.1:0").output()?;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("listn"));
    Ok(())
}

#[test]
fn the_environment_overrides_the_file_and_secrets_are_hidden() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("tern.toml");
    std::fs::write(&file, "[log]\nlevel = \"debug\"\n[database]\nurl = \"postgres://tern:hunter2@127.0.0.1:1/none\"\n")?;
    // Port 1 refuses at once, so the server exits after printing its configuration.
    let output = server()
        .arg("--config")
        .arg(&file)
        .env("TERN__LOG__LEVEL", "info")
        .env("TERN__SERVER__LISTEN", "127.0.0.1:0")
        .env("TERN__DATABASE__CONNECTION_TIMEOUT_MS", "300")
        .env("TERN__STORAGE__DATA_DIR", dir.path())
        .output()?;
    assert!(!output.status.success(), "no database, no server");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|l| l.contains("effective configuration")).expect("config logged");
    assert!(line.contains(r#""level":"info""#), "env wins over the file: {line}");
    assert!(line.contains(r#""connection_timeout_ms":300"#), "{line}");
    assert!(!line.contains("hunter2"), "the password is hidden: {line}");
    assert!(line.contains("tern:***@"), "{line}");
    Ok(())
}
