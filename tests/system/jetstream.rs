//! The JetStream building blocks against a real nats-server: stream set-up and its
//! compatibility check, CID-only messages, deduplication, and the optimistic-concurrency header.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, StorageType};
use personctl_ledger::jetstream::{ensure_stream, publish, Blocks, Notice, Settings};
use personctl_ledger::{
    BlockStore, Draft, Error, Event, Expected, Ipld, Ledger, MemoryStore, StreamId,
};

use crate::fixture_signer;
use crate::nats::NatsServer;

async fn jetstream(server: &NatsServer) -> async_nats::jetstream::Context {
    let client = async_nats::connect(server.url())
        .await
        .expect("connecting to the test server");
    async_nats::jetstream::new(client)
}

/// A stream of three events, the genesis carrying a personal value in its payload, plus a
/// competing event at height 1.
fn events() -> (StreamId, Vec<Event>, Event) {
    let ledger = Ledger::new(MemoryStore::new());
    let signer = fixture_signer();
    let stream: StreamId = "person/0192f000-0000-7000-8000-00000000c0de"
        .parse()
        .unwrap();
    let secret = Ipld::String("grace.secret.4711@example.org".into());
    let mut cids = Vec::new();
    for (i, ty) in ["PersonRegistered", "EmailAdded", "EmailVerified"]
        .into_iter()
        .enumerate()
    {
        let mut d = Draft::new(stream.clone(), ty, 1)
            .with_data(secret.clone())
            .unwrap();
        d.expected = if i == 0 {
            Expected::Empty
        } else {
            Expected::Height(i as u64 - 1)
        };
        cids.push(ledger.append(&signer, d).unwrap().cid);
    }
    let events: Vec<Event> = cids.iter().map(|c| ledger.event(c).unwrap()).collect();
    // A rival writer's event at height 1, built on the same genesis.
    let rival_ledger = Ledger::new(MemoryStore::new());
    let genesis_block = ledger.store().get(&cids[0]).unwrap().unwrap();
    rival_ledger.store().put(&genesis_block).unwrap();
    let mut commit = personctl_ledger::Commit::default();
    commit.heads.push(personctl_ledger::HeadUpdate {
        stream: stream.clone(),
        expected: None,
        new: personctl_ledger::Head {
            cid: cids[0],
            height: 0,
        },
    });
    rival_ledger.store().commit(&commit).unwrap();
    let mut d = Draft::new(stream.clone(), "EmailAdded", 1);
    d.expected = Expected::Height(0);
    let rival = rival_ledger
        .event(&rival_ledger.append(&signer, d).unwrap().cid)
        .unwrap();
    (stream, events, rival)
}

#[tokio::test]
async fn the_stream_is_created_as_the_ledger_needs_and_an_incompatible_one_is_refused() {
    let server = NatsServer::start();
    let js = jetstream(&server).await;
    let settings = Settings::default();
    ensure_stream(&js, &settings).await.unwrap();
    ensure_stream(&js, &settings)
        .await
        .expect("checking an existing, compatible stream");
    let info = js
        .get_stream(&settings.stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .clone();
    assert_eq!(info.storage, StorageType::File);
    assert!(info.deny_delete && info.deny_purge);
    assert_eq!(info.max_age, Duration::ZERO);
    assert_eq!(info.subjects, vec!["ledger.>".to_string()]);

    js.create_stream(Config {
        name: "OTHER".into(),
        subjects: vec!["other.>".into()],
        storage: StorageType::Memory,
        max_age: Duration::from_secs(3600),
        ..Config::default()
    })
    .await
    .unwrap();
    let other = Settings {
        stream: "OTHER".into(),
        prefix: "other".into(),
        ..Settings::default()
    };
    let err = ensure_stream(&js, &other).await.unwrap_err().to_string();
    for needle in [
        "OTHER exists but is incompatible",
        "storage is Memory",
        "max_age",
        "deny_delete",
        "deny_purge",
    ] {
        assert!(err.contains(needle), "{err:?} does not mention {needle:?}");
    }
}

#[tokio::test]
async fn messages_carry_only_links_and_a_republish_is_deduplicated() {
    let server = NatsServer::start();
    let js = jetstream(&server).await;
    let settings = Settings::default();
    ensure_stream(&js, &settings).await.unwrap();
    let (stream, events, _) = events();
    let subject = settings.subject(&stream);
    assert_eq!(subject, format!("ledger.person.{}", stream.id()));

    let notice = Notice::of(&events[0]);
    let first = publish(&js, &subject, &notice, 0).await.unwrap();
    assert!(!first.duplicate);
    let again = publish(&js, &subject, &notice, 0).await.unwrap();
    assert!(
        again.duplicate,
        "same Nats-Msg-Id: acknowledged as a duplicate"
    );
    assert_eq!(again.sequence, first.sequence);
    let second = publish(&js, &subject, &Notice::of(&events[1]), first.sequence)
        .await
        .unwrap();
    assert_eq!(second.sequence, first.sequence + 1);

    let mut js_stream = js.get_stream(&settings.stream).await.unwrap();
    assert_eq!(
        js_stream.info().await.unwrap().state.messages,
        2,
        "the duplicate was not stored"
    );
    let raw = js_stream.get_raw_message(first.sequence).await.unwrap();
    assert_eq!(Notice::decode(&raw.payload).unwrap(), notice);
    assert_eq!(
        raw.headers.get("Nats-Msg-Id").unwrap().as_str(),
        events[0].cid().to_string()
    );
    let second_raw = js_stream.get_raw_message(second.sequence).await.unwrap();
    assert_eq!(
        Notice::decode(&second_raw.payload).unwrap().prev,
        Some(events[0].cid())
    );

    // No personal value in the message, nor anywhere in the server's store.
    drop(js_stream);
    let needle = b"grace.secret.4711";
    assert!(!raw.payload.windows(needle.len()).any(|w| w == needle));
    let mut hits = Vec::new();
    for entry in walk(server.store_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(entry);
        }
    }
    assert!(hits.is_empty(), "personal value found in {hits:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn a_writer_with_a_stale_subject_sequence_loses_the_race() {
    let server = NatsServer::start();
    let js = jetstream(&server).await;
    let settings = Settings::default();
    ensure_stream(&js, &settings).await.unwrap();
    let (stream, events, rival) = events();
    let subject = settings.subject(&stream);
    let genesis = publish(&js, &subject, &Notice::of(&events[0]), 0)
        .await
        .unwrap();
    // Both writers built height 1 on the genesis; the first to publish wins.
    publish(&js, &subject, &Notice::of(&events[1]), genesis.sequence)
        .await
        .unwrap();
    let lost = publish(&js, &subject, &Notice::of(&rival), genesis.sequence)
        .await
        .unwrap_err();
    assert!(
        matches!(&lost, Error::SubjectMoved { expected_sequence, .. } if *expected_sequence == genesis.sequence),
        "{lost}"
    );
    assert!(lost.is_conflict());
    // A first event for a subject that already has one loses too.
    let lost = publish(&js, &subject, &Notice::of(&rival), 0)
        .await
        .unwrap_err();
    assert!(lost.is_conflict(), "{lost}");
    let mut js_stream = js.get_stream(&settings.stream).await.unwrap();
    assert_eq!(
        js_stream.info().await.unwrap().state.messages,
        2,
        "no fork in JetStream"
    );
}

#[tokio::test]
async fn a_restarted_server_keeps_every_acknowledged_message() {
    let mut server = NatsServer::start();
    let settings = Settings::default();
    let (stream, events, _) = events();
    let subject = settings.subject(&stream);
    {
        let js = jetstream(&server).await;
        ensure_stream(&js, &settings).await.unwrap();
        let mut last = 0;
        for e in &events {
            last = publish(&js, &subject, &Notice::of(e), last)
                .await
                .unwrap()
                .sequence;
        }
    }
    server.restart();
    let js = jetstream(&server).await;
    ensure_stream(&js, &settings).await.unwrap();
    let mut js_stream = js.get_stream(&settings.stream).await.unwrap();
    assert_eq!(
        js_stream.info().await.unwrap().state.messages,
        events.len() as u64
    );
    let last = js_stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .unwrap();
    assert_eq!(Notice::decode(&last.payload).unwrap().cid, events[2].cid());
}

#[tokio::test]
async fn the_block_bucket_returns_blocks_only_under_their_own_cid() {
    let server = NatsServer::start();
    let js = jetstream(&server).await;
    let settings = Settings::default();
    let blocks = Blocks::open(&js, &settings).await.unwrap();
    let ledger = Ledger::new(MemoryStore::new());
    let d = Draft::new("person/p1".parse().unwrap(), "PersonRegistered", 1)
        .with_data(Ipld::String("x".into()))
        .unwrap();
    let a = ledger.append(&fixture_signer(), d).unwrap();
    let event = ledger.store().get(&a.cid).unwrap().unwrap();
    blocks.put(&event).await.unwrap();
    blocks.put(&event).await.expect("idempotent");
    assert_eq!(blocks.get(&a.cid).await.unwrap(), Some(event.clone()));
    assert_eq!(blocks.get(&a.payload.unwrap()).await.unwrap(), None);

    // Bytes stored under the wrong key (a tampered bucket) are an error, never a block.
    let kv = js.get_key_value(&settings.bucket).await.unwrap();
    let payload = a.payload.unwrap();
    kv.put(payload.to_string(), event.bytes().to_vec().into())
        .await
        .unwrap();
    let err = blocks.get(&payload).await.unwrap_err();
    assert!(
        matches!(err, Error::CidMismatch { expected, .. } if expected == payload),
        "{err}"
    );

    blocks.purge(&a.cid).await.unwrap();
    assert_eq!(blocks.get(&a.cid).await.unwrap(), None);
    // Opening again finds the existing bucket.
    let again = Blocks::open(&js, &settings).await.unwrap();
    assert_eq!(again.get(&a.cid).await.unwrap(), None);
}

/// Publishes every event of `ledger`'s stream that JetStream lacks, blocks first.
async fn publish_all(
    js: &async_nats::jetstream::Context,
    settings: &Settings,
    blocks: &Blocks,
    ledger: &Ledger<MemoryStore>,
    stream: &StreamId,
) {
    let subject = settings.subject(stream);
    let mut last = 0;
    for event in ledger.walk_forward(stream).unwrap() {
        let event = event.unwrap();
        blocks
            .put(&ledger.store().get(&event.cid()).unwrap().unwrap())
            .await
            .unwrap();
        if let Some(p) = event.payload() {
            blocks
                .put(&ledger.store().get(&p).unwrap().unwrap())
                .await
                .unwrap();
        }
        last = publish(js, &subject, &Notice::of(&event), last)
            .await
            .unwrap()
            .sequence;
    }
}

#[tokio::test]
async fn a_reader_with_an_empty_store_rebuilds_a_stream_from_jetstream_and_the_bucket() {
    let server = NatsServer::start();
    let js = jetstream(&server).await;
    let settings = Settings::default();
    ensure_stream(&js, &settings).await.unwrap();
    let blocks = Blocks::open(&js, &settings).await.unwrap();
    let writer = Ledger::new(MemoryStore::new());
    let stream: StreamId = "person/p-7".parse().unwrap();
    for i in 0..3 {
        let d = Draft::new(stream.clone(), "Touched", 1)
            .with_data(Ipld::Integer(i))
            .unwrap();
        writer.append(&fixture_signer(), d).unwrap();
    }
    publish_all(&js, &settings, &blocks, &writer, &stream).await;

    // A reader with nothing: everything comes over, CIDs re-derived, and verifies.
    let reader = MemoryStore::new();
    let (head, sequence) =
        personctl_ledger::jetstream::fetch_stream(&js, &settings, &blocks, &stream, &reader)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(head, writer.store().head(&stream).unwrap().unwrap());
    assert_eq!(sequence, 3);
    let trust: personctl_ledger::TrustSet = [fixture_signer().author()].into_iter().collect();
    let report = personctl_ledger::verify(&reader, &trust, &Default::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert_eq!((report.events, report.payloads), (3, 3));
    assert_eq!(
        Ledger::new(&reader).chain(&stream).unwrap(),
        writer.chain(&stream).unwrap()
    );

    // The writer goes on; the reader fetches only what is new.
    let d = Draft::new(stream.clone(), "Touched", 1)
        .with_data(Ipld::Integer(9))
        .unwrap();
    writer.append(&fixture_signer(), d).unwrap();
    let new_head = writer.store().head(&stream).unwrap().unwrap();
    let last_seq = js
        .get_stream(&settings.stream)
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&settings.subject(&stream))
        .await
        .unwrap()
        .sequence;
    publish(
        &js,
        &settings.subject(&stream),
        &Notice::of(&writer.event(&new_head.cid).unwrap()),
        last_seq,
    )
    .await
    .unwrap();
    blocks
        .put(&writer.store().get(&new_head.cid).unwrap().unwrap())
        .await
        .unwrap();
    let p = writer.event(&new_head.cid).unwrap().payload().unwrap();
    blocks
        .put(&writer.store().get(&p).unwrap().unwrap())
        .await
        .unwrap();
    let (head, _) =
        personctl_ledger::jetstream::fetch_stream(&js, &settings, &blocks, &stream, &reader)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(head, new_head);
    assert!(
        personctl_ledger::verify(&reader, &trust, &Default::default(), &|_| {})
            .unwrap()
            .is_ok()
    );

    // A store whose own chain went elsewhere is a conflict, and nothing is written.
    let diverged = Ledger::new(MemoryStore::new());
    let d = Draft::new(stream.clone(), "Elsewhere", 1);
    diverged.append(&fixture_signer(), d).unwrap();
    let before = diverged.store().head(&stream).unwrap();
    let err = personctl_ledger::jetstream::fetch_stream(
        &js,
        &settings,
        &blocks,
        &stream,
        diverged.store(),
    )
    .await
    .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(diverged.store().head(&stream).unwrap(), before);

    // A stream JetStream never saw.
    let none: StreamId = "person/nobody".parse().unwrap();
    assert_eq!(
        personctl_ledger::jetstream::fetch_stream(&js, &settings, &blocks, &none, &reader)
            .await
            .unwrap(),
        None
    );
}
