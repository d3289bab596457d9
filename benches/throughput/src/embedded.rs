//! The embedded stages: throughput on this machine, each stage next to its raw primitive.
//!
//! Primitives (the ceilings) run on prepared inputs: encoding + CID, signing, strict single
//! verification, batch verification on one core and on all cores. Then the real path: signed
//! events with salted payloads appended in batches to a fresh sled store (durable), and `verify`
//! of that whole store.

use std::time::Instant;

use rayon::prelude::*;

use personctl_ledger::{
    verify, verify_many, Cid, Draft, Ipld, Ledger, SigCheck, Signature, Signer, SledStore,
    StreamId, TrustSet, UnsignedEvent, VerifyOptions, VERIFY_BATCH,
};

use crate::{Emit, Options as BenchArgs, Record, Result, Stage};

macro_rules! bail {
    ($($t:tt)*) => { return Err(format!($($t)*).into()) };
}

pub(crate) struct Row {
    pub(crate) stage: &'static str,
    pub(crate) events: u64,
    pub(crate) seconds: f64,
    pub(crate) note: String,
    /// The ceiling stage this one is compared with.
    pub(crate) ceiling: Option<&'static str>,
}

/// Ceiling stages, by name, that the real path is compared with.
const ENCODE: &str = "encode + CID (1 core)";
const SIGN_ALL: &str = "sign (all cores)";
const VERIFY_ALL: &str = "verify batch/1024 (all cores)";
const DECODE_ALL: &str = "decode + CID (all cores)";
/// The whole-store verification (the one the identities' stage is compared with).
pub(crate) const VERIFY_STORE: &str = "verify whole store";
/// The batched append stage (the one the log's stages are compared with).
pub(crate) const APPEND_BATCHED: &str = "append to sled, batched";

impl Row {
    /// A ceiling row: a raw primitive the real path is compared with.
    fn ceiling(stage: &'static str, events: u64, seconds: f64, detail: &str) -> Row {
        let note = if detail.is_empty() {
            "ceiling".to_string()
        } else {
            format!("ceiling, {detail}")
        };
        Row {
            stage,
            events,
            seconds,
            note,
            ceiling: None,
        }
    }

    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds.max(1e-9)
    }
}

pub(crate) fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

pub(crate) fn sample_data(i: u64) -> Ipld {
    Ipld::Map(
        [
            (
                "legal_name".to_string(),
                Ipld::String(format!("Person Number {i}")),
            ),
            (
                "email".to_string(),
                Ipld::String(format!("person{i}@example.org")),
            ),
        ]
        .into_iter()
        .collect(),
    )
}

/// Runs the embedded stages (no server needed).
pub fn run(args: &BenchArgs, emit: Emit<'_>) -> Result<()> {
    if args.events == 0 || args.streams == 0 || args.batch == 0 {
        bail!("--events, --streams and --batch must be at least 1");
    }
    let signer = Signer::from_seed([7; 32]);
    let author = signer.author();
    let threads = rayon::current_num_threads();
    let mut rows = Vec::new();

    // Primitives, on a sample of prepared events.
    let n = args.events.min(20_000);
    let unsigned: Vec<UnsignedEvent> = (0..n)
        .map(|i| UnsignedEvent {
            stream: StreamId::new("bench", format!("s{}", i % args.streams)).expect("valid"),
            height: 1,
            prev: Some(Cid::of(&i.to_le_bytes())),
            causes: Vec::new(),
            event_type: "PersonRenamed".into(),
            schema: 1,
            payload: Some(Cid::of(&(i + 1).to_le_bytes())),
            time_us: personctl_ledger::now_us(),
            correlation: uuid::Uuid::now_v7(),
            causation: uuid::Uuid::now_v7(),
        })
        .collect();
    let (messages, s) = timed(|| {
        unsigned
            .iter()
            .map(|u| {
                let m = u.signing_message(&author).expect("valid");
                std::hint::black_box(Cid::of(&m));
                m
            })
            .collect::<Vec<_>>()
    });
    rows.push(Row::ceiling(ENCODE, n, s, ""));
    let (sigs, s) = timed(|| {
        messages
            .iter()
            .map(|m| signer.sign(m))
            .collect::<Vec<Signature>>()
    });
    rows.push(Row::ceiling("sign (1 core)", n, s, ""));
    let (_, s) = timed(|| {
        messages
            .par_iter()
            .map(|m| signer.sign(m))
            .collect::<Vec<Signature>>()
    });
    rows.push(Row::ceiling(SIGN_ALL, n, s, &format!("{threads} threads")));
    let (ok, s) = timed(|| {
        messages
            .iter()
            .zip(&sigs)
            .all(|(m, sig)| author.verify(m, sig))
    });
    assert!(ok, "benchmark signatures verify");
    rows.push(Row::ceiling("verify single (1 core)", n, s, ""));
    let checks: Vec<SigCheck<'_>> = messages
        .iter()
        .zip(&sigs)
        .map(|(m, sig)| SigCheck {
            message: m,
            signature: sig,
            author: &author,
        })
        .collect();
    let (_, s) = timed(|| {
        checks
            .chunks(VERIFY_BATCH)
            .flat_map(verify_many)
            .collect::<Vec<_>>()
    });
    rows.push(Row::ceiling("verify batch/1024 (1 core)", n, s, ""));
    let (_, s) = timed(|| {
        checks
            .par_chunks(VERIFY_BATCH)
            .flat_map_iter(verify_many)
            .collect::<Vec<_>>()
    });
    rows.push(Row::ceiling(
        VERIFY_ALL,
        n,
        s,
        &format!("{threads} threads"),
    ));

    let blocks: Vec<personctl_ledger::Block> = unsigned
        .iter()
        .map(|u| u.clone().sign(&signer).map(|(_, b)| b))
        .collect::<personctl_ledger::Result<_>>()?;
    let (_, s) = timed(|| {
        blocks
            .par_iter()
            .map(|b| {
                let again = personctl_ledger::Block::verified(b.cid(), b.bytes().to_vec());
                again
                    .and_then(|b| personctl_ledger::Event::decode(&b))
                    .is_ok()
            })
            .filter(|ok| *ok)
            .count()
    });
    rows.push(Row::ceiling(
        DECODE_ALL,
        n,
        s,
        &format!("{threads} threads: event blocks hashed and decoded strictly"),
    ));

    // The real path: append to a fresh sled store, then verify it.
    let tmp;
    let dir = match &args.dir {
        Some(d) if d.exists() => bail!(
            "--dir {}: already exists; give a new directory",
            d.display()
        ),
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("store")
        }
    };
    let ledger = Ledger::new(SledStore::open(&dir)?);
    let writers = args.writers.max(1);
    let (result, s) = timed(|| batched(&ledger, &signer, args));
    result?;
    rows.push(Row {
        stage: APPEND_BATCHED,
        events: args.events,
        seconds: s,
        note: format!(
            "{writers} writers, batches of {}, {} streams, payload per event, fsync per batch",
            args.batch, args.streams
        ),
        ceiling: Some(SIGN_ALL),
    });
    // The store is verified as the batched stage left it (`--events` events); the
    // one-event-per-call stages append to it afterwards.
    let trust: TrustSet = [author].into_iter().collect();
    let (report, s) = timed(|| verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {}));
    let report = report?;
    if !report.is_ok() {
        bail!(
            "the benchmark store did not verify: {:?}",
            report.findings.first()
        );
    }
    rows.push(Row {
        stage: VERIFY_STORE,
        events: report.events,
        seconds: s,
        note: format!("{threads} threads, batch verification"),
        ceiling: Some(VERIFY_ALL),
    });
    single_appends(args, &ledger, &signer, &mut rows)?;
    let log_records = crate::tlog::stages(args, &signer, &mut rows)?;
    crate::identity::stages(args, &mut rows)?;
    let blocks_bytes = block_bytes(ledger.store())?;
    drop(ledger);
    let disk = dir_size(&dir);
    domain_stages(args, &signer, &mut rows)?;

    for r in &rows {
        let ceiling = r
            .ceiling
            .and_then(|c| rows.iter().find(|x| x.stage == c))
            .map(|c| (c.stage.to_string(), r.rate() / c.rate()));
        emit(Record::Stage(Stage {
            stage: r.stage.to_string(),
            events: r.events,
            seconds: r.seconds,
            note: r.note.clone(),
            ceiling,
        }))?;
    }
    for r in log_records {
        emit(r)?;
    }
    emit(Record::PeakRss(peak_rss_bytes()))?;
    emit(Record::Disk {
        bytes: disk,
        events: args.events + single_events(args) * SINGLE_WRITERS.len() as u64,
        block_bytes: blocks_bytes,
    })?;
    Ok(())
}

/// The batched append stage's work: writer w appends the events k with k % writers == w, in
/// batches, so that one writer's signing overlaps another's durable write. Writers may share
/// streams: every draft uses Expected::Any, so a lost race costs a retry, never a fork.
pub(crate) fn batched(ledger: &Ledger<SledStore>, signer: &Signer, args: &BenchArgs) -> Result<()> {
    let streams: Vec<StreamId> = (0..args.streams)
        .map(|i| StreamId::new("person", format!("bench-{i}")).expect("valid"))
        .collect();
    let writers = args.writers.max(1);
    in_threads(writers, |w| {
        let mine: Vec<u64> = (w..args.events).step_by(writers as usize).collect();
        for part in mine.chunks(args.batch as usize) {
            ledger.append_batch(signer, drafts(&streams, part)?)?;
        }
        Ok(())
    })
}

/// The drafts of events `part`, event k on stream `k % streams.len()`, with sample data.
pub(crate) fn drafts(streams: &[StreamId], part: &[u64]) -> Result<Vec<Draft>> {
    Ok(part
        .iter()
        .map(|&k| {
            let stream = streams[k as usize % streams.len()].clone();
            Draft::new(stream, "PersonRenamed", 1).with_data(sample_data(k))
        })
        .collect::<personctl_ledger::Result<Vec<_>>>()?)
}

/// Runs `work(0..n)` on `n` threads at once; the first error wins.
fn in_threads(n: u64, work: impl Fn(u64) -> Result<()> + Sync) -> Result<()> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|w| {
                let work = &work;
                scope.spawn(move || work(w))
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("writer thread panicked"))
    })
}

/// Events of each one-event-per-call stage.
fn single_events(args: &BenchArgs) -> u64 {
    (args.events / 5).clamp(1, 20_000)
}

/// Concurrent writers of the one-event-per-call stages. Group commit shares one durable write
/// among the commits waiting for it; with few writers every one of them waits in the same
/// group, so signing and writing alternate, while with more writers one cohort signs while
/// another's group is written.
const SINGLE_WRITERS: [(u64, &str); 2] = [
    (32, "append to sled, 1 event per call, 32 writers"),
    (128, "append to sled, 1 event per call, 128 writers"),
];

/// One event per `append` call from many concurrent writers, each on its own streams: how far
/// concurrent single appends share durable writes.
fn single_appends(
    args: &BenchArgs,
    ledger: &Ledger<SledStore>,
    signer: &Signer,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let total = single_events(args);
    for (writers, stage) in SINGLE_WRITERS {
        let (result, s) = timed(|| {
            in_threads(writers, |w| {
                for k in (w..total).step_by(writers as usize) {
                    let stream = StreamId::new("single", format!("n{writers}-w{w}-{}", k % 64))?;
                    let draft = Draft::new(stream, "PersonRenamed", 1).with_data(sample_data(k))?;
                    ledger.append(signer, draft)?;
                }
                Ok(())
            })
        });
        result?;
        rows.push(Row {
            stage,
            events: total,
            seconds: s,
            note: format!("{writers} concurrent writers, payload per event, durable per call"),
            ceiling: Some(SIGN_ALL),
        });
    }
    Ok(())
}

/// The bytes of every block in the store.
fn block_bytes(store: &SledStore) -> Result<u64> {
    use personctl_ledger::BlockStore;
    let mut total = 0u64;
    store.scan(&mut |b| {
        if let Ok(b) = b {
            total += b.bytes().len() as u64;
        }
        true
    })?;
    Ok(total)
}

/// The process's peak resident set size (Linux: `VmHWM` of `/proc/self/status`).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The domain's command for event `j` of person `i` of the benchmark (always valid in order).
fn domain_command(i: u64, j: u64) -> personctl_domain::Command {
    use personctl_domain::model::Skill;
    use personctl_domain::Command;
    match j % 3 {
        _ if j == 0 => Command::Register {
            legal_name: format!("Person {i}"),
        },
        0 => Command::AddSkill(Skill {
            name: format!("skill {j}"),
            level: (j % 5 + 1) as u8,
        }),
        1 => Command::Rename {
            legal_name: format!("Person {i} ({j})"),
            reason: "bench".into(),
        },
        _ => Command::AddEmail {
            address: format!("p{i}.{j}@example.org"),
        },
    }
}

/// Domain stages on a fresh store: batched commands, replay of every person into the World,
/// one long chain rebuilt.
fn domain_stages(args: &BenchArgs, signer: &Signer, rows: &mut Vec<Row>) -> Result<()> {
    use personctl_domain::{Command, PersonId, Persons};
    let tmp = tempfile::tempdir()?;
    let persons = Persons::new(Ledger::new(SledStore::open(tmp.path().join("domain"))?));
    let n_persons = args.streams.max(1);
    let per_person = (args.events / n_persons).max(1);
    let ids: Vec<PersonId> = (0..n_persons).map(|_| PersonId::new_v7()).collect();
    // The writer's key is an identity's, so that judging the replay resolves every event's
    // author at its log position (the full cost of identities, not a raw-key lookup).
    let identity = persons
        .ledger()
        .incept_identity(signer, &Signer::generate()?.author())?;
    // 10 persons' whole histories per commit: 1,000 commands at the default sizes.
    let group = (1000 / per_person).max(1) as usize;
    let (result, s) = timed(|| -> Result<u64> {
        let mut events = 0;
        for chunk in ids.chunks(group) {
            let commands: Vec<(PersonId, Command)> = chunk
                .iter()
                .enumerate()
                .flat_map(|(k, id)| {
                    (0..per_person).map(move |j| (*id, domain_command(k as u64, j)))
                })
                .collect();
            let appended = persons
                .execute_batch(signer, &commands)
                .map_err(|f| f.error)?;
            events += appended.iter().map(|a| a.len() as u64).sum::<u64>();
        }
        Ok(events)
    });
    let events = result?;
    rows.push(Row {
        stage: "domain commands, batched",
        events,
        seconds: s,
        note: format!("{n_persons} persons x {per_person} commands, decide + sign + append, {group} persons per commit"),
        ceiling: Some(SIGN_ALL),
    });

    let (replayed, s) = timed(|| persons.replay_all());
    let (world, replayed_events) = replayed?;
    rows.push(Row {
        stage: "replay all into the World",
        events: replayed_events,
        seconds: s,
        note: format!(
            "{} persons, CIDs re-derived, payloads decoded, 2 threads",
            world.len()
        ),
        ceiling: Some(DECODE_ALL),
    });
    drop(world);

    // Judging every author on the way: the replay, plain and judged, three times each in turn
    // (the least of each, so that the machine's noise does not pass for the cost).
    let trust = personctl_ledger::TrustSet::new().with_identity(identity);
    let (mut plain, mut judged, mut rules) = (f64::MAX, f64::MAX, f64::MAX);
    let mut judged_events = 0;
    for _ in 0..3 {
        let (r, s) = timed(|| persons.replay_all());
        r?;
        plain = plain.min(s);
        let (judge, r_s) =
            timed(|| personctl_ledger::policy::Judge::of_store(persons.ledger().store(), &trust));
        let judge = judge?;
        let (r, s) = timed(|| persons.replay_all_judged(&judge));
        let (_, events, faulted) = r?;
        if !faulted.is_empty() {
            return Err(format!("the judged replay faulted {} persons", faulted.len()).into());
        }
        judged = judged.min(r_s + s);
        rules = rules.min(r_s);
        judged_events = events;
    }
    rows.push(Row {
        stage: "replay all, authors judged",
        events: judged_events,
        seconds: judged,
        note: format!(
            "every author resolved to its identity at its log position: {:+.1} % over the plain replay, of which {:.1} ms reading the rules and positions (least of 3 each)",
            (judged / plain - 1.0) * 100.0,
            rules * 1000.0
        ),
        ceiling: Some(DECODE_ALL),
    });

    // One long chain: 10,000 events for one person, rebuilt alone.
    let long = PersonId::new_v7();
    let long_events = 10_000u64;
    for start in (0..long_events).step_by(1000) {
        let commands: Vec<(PersonId, Command)> = (start..(start + 1000).min(long_events))
            .map(|j| match j {
                0 => (
                    long,
                    Command::Register {
                        legal_name: "Long Chain".into(),
                    },
                ),
                j => (
                    long,
                    Command::Rename {
                        legal_name: format!("Long Chain {}", j % 2),
                        reason: String::new(),
                    },
                ),
            })
            .collect();
        persons
            .execute_batch(signer, &commands)
            .map_err(|f| f.error)?;
    }
    let (replayed, s) = timed(|| persons.replay(long, None));
    let replayed = replayed?;
    rows.push(Row {
        stage: "rebuild one 10,000-event chain",
        events: replayed.events,
        seconds: s,
        note: format!(
            "{:.1} ms for the whole chain (walk and payloads on 2 threads)",
            s * 1000.0
        ),
        ceiling: Some(DECODE_ALL),
    });
    Ok(())
}
