//! `personctl verify`: audit the store, report every failing CID; exit 1 on any failure.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use personctl_ledger::jetstream::cross_check;
use personctl_ledger::{verify, BlockStore, Finding, Report, Scope, VerifyOptions};

use crate::args::VerifyArgs;
use crate::config::{stream_of, Config};
use crate::nats;
use crate::output::Out;
use crate::{EXIT_NEGATIVE, EXIT_OK};

pub(crate) fn run(config: &Config, args: &VerifyArgs, out: &mut Out) -> Result<u8> {
    if let Some(path) = &args.car {
        return super::car::verify(config, path, args.exact, out);
    }
    let scope = match stream_of(&args.select)? {
        Some(s) => Scope::Stream(s),
        None => Scope::All,
    };
    let store = config.open_for_reading()?;
    let trust = config.trust(&store)?;
    if trust.is_empty() {
        tracing::warn!("no trusted keys in this home: every event will be reported as untrusted");
    }
    let total: u64 = match &scope {
        Scope::All => store.heads()?.iter().map(|(_, h)| h.height + 1).sum(),
        Scope::Stream(s) => store.head(s)?.map_or(0, |h| h.height + 1),
    };
    let bar = progress_bar(out.is_json(), total);
    let started = Instant::now();
    let options = VerifyOptions {
        scope,
        exact: args.exact,
    };
    let mut report = verify(&store, &trust, &options, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    // With --nats, JetStream is cross-checked against the store (read-only: nothing is
    // published or pulled).
    let mut messages = None;
    if let Some(link) = nats::connect(config)? {
        let stream = match &options.scope {
            Scope::Stream(s) => Some(s),
            Scope::All => None,
        };
        let check = link
            .block_on(cross_check(link.backbone(), &store, stream))
            .context("cross-checking JetStream against the store")?;
        messages = Some(check.messages);
        report.findings.extend(check.findings);
    }
    let seconds = started.elapsed().as_secs_f64();
    print(&report, messages, seconds, out)
}

/// Prints a report: every failure, every masked payload, then the summary. Returns the exit
/// code of its verdict.
pub(crate) fn print(
    report: &Report,
    messages: Option<u64>,
    seconds: f64,
    out: &mut Out,
) -> Result<u8> {
    for f in &report.findings {
        out.record("failure", finding_json(f), || human(f))?;
    }
    // Masked payloads are not failures: a tombstone later on the chain covers each.
    for m in &report.masked {
        out.record(
            "masked",
            json!({
                "cid": m.payload.to_string(),
                "stream": m.stream.to_string(),
                "height": m.height,
                "event": m.event.to_string(),
                "tombstone": m.tombstone.to_string(),
            }),
            || {
                format!(
                    "masked {} {}@{}: payload erased, covered by tombstone {}",
                    m.payload, m.stream, m.height, m.tombstone
                )
            },
        )?;
    }
    let masked = report.masked.len();
    let failures = report.findings.len();
    let rate = report.events as f64 / seconds.max(1e-9);
    out.record(
        "summary",
        json!({
            "ok": report.is_ok(),
            "events": report.events,
            "payloads": report.payloads,
            "streams": report.streams,
            "failures": failures,
            "masked": masked,
            "messages": messages,
            "seconds": seconds,
            "events_per_second": rate.round(),
        }),
        || {
            let verdict = if report.is_ok() { "OK" } else { "FAILED" };
            let messages = messages
                .map(|m| format!(", {m} JetStream messages"))
                .unwrap_or_default();
            let masked = if masked > 0 {
                format!(", {masked} payloads masked by tombstones")
            } else {
                String::new()
            };
            format!(
                "{verdict}: {} events, {} payloads, {} streams{messages} checked in {seconds:.2}s ({rate:.0} events/s); {failures} failures{masked}",
                report.events, report.payloads, report.streams
            )
        },
    )?;
    Ok(if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_NEGATIVE
    })
}

fn progress_bar(json: bool, total: u64) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() || total < 10_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "cid": f.cid.map(|c| c.to_string()),
        "stream": f.stream.as_ref().map(|s| s.to_string()),
        "height": f.height,
        "check": f.problem.code(),
        "message": f.problem.to_string(),
    })
}

fn human(f: &Finding) -> String {
    let place = match (&f.stream, f.height) {
        (Some(s), Some(h)) => format!(" {s}@{h}"),
        (Some(s), None) => format!(" {s}"),
        _ => String::new(),
    };
    let cid = f.cid.map_or_else(|| "-".to_string(), |c| c.to_string());
    format!("FAIL {cid}{place} [{}]: {}", f.problem.code(), f.problem)
}
