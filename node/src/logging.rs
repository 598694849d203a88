//! Logging: tracing-subscriber with `RUST_LOG` filtering (default `info`), to stderr or to
//! `log_path` (appended). After logrotate moves the file, SIGUSR1 or `node log reopen` makes
//! the node open `log_path` again (Dovecot's `doveadm log reopen`); copytruncate works too.
//! `log_format = "json"` writes one JSON object a line.

use parking_lot::Mutex;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use tracing_subscriber::EnvFilter;

/// The open log file, shared by every writer the subscriber makes.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// Set when logging goes to a file: what [`reopen`] reopens.
static LOG_FILE: OnceLock<Arc<LogFile>> = OnceLock::new();

fn open(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// One event's writer: the fmt layer writes each formatted line with one `write_all`.
struct LogWriter(Arc<LogFile>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.file.lock().write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.0.file.lock().write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.file.lock().flush()
    }
}

/// `log_format`: Dovecot-like text lines, or JSON objects for a log pipeline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

pub fn init(log_path: &str, format: LogFormat) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log_path.is_empty() {
        match format {
            LogFormat::Text => builder.with_writer(std::io::stderr).init(),
            LogFormat::Json => builder.json().with_writer(std::io::stderr).init(),
        }
        return Ok(());
    }
    let path = Path::new(log_path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("log_path: cannot create {}", dir.display()))?;
    }
    let file = open(path).with_context(|| format!("log_path: cannot open {log_path}"))?;
    let shared = Arc::new(LogFile {
        path: path.to_path_buf(),
        file: Mutex::new(file),
    });
    let _ = LOG_FILE.set(shared.clone());
    let make = move || LogWriter(shared.clone());
    let builder = builder.with_ansi(false);
    match format {
        LogFormat::Text => builder.with_writer(make).init(),
        LogFormat::Json => builder.json().with_writer(make).init(),
    }
    Ok(())
}

/// Opens `log_path` again (after logrotate renamed it). Ok(None) when logging goes to stderr.
/// On failure the old file stays in use, so nothing is lost.
pub fn reopen() -> Result<Option<PathBuf>, String> {
    let Some(log) = LOG_FILE.get() else {
        return Ok(None);
    };
    let fresh = open(&log.path).map_err(|e| {
        format!(
            "log_path {}: cannot reopen, still writing the old file: {e}",
            log.path.display()
        )
    })?;
    *log.file.lock() = fresh;
    Ok(Some(log.path.clone()))
}

/// Reopens and logs the outcome (SIGUSR1, `node log reopen`).
pub fn reopen_and_log(why: &str) -> Result<(), String> {
    match reopen() {
        Ok(Some(path)) => {
            tracing::info!("log: {why}: reopened {}", path.display());
            Ok(())
        }
        Ok(None) => {
            tracing::info!("log: {why}: logging to stderr, nothing to reopen");
            Ok(())
        }
        Err(e) => {
            tracing::error!("log: {why}: {e}");
            Err(e)
        }
    }
}

/// For one-shot CLI commands: warnings and errors only, to stderr.
pub fn init_cli() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
