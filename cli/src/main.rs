//! `personctl`: the command-line front end of the person ledger.
//!
//! `main` wraps `run`, prints an error once to stderr as `personctl: {err:#}`, and maps the
//! outcome to the documented exit codes: 0 ok, 1 a negative verdict (verification failed),
//! 2 an error. A closed stdout (broken pipe) is not an error.

mod args;
mod cmd;
mod config;
mod metrics;
mod nats;
#[cfg(feature = "otel")]
mod otel;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// Exit code: everything went well.
pub(crate) const EXIT_OK: u8 = 0;
/// Exit code: the command ran, and its verdict is negative (for example verification failed).
pub(crate) const EXIT_NEGATIVE: u8 = 1;
/// Exit code: an error (bad input, no store, I/O failure, a concurrency conflict).
pub(crate) const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let args = match args::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() { EXIT_ERROR } else { EXIT_OK };
            return ExitCode::from(code);
        }
    };
    // Everything a home holds is private to its owner: files 0600, directories 0700, whatever
    // the umask was (sled's files and exported archives included).
    // SAFETY: umask only sets the process's file-mode mask; no memory is involved.
    unsafe {
        libc::umask(0o077);
    }
    // Kept to the end: with the `otel` feature, dropping it flushes the exported spans.
    let _traces = init_tracing(args.verbose, args.quiet);
    let json = args.json;
    if let Some(addr) = args.metrics {
        if let Err(err) = metrics::install(addr) {
            output::error(&err, json);
            return ExitCode::from(EXIT_ERROR);
        }
    }
    match cmd::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_OK),
        Err(err) => {
            output::error(&err, json);
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Logs go to stderr, colored only on a terminal. `RUST_LOG` decides when set; otherwise
/// warnings, errors only with `-q`, and personctl's own info (`-v`) or debug (`-vv`) lines, never
/// its dependencies' (sled's internals stay quiet).
fn init_tracing(verbose: u8, quiet: bool) -> Option<Box<dyn std::any::Any>> {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let ours = |level: &str| {
        [
            "personctl",
            "personctl_ledger",
            "personctl_domain",
            "personctl_bench",
        ]
        .map(|c| format!("{c}={level}"))
        .join(",")
    };
    let default = match (quiet, verbose) {
        (true, _) => "error".to_string(),
        (false, 0) => "warn".to_string(),
        (false, 1) => format!("warn,{}", ours("info")),
        (false, _) => format!("warn,{}", ours("debug")),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(verbose > 1);
    use tracing_subscriber::Layer as _;
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    // Exported spans: personctl's own at info and above, whatever the log lines show.
    #[cfg(feature = "otel")]
    match otel::layer(None) {
        Ok(Some((layer, exporter))) => {
            let spans = tracing_subscriber::EnvFilter::new(format!("warn,{}", ours("info")));
            registry.with(layer.with_filter(spans)).init();
            return Some(Box::new(exporter));
        }
        Ok(None) => {}
        Err(e) => eprintln!("personctl: {e}; traces are not exported"),
    }
    registry.init();
    None
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
