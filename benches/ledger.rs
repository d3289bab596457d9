//! Criterion benches of the ledger's hot functions, grouped by operation: encoding + CID,
//! signing, single and batch verification, decoding, and batched appends to a sled store.
//! (`personctl bench` measures the whole path, events/s, on a 100,000-event store.)

#![allow(missing_docs)] // criterion's macros generate undocumented items

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use personctl_ledger::{
    verify_many, Block, Cid, Draft, Event, Ipld, Ledger, SigCheck, Signature, Signer, SledStore,
    StreamId, UnsignedEvent,
};

fn sample(i: u64) -> UnsignedEvent {
    UnsignedEvent {
        stream: StreamId::new("person", format!("p{i}")).unwrap(),
        height: 1,
        prev: Some(Cid::of(&i.to_le_bytes())),
        causes: Vec::new(),
        event_type: "PersonRenamed".into(),
        schema: 1,
        payload: Some(Cid::of(&(i + 1).to_le_bytes())),
        time_us: 1_700_000_000_000_000 + i,
        correlation: uuid::Uuid::from_u128(i as u128),
        causation: uuid::Uuid::from_u128(i as u128 + 1),
    }
}

fn benches(c: &mut Criterion) {
    let signer = Signer::from_seed([7; 32]);
    let author = signer.author();
    let event = sample(1);
    let message = event.signing_message(&author).unwrap();
    let (_, block) = event.clone().sign(&signer).unwrap();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    g.bench_function("event signing bytes + CID", |b| {
        b.iter(|| Cid::of(&black_box(&event).signing_message(&author).unwrap()))
    });
    g.bench_function("decode event block (strict, re-encode check)", |b| {
        b.iter(|| Event::decode(black_box(&block)).unwrap())
    });
    g.bench_function("BLAKE3 CID of a block", |b| {
        b.iter(|| Block::verified(block.cid(), black_box(block.bytes().to_vec())))
    });
    g.finish();

    let mut g = c.benchmark_group("sign");
    g.throughput(Throughput::Elements(1));
    g.bench_function("ed25519 sign", |b| {
        b.iter(|| signer.sign(black_box(&message)))
    });
    g.bench_function("sign event (encode + sign + splice + CID)", |b| {
        b.iter_batched(
            || event.clone(),
            |e| e.sign(&signer).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let messages: Vec<Vec<u8>> = (0..1024)
        .map(|i| sample(i).signing_message(&author).unwrap())
        .collect();
    let sigs: Vec<Signature> = messages.iter().map(|m| signer.sign(m)).collect();
    let checks: Vec<SigCheck<'_>> = messages
        .iter()
        .zip(&sigs)
        .map(|(m, s)| SigCheck {
            message: m,
            signature: s,
            author: &author,
        })
        .collect();
    let mut g = c.benchmark_group("verify");
    g.throughput(Throughput::Elements(1));
    g.bench_function("strict single", |b| {
        b.iter(|| author.verify(black_box(&messages[0]), &sigs[0]))
    });
    for n in [16usize, 64, 256, 1024] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("batch of {n}"), |b| {
            b.iter(|| verify_many(black_box(&checks[..n])))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("append");
    g.sample_size(10);
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::new(SledStore::open(dir.path().join("store")).unwrap());
    let mut round = 0u64;
    for n in [100u64, 1000] {
        g.throughput(Throughput::Elements(n));
        g.bench_function(format!("sled batch of {n} (payload each, fsync)"), |b| {
            b.iter_batched(
                || {
                    round += 1;
                    (0..n)
                        .map(|i| {
                            let stream = StreamId::new("person", format!("s{}", i % 100)).unwrap();
                            Draft::new(stream, "PersonRenamed", 1)
                                .with_data(Ipld::String(format!("name {round} {i}")))
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                },
                |drafts| ledger.append_batch(&signer, drafts).unwrap(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(ledger, benches);
criterion_main!(ledger);
