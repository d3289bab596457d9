//! `--features otel`: the tracing spans (command, decide, append, publish, apply, with their
//! correlation and causation ids) exported over OTLP/HTTP (protobuf) to the collector named by
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), as service
//! `personctl`. Spans are batched on a thread of their own and flushed when the command ends.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::registry::LookupSpan;

/// Flushes and stops the exporter when dropped (at the end of `main`).
pub(crate) struct Exporter(SdkTracerProvider);

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("personctl: exporting traces: {e}");
        }
    }
}

/// The layer that exports spans to `endpoint` (a full URL, `.../v1/traces`), or to the one the
/// standard environment variables name (`None`); `None` when neither is set.
pub(crate) fn layer<S>(
    endpoint: Option<String>,
) -> Result<Option<(impl tracing_subscriber::Layer<S>, Exporter)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let from_env = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if endpoint.is_none() && !from_env {
        return Ok(None);
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(url) = endpoint {
        builder = builder.with_endpoint(url);
    }
    let exporter = builder
        .build()
        .map_err(|e| format!("the OTLP trace exporter: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("personctl")
                .build(),
        )
        .build();
    let tracer = provider.tracer("personctl");
    Ok(Some((
        tracing_opentelemetry::layer().with_tracer(tracer),
        Exporter(provider),
    )))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use tracing_subscriber::layer::SubscriberExt;

    /// A one-request OTLP/HTTP collector: the body of the first POST.
    fn collector() -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 65536];
            // Headers, then as many body bytes as Content-Length says.
            loop {
                let n = stream.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if request.len() >= end + 4 + length {
                        stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                            .unwrap();
                        return request[end + 4..end + 4 + length].to_vec();
                    }
                }
                assert!(n > 0, "the exporter hung up");
            }
        });
        (url, handle)
    }

    #[test]
    fn spans_and_their_ids_reach_the_collector() {
        let (url, received) = collector();
        let (layer, exporter) = super::layer(Some(url)).unwrap().unwrap();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let command = tracing::info_span!(
                "command",
                command = "register",
                command_id = "0192eeee-0000-7000-8000-000000000001"
            );
            let _c = command.enter();
            let decide = tracing::info_span!("decide", correlation = "0192eeee");
            let _d = decide.enter();
        });
        drop(exporter); // flushes
        let body = received.join().unwrap();
        let has = |needle: &str| body.windows(needle.len()).any(|w| w == needle.as_bytes());
        for needle in [
            "command",
            "decide",
            "0192eeee-0000-7000-8000-000000000001",
            "personctl",
        ] {
            assert!(has(needle), "{needle} not in the exported spans");
        }
    }
}
