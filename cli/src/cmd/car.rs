//! `personctl export --car`, `import --car` and `verify --car`: CARv1 archives of the chains.
//!
//! The archive logic is `personctl_ledger::car`; this module picks files, runs the async reader
//! and writer on a small runtime of its own, and prints.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::json;

use personctl_ledger::car::{self, Archive};
use personctl_ledger::{BlockStore, StreamId};

use crate::args::{ExportArgs, ImportArgs};
use crate::config::{person_arg, stream_of, Config};
use crate::output::{self, plural, Out};
use crate::EXIT_OK;

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .context("starting the async runtime")
}

/// `export --car FILE [--person ID | --stream TYPE/ID]`.
pub(crate) fn export(config: &Config, args: &ExportArgs, out: &mut Out) -> Result<u8> {
    let store = config.open_for_reading()?;
    let streams: Option<Vec<StreamId>> = match (&args.select.person, stream_of(&args.select)?) {
        (Some(p), _) => {
            let person = person_arg("--person ", p)?;
            let mut streams = vec![person.stream()];
            let onboarding = personctl_domain::onboarding_stream(person);
            if store.head(&onboarding)?.is_some() {
                streams.push(onboarding);
            }
            Some(streams)
        }
        (None, Some(s)) => Some(vec![s]),
        (None, None) => None,
    };
    // Written next to the target and renamed over it once complete: a failed export leaves no
    // half-written file behind, and never damages an earlier archive.
    let dir = match args.car.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".personctl-export-")
        .tempfile_in(&dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    let started = Instant::now();
    let exported = runtime()?.block_on(async {
        let file = tokio::fs::File::from_std(temp.reopen()?);
        let mut writer = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let exported = car::export(&store, streams.as_deref(), &mut writer).await?;
        Ok::<_, anyhow::Error>(exported)
    })?;
    temp.as_file()
        .sync_all()
        .with_context(|| format!("writing {}", args.car.display()))?;
    temp.persist(&args.car)
        .with_context(|| format!("writing {}", args.car.display()))?;
    let bytes = std::fs::metadata(&args.car).map(|m| m.len()).unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();
    // One line per chain only under --json: a text summary stays one line for any store.
    let roots = if out.is_json() {
        &exported.roots[..]
    } else {
        &[]
    };
    for (stream, head) in roots {
        out.record(
            "root",
            json!({"stream": stream.to_string(), "height": head.height, "cid": head.cid.to_string()}),
            || format!("root {stream}\theight {}\t{}", head.height, head.cid),
        )?;
    }
    out.record(
        "exported",
        json!({
            "file": args.car.display().to_string(),
            "roots": exported.roots.len(),
            "events": exported.events,
            "payloads": exported.payloads,
            "masked": exported.masked,
            "bytes": bytes,
            "seconds": seconds,
        }),
        || {
            format!(
                "exported {} and {} of {} to {} ({bytes} bytes; {} left out)",
                plural(exported.events, "event"),
                plural(exported.payloads, "payload"),
                plural(exported.roots.len() as u64, "chain"),
                args.car.display(),
                plural(exported.masked as u64, "masked payload")
            )
        },
    )?;
    Ok(EXIT_OK)
}

/// Reads a CAR file into memory, re-deriving every CID.
fn read(path: &Path) -> Result<Archive> {
    runtime()?.block_on(async {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        car::read(reader)
            .await
            .with_context(|| format!("reading {}", path.display()))
    })
}

/// `verify --car FILE`: audits an archive without importing it.
pub(crate) fn verify(config: &Config, path: &Path, exact: bool, out: &mut Out) -> Result<u8> {
    let store = config.open_for_reading()?;
    let trust = config.trust(&store)?;
    drop(store);
    let started = Instant::now();
    let archive = read(path)?;
    let report = archive.verify(&trust, exact)?;
    let seconds = started.elapsed().as_secs_f64();
    output::verdict(&report, None, seconds, out)
}

/// `import --car FILE`: verifies an archive, then stores it, all or nothing.
pub(crate) fn import(config: &Config, args: &ImportArgs, out: &mut Out) -> Result<u8> {
    let store = config.open_or_create_store()?;
    let trust = config.trust(&store)?;
    let started = Instant::now();
    let archive = read(&args.car)?;
    let imported = match archive.import_into(&store, &trust) {
        Ok(imported) => imported,
        // The whole verdict is printed, as `verify --car` prints it.
        Err(personctl_ledger::Error::NotVerified(report)) => {
            let code = output::verdict(&report, None, started.elapsed().as_secs_f64(), out)?;
            eprintln!(
                "personctl: {} does not verify; nothing was imported",
                args.car.display()
            );
            let mut untrusted: Vec<String> = report
                .findings
                .iter()
                .filter_map(|f| match &f.problem {
                    personctl_ledger::Problem::UntrustedAuthor { author } => {
                        Some(author.to_string())
                    }
                    _ => None,
                })
                .collect();
            untrusted.sort();
            untrusted.dedup();
            for author in untrusted {
                eprintln!("personctl: if you trust its author, run `personctl trust add {author}` and import again");
            }
            return Ok(code);
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "importing {}; nothing was imported",
                args.car.display()
            )))
        }
    };
    for (stream, head) in &imported.moved {
        out.record(
            "moved",
            json!({"stream": stream.to_string(), "height": head.height, "head": head.cid.to_string()}),
            || format!("moved {stream}\theight {}\thead {}", head.height, head.cid),
        )?;
    }
    out.record(
        "imported",
        json!({
            "file": args.car.display().to_string(),
            "blocks": imported.blocks,
            "moved": imported.moved.len(),
            "unchanged": imported.unchanged.len(),
            "events": imported.events,
        }),
        || {
            format!(
                "imported {}: {}, {} moved, {} already up to date ({} verified)",
                args.car.display(),
                plural(imported.blocks as u64, "new block"),
                plural(imported.moved.len() as u64, "stream"),
                imported.unchanged.len(),
                plural(imported.events, "event")
            )
        },
    )?;
    Ok(EXIT_OK)
}
