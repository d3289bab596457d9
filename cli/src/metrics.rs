//! `--metrics ADDR`: a Prometheus exporter (text format over HTTP, any path) for the metrics the
//! libraries record (`personctl_ledger::metrics`, `personctl_domain::metrics`), installed before
//! the command runs and served until it ends.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const SECONDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Serves the metrics at `addr` from a thread of its own.
pub(crate) fn install(addr: SocketAddr) -> Result<()> {
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)
        .context("the metrics' buckets")?
        .install()
        .with_context(|| format!("--metrics {addr}: serving metrics there"))?;
    personctl_ledger::metrics::describe();
    personctl_domain::metrics::describe();
    Ok(())
}
