//! Logging: tracing-subscriber with `RUST_LOG` filtering (default `info`), to stderr or to
//! `log_path` (appended; rotate with logrotate's copytruncate).

use std::path::Path;
use tracing_subscriber::EnvFilter;

pub fn init(log_path: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log_path.is_empty() {
        builder.with_writer(std::io::stderr).init();
    } else {
        let path = Path::new(log_path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("log_path: cannot create {}", dir.display()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("log_path: cannot open {log_path}"))?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    Ok(())
}

/// For one-shot CLI commands: warnings and errors only, to stderr.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
