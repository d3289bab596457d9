//! `personctl bench`: the throughput stages of `personctl-bench` (in `benches/throughput`),
//! each next to its ceiling, printed as they come; with `--nats`, the JetStream and read-side
//! stages too.

use anyhow::{anyhow, bail, Result};
use serde_json::json;

use personctl_bench::{quantile, Options, Record, NEEDS_NATS};

use crate::args::BenchArgs;
use crate::config::Config;
use crate::output::Out;
use crate::EXIT_OK;

pub(crate) fn run(config: &Config, args: &BenchArgs, out: &mut Out) -> Result<u8> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    let options = Options {
        events: args.events,
        streams: args.streams,
        batch: args.batch,
        writers: args.writers.unwrap_or(cores),
        dir: args.dir.clone(),
    };
    if let Some(n) = args.subjects {
        let Some((url, _)) = &config.nats else {
            bail!("--subjects measures a JetStream server: give --nats URL");
        };
        let mut emit = |r: Record| print(&r, out).map_err(|e| e.to_string().into());
        personctl_bench::subjects(url, n, args.monitor.as_deref(), &mut emit)
            .map_err(|e| anyhow!("{e}"))?;
        return Ok(EXIT_OK);
    }
    let mut stages = Vec::new();
    let mut emit = |r: Record| {
        if let Record::Stage(s) = &r {
            stages.push(s.clone());
        }
        print(&r, out).map_err(|e| e.to_string().into())
    };
    personctl_bench::embedded(&options, &mut emit).map_err(|e| anyhow!("{e}"))?;
    match &config.nats {
        Some((url, settings)) => personctl_bench::with_nats(url, settings, &options, &mut emit)
            .map_err(|e| anyhow!("{e}"))?,
        None => emit(Record::Skipped {
            stages: NEEDS_NATS,
            reason: "no --nats URL",
        })
        .map_err(|e| anyhow!("{e}"))?,
    }
    // The Hypercore peer: where asked, or in benches/hypercore when run from the repository.
    let default = std::path::Path::new("benches/hypercore");
    let peer = args
        .hypercore
        .as_deref()
        .or_else(|| default.join("peer.mjs").is_file().then_some(default));
    let ours = stages.clone();
    let mut emit = |r: Record| print(&r, out).map_err(|e| e.to_string().into());
    match peer {
        Some(dir) => personctl_bench::hypercore(dir, &options, &ours, &mut emit),
        None => emit(Record::Skipped {
            stages: "Hypercore peer",
            reason: "no benches/hypercore here: give --hypercore DIR",
        }),
    }
    .map_err(|e| anyhow!("{e}"))?;
    Ok(EXIT_OK)
}

fn print(record: &Record, out: &mut Out) -> Result<()> {
    match record {
        Record::Stage(s) => {
            let ratio = s.ceiling.as_ref().map_or_else(String::new, |(c, q)| {
                format!("{:>5.0} % of {c}", q * 100.0)
            });
            out.record(
                "bench",
                json!({"stage": s.stage, "events": s.events, "seconds": s.seconds, "events_per_second": s.rate().round(), "note": s.note, "ceiling": s.ceiling.as_ref().map(|(c, _)| c), "ratio": s.ceiling.as_ref().map(|(_, q)| (q * 1000.0).round() / 1000.0)}),
                || format!("{:<45} {:>10.0} events/s  {ratio:<38} ({} in {:.3}s; {})", s.stage, s.rate(), s.events, s.seconds, s.note),
            )?;
        }
        Record::Subjects {
            layout,
            subjects,
            messages,
            published,
            seconds,
            stream_bytes,
            memory_before,
            memory_after,
        } => {
            let rate = *published as f64 / seconds.max(1e-9);
            let grown = match (memory_before, memory_after) {
                (Some(b), Some(a)) => Some(a.saturating_sub(*b)),
                _ => None,
            };
            out.record(
                "subjects",
                json!({"layout": layout, "subjects": subjects, "messages": messages, "published": published, "seconds": seconds, "events_per_second": rate.round(), "stream_bytes": stream_bytes, "memory_before": memory_before, "memory_after": memory_after, "memory_grown": grown}),
                || {
                    let memory = grown.map_or_else(
                        || "server memory unknown (give --monitor URL)".to_string(),
                        |g| format!("server memory +{} MiB ({} B per message)", g >> 20, g / (*published).max(1)),
                    );
                    format!("{layout}: {published} messages in {seconds:.2}s ({rate:.0}/s acknowledged), {subjects} subjects, stream {} MiB ({} B per message), {memory}", stream_bytes >> 20, stream_bytes / messages.max(&1))
                },
            )?;
        }
        Record::PeakRss(peak) => out.record("peak_rss", json!({"bytes": peak}), || {
            format!("peak RSS: {} MiB", peak.unwrap_or(0) / (1 << 20))
        })?,
        Record::Disk {
            bytes,
            events,
            block_bytes,
        } => {
            let overhead = *bytes as f64 / (*block_bytes).max(1) as f64;
            let (per, blocks) = (bytes / events.max(&1), block_bytes / events.max(&1));
            out.record(
                "disk",
                json!({"bytes": bytes, "events": events, "bytes_per_event": per, "block_bytes_per_event": blocks, "ratio_to_blocks": (overhead * 100.0).round() / 100.0}),
                || format!("store on disk: {bytes} bytes, {per} bytes per event; its event + payload blocks are {blocks} bytes: {overhead:.2}x"),
            )?;
        }
        Record::Skipped { stages, reason } => out.record(
            "skipped",
            json!({"stages": stages, "reason": reason}),
            || format!("not run ({reason}): {stages}"),
        )?,
        Record::Peer {
            stage,
            events,
            seconds,
            entry_bytes,
            ours,
        } => {
            let rate = *events as f64 / seconds.max(1e-9);
            let against: Vec<String> = ours
                .iter()
                .map(|(s, x)| format!("{s}: {x:.2}x"))
                .collect();
            out.record(
                "peer",
                json!({"stage": stage, "events": events, "seconds": seconds, "events_per_second": rate.round(), "entry_bytes": entry_bytes, "ours": ours.iter().map(|(s, x)| json!({"stage": s, "times": (x * 100.0).round() / 100.0})).collect::<Vec<_>>()}),
                || format!("{stage:<45} {rate:>10.0} events/s  ({events} entries of {entry_bytes} B in {seconds:.3}s; personctl {})", against.join(", ")),
            )?;
        }
        Record::Ratio {
            of_raw_1_message: one,
            of_raw_3_messages: three,
            of_raw_shaped: shaped,
        } => out.record(
            "ratio",
            json!({"of_raw_1_message": one.round(), "of_raw_3_messages": three.round(), "of_raw_shaped": shaped.round()}),
            || format!("personctl reaches {one:.0} % of the 1-message raw ceiling, {three:.0} % of the 3-message one, {shaped:.0} % of the same messages sent raw"),
        )?,
        Record::Proof {
            leaves,
            inclusion_hashes,
            inclusion_bytes,
            bundle_leaves,
            bundle_bytes,
            check_micros,
        } => out.record(
            "proof",
            json!({"leaves": leaves, "inclusion_hashes": inclusion_hashes, "inclusion_bytes": inclusion_bytes, "bundle_leaves": bundle_leaves, "bundle_bytes": bundle_bytes, "check_us": check_micros}),
            || format!("longest inclusion proof at {leaves} leaves: {inclusion_hashes} hashes, {inclusion_bytes} B; a whole proof bundle (log of {bundle_leaves}) {bundle_bytes} B, checked in {check_micros:.0} µs (signatures included)"),
        )?,
        Record::Latency {
            kind,
            what,
            rate,
            millis,
            detail,
        } => {
            let q = |p| quantile(millis, p);
            out.record(
                kind,
                json!({"events": millis.len(), "rate": rate.round(), "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99), "max_ms": q(1.0)}),
                || format!("{what} at {rate:.0} events/s: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} {detail})", q(0.5), q(0.95), q(0.99), q(1.0), millis.len()),
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
