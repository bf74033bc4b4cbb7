//! The `rolegate` binary: CLI -> config::load -> app::run; nothing else.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use rolegate::config::{self, LogFormat};

/// mimalloc rather than glibc's malloc: a proxy allocates small, short-lived objects on
/// every connection and transaction (task cells, futures, buffers), where glibc's bins
/// and aligned allocations cost several times more instructions per call.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Patroni-aware PostgreSQL proxy: ports routed by role, driven by an etcd v3 watch.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Path of the TOML config file.
    #[arg(short, long, value_name = "FILE")]
    config: PathBuf,
    /// Validate the config and exit: 0 if valid, 1 with the reason if not.
    #[arg(long)]
    check: bool,
    /// Log format; overrides `[log] format`.
    #[arg(long, value_name = "text|json")]
    log_format: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rolegate: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.check {
        println!(
            "rolegate: {} is valid ({} listeners, scope {:?})",
            cli.config.display(),
            config.listeners.len(),
            config.cluster.scope
        );
        return ExitCode::SUCCESS;
    }
    let format = match cli.log_format.as_deref() {
        None => config.log.format,
        Some("json") => LogFormat::Json,
        Some("text") => LogFormat::Text,
        Some(other) => {
            eprintln!("rolegate: --log-format must be text or json, not {other:?}");
            return ExitCode::FAILURE;
        }
    };
    init_logging(&config.log.level, format);
    // One thread: everything runs on this one (no work stealing, no cross-thread wake-ups).
    let mut builder = match config.runtime.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    if config.runtime.worker_threads > 1 {
        builder.worker_threads(config.runtime.worker_threads);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rolegate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(rolegate::app::run(config, cli.config.clone())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rolegate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
