//! The JetStream building blocks against a real nats-server: stream set-up and its
//! compatibility check, CID-only messages, deduplication, and the optimistic-concurrency header.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, StorageType};
use personctl_ledger::jetstream::{ensure_stream, Backbone, Blocks, Notice, Settings};
use personctl_ledger::{
    BlockStore, Draft, Error, Event, Expected, Ipld, Ledger, MemoryStore, StreamId,
};

use crate::nats::NatsServer;
use crate::{fixture_signer, walk};

async fn jetstream(server: &NatsServer) -> async_nats::jetstream::Context {
    let client = async_nats::connect(server.url())
        .await
        .expect("connecting to the test server");
    async_nats::jetstream::new(client)
}

/// A fresh test server and a backbone on it with the default settings.
async fn backbone() -> (NatsServer, Backbone) {
    let server = NatsServer::start();
    let backbone = Backbone::connect(&server.url(), Settings::default())
        .await
        .unwrap();
    (server, backbone)
}

/// Two writers' stores. The first holds a stream of three events, the genesis carrying a
/// personal value in its payload; the rival holds the same genesis and a competing event at
/// height 1.
struct Writers {
    stream: StreamId,
    events: Vec<Event>,
    store: MemoryStore,
    rival: Event,
    rival_store: MemoryStore,
}

fn writers() -> Writers {
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
    let genesis_payload = events[0].payload().unwrap();
    rival_ledger
        .store()
        .put(&ledger.store().get(&genesis_payload).unwrap().unwrap())
        .unwrap();
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
    Writers {
        stream,
        events,
        store: ledger.into_store(),
        rival,
        rival_store: rival_ledger.into_store(),
    }
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

/// A copy of `from`'s blocks and heads, without its published marks: the same events, as a
/// process that crashed before recording its acks would see them.
fn copy_without_marks(from: &MemoryStore) -> MemoryStore {
    let to = MemoryStore::new();
    let mut commit = personctl_ledger::Commit::default();
    from.scan(&mut |b| {
        commit.blocks.push(b.unwrap());
        true
    })
    .unwrap();
    for (stream, head) in from.heads().unwrap() {
        commit.heads.push(personctl_ledger::HeadUpdate {
            stream,
            expected: None,
            new: head,
        });
    }
    to.commit(&commit).unwrap();
    to
}

#[tokio::test]
async fn messages_carry_only_links_and_a_republish_is_deduplicated() {
    let (server, backbone) = backbone().await;
    let settings = backbone.settings().clone();
    let Writers {
        stream,
        events,
        store,
        ..
    } = writers();
    let subject = settings.subject(&stream);
    assert_eq!(subject, format!("ledger.person.{}", stream.id()));

    let report = backbone.publish(&store, None).await.unwrap();
    assert_eq!((report.published, report.duplicates), (3, 0));
    assert!(report.conflicts.is_empty() && report.all_settled());
    assert_eq!(
        store.published(&stream).unwrap().unwrap().head,
        store.head(&stream).unwrap().unwrap()
    );
    // Nothing pending: publishing again sends nothing.
    let again = backbone.publish(&store, None).await.unwrap();
    assert_eq!((again.published, again.duplicates), (0, 0));

    // A writer that lost its acks offers the events again: acknowledged as duplicates, and
    // not stored twice.
    let amnesiac = copy_without_marks(&store);
    let again = backbone.publish(&amnesiac, None).await.unwrap();
    assert_eq!((again.published, again.duplicates), (0, 3), "{again:?}");
    assert_eq!(
        amnesiac.published(&stream).unwrap(),
        store.published(&stream).unwrap()
    );

    let mut js_stream = backbone
        .context()
        .get_stream(&settings.stream)
        .await
        .unwrap();
    assert_eq!(js_stream.info().await.unwrap().state.messages, 3);
    let first = js_stream.get_raw_message(1).await.unwrap();
    assert_eq!(
        Notice::decode(&first.payload).unwrap(),
        Notice::of(&events[0])
    );
    assert_eq!(
        first.headers.get("Nats-Msg-Id").unwrap().as_str(),
        events[0].cid().to_string()
    );
    let second = js_stream.get_raw_message(2).await.unwrap();
    assert_eq!(
        Notice::decode(&second.payload).unwrap().prev,
        Some(events[0].cid())
    );

    // No personal value in any message, nor anywhere in the server's store but the bucket's
    // payload blocks (which erasure purges).
    drop(js_stream);
    let needle = b"grace.secret.4711";
    for seq in 1..=3 {
        let raw = backbone
            .context()
            .get_stream(&settings.stream)
            .await
            .unwrap()
            .get_raw_message(seq)
            .await
            .unwrap();
        assert!(!raw.payload.windows(needle.len()).any(|w| w == needle));
        for (name, values) in raw.headers.iter() {
            for v in values {
                assert!(!v.as_str().contains("grace"), "header {name}: {v:?}");
            }
        }
    }
    let mut hits = Vec::new();
    for entry in walk(server.store_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            hits.push(entry);
        }
    }
    assert!(
        !hits.is_empty()
            && hits.iter().all(|h| h
                .to_string_lossy()
                .contains(&format!("KV_{}", settings.bucket))),
        "personal value found outside the block bucket: {hits:?}"
    );
}

/// Verifies a store that the fixture key signed, and requires it to be clean.
#[track_caller]
fn verifies(store: &MemoryStore) -> personctl_ledger::Report {
    let trust: personctl_ledger::TrustSet = [fixture_signer().author()].into_iter().collect();
    let report = personctl_ledger::verify(store, &trust, &Default::default(), &|_| {}).unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    report
}

#[tokio::test]
async fn a_writer_that_loses_the_race_gets_a_conflict_and_follows_the_winner() {
    let (_server, backbone) = backbone().await;
    let Writers {
        stream,
        events,
        store,
        rival,
        rival_store,
    } = writers();
    // Both writers built height 1 on the same genesis; the first to publish wins.
    backbone.publish(&store, None).await.unwrap();
    let report = backbone.publish(&rival_store, None).await.unwrap();
    assert_eq!(
        report.duplicates, 1,
        "the shared genesis is JetStream's already"
    );
    assert_eq!(report.published, 0);
    assert_eq!(report.conflicts, vec![(stream.clone(), vec![rival.cid()])]);
    assert_eq!(report.fetched, 2, "the winner's two events came over");
    // The loser's event is gone; its store now holds the winner's chain, which verifies.
    assert!(!rival_store.contains(&rival.cid()).unwrap());
    assert_eq!(
        rival_store.head(&stream).unwrap(),
        store.head(&stream).unwrap()
    );
    verifies(&rival_store);
    let mut js_stream = backbone.context().get_stream("PERSONCTL").await.unwrap();
    assert_eq!(
        js_stream.info().await.unwrap().state.messages,
        events.len() as u64,
        "no fork in JetStream"
    );
    // The loser appends again on the winner's head: accepted.
    let ledger = Ledger::new(&rival_store);
    let mut d = Draft::new(stream.clone(), "Retried", 1);
    d.expected = Expected::Height(2);
    ledger.append(&fixture_signer(), d).unwrap();
    let report = backbone.publish(&rival_store, None).await.unwrap();
    assert_eq!((report.published, report.conflicts.len()), (1, 0));
}

#[tokio::test]
async fn an_event_built_on_a_refused_cause_is_withdrawn_with_it() {
    let (_server, backbone) = backbone().await;
    let Writers {
        stream,
        store,
        rival_store,
        ..
    } = writers();
    backbone.publish(&store, None).await.unwrap();
    // The rival, unaware, also names its own height-1 event as a cause in another stream.
    let other: StreamId = "order/o-1".parse().unwrap();
    let ledger = Ledger::new(&rival_store);
    ledger
        .append(&fixture_signer(), Draft::new(other.clone(), "Opened", 1))
        .unwrap();
    let rival_head = rival_store.head(&stream).unwrap().unwrap();
    let mut d = Draft::new(other.clone(), "Linked", 1);
    d.causes = vec![rival_head.cid];
    let linked = ledger.append(&fixture_signer(), d).unwrap();
    let report = backbone.publish(&rival_store, None).await.unwrap();
    assert!(report.all_settled(), "{:?}", report.failures);
    assert_eq!(report.published, 1, "only order/o-1's first event");
    let mut conflicts = report.conflicts.clone();
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec![
            (other.clone(), vec![linked.cid]),
            (stream.clone(), vec![rival_head.cid]),
        ]
    );
    assert_eq!(rival_store.head(&other).unwrap().unwrap().height, 0);
    verifies(&rival_store);
}

#[tokio::test]
async fn a_restarted_server_keeps_every_acknowledged_message() {
    let mut server = NatsServer::start();
    let Writers {
        stream,
        events,
        store,
        ..
    } = writers();
    let settings = Settings::default();
    {
        let backbone = Backbone::connect(&server.url(), settings.clone())
            .await
            .unwrap();
        let report = backbone.publish(&store, None).await.unwrap();
        assert_eq!(report.published, 3);
    }
    server.restart();
    let backbone = Backbone::connect(&server.url(), settings.clone())
        .await
        .unwrap();
    let mut js_stream = backbone
        .context()
        .get_stream(&settings.stream)
        .await
        .unwrap();
    assert_eq!(
        js_stream.info().await.unwrap().state.messages,
        events.len() as u64
    );
    let last = js_stream
        .get_last_raw_message_by_subject(&settings.subject(&stream))
        .await
        .unwrap();
    assert_eq!(Notice::decode(&last.payload).unwrap().cid, events[2].cid());
    let check = personctl_ledger::jetstream::cross_check(&backbone, &store, None)
        .await
        .unwrap();
    assert_eq!(check.messages, 3);
    assert!(check.findings.is_empty(), "{:?}", check.findings);
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

    assert!(blocks.erase(&a.cid).await.unwrap(), "it was there");
    assert_eq!(blocks.get(&a.cid).await.unwrap(), None);
    assert!(
        !blocks.erase(&a.cid).await.unwrap(),
        "erasing twice is harmless"
    );
    // Opening again finds the existing bucket.
    let again = Blocks::open(&js, &settings).await.unwrap();
    assert_eq!(again.get(&a.cid).await.unwrap(), None);
}

#[tokio::test]
async fn a_reader_with_an_empty_store_rebuilds_a_stream_from_jetstream_and_the_bucket() {
    let (_server, backbone) = backbone().await;
    let writer = Ledger::new(MemoryStore::new());
    let stream: StreamId = "person/p-7".parse().unwrap();
    for i in 0..3 {
        let d = Draft::new(stream.clone(), "Touched", 1)
            .with_data(Ipld::Integer(i))
            .unwrap();
        writer.append(&fixture_signer(), d).unwrap();
    }
    backbone.publish(writer.store(), None).await.unwrap();

    // A reader with nothing: everything comes over, CIDs re-derived, and verifies.
    let reader = MemoryStore::new();
    let pulled = backbone.pull(&reader, &stream).await.unwrap();
    assert_eq!(pulled.fetched, 3);
    assert_eq!(
        reader.head(&stream).unwrap(),
        writer.store().head(&stream).unwrap()
    );
    assert_eq!(reader.published(&stream).unwrap().unwrap().sequence, 3);
    let report = verifies(&reader);
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
    backbone.publish(writer.store(), None).await.unwrap();
    let pulled = backbone.pull(&reader, &stream).await.unwrap();
    assert_eq!(pulled.fetched, 1);
    assert_eq!(
        reader.head(&stream).unwrap(),
        writer.store().head(&stream).unwrap()
    );
    verifies(&reader);
    assert_eq!(
        backbone.pull(&reader, &stream).await.unwrap(),
        Default::default()
    );

    // A store whose own, unpublished event went elsewhere: it is withdrawn.
    let diverged = Ledger::new(MemoryStore::new());
    let elsewhere = diverged
        .append(
            &fixture_signer(),
            Draft::new(stream.clone(), "Elsewhere", 1),
        )
        .unwrap();
    let pulled = backbone.pull(diverged.store(), &stream).await.unwrap();
    assert_eq!(pulled.withdrawn, vec![elsewhere.cid]);
    assert_eq!(
        diverged.store().head(&stream).unwrap(),
        writer.store().head(&stream).unwrap()
    );

    // A store that believes JetStream acknowledged a different chain: an error, nothing written.
    let liar = Ledger::new(MemoryStore::new());
    let a = liar
        .append(
            &fixture_signer(),
            Draft::new(stream.clone(), "Elsewhere", 1),
        )
        .unwrap();
    let head = liar.store().head(&stream).unwrap().unwrap();
    liar.store()
        .set_published(&stream, personctl_ledger::Published { head, sequence: 1 })
        .unwrap();
    let err = backbone.pull(liar.store(), &stream).await.unwrap_err();
    assert!(err.to_string().contains("acknowledged"), "{err}");
    assert_eq!(liar.store().head(&stream).unwrap().unwrap().cid, a.cid);

    // A stream JetStream never saw.
    let none: StreamId = "person/nobody".parse().unwrap();
    assert_eq!(
        backbone.pull(&reader, &none).await.unwrap(),
        Default::default()
    );
}

#[tokio::test]
async fn fast_forward_stores_what_continues_a_head_in_one_commit_and_leaves_the_rest_to_pull() {
    let (_server, backbone) = backbone().await;
    let writer = Ledger::new(MemoryStore::new());
    let (a, b): (StreamId, StreamId) = ("thing/a".parse().unwrap(), "thing/b".parse().unwrap());
    let mut notices = Vec::new();
    for i in 0..3 {
        for s in [&a, &b] {
            let d = Draft::new(s.clone(), "Touched", 1)
                .with_data(Ipld::Integer(i))
                .unwrap();
            let appended = writer.append(&fixture_signer(), d).unwrap();
            notices.push((s.clone(), Notice::of(&writer.event(&appended.cid).unwrap())));
        }
    }
    backbone.publish(writer.store(), None).await.unwrap();
    // The sequences JetStream gave them: in append order, from 1.
    let with_seq: Vec<(StreamId, Notice, u64)> = notices
        .iter()
        .enumerate()
        .map(|(i, (s, n))| (s.clone(), n.clone(), i as u64 + 1))
        .collect();

    // A reader that has nothing of `a` and only misses b's first event is given everything but
    // b's first notice: `a` continues (from nothing), `b` does not (a gap).
    let reader = MemoryStore::new();
    let given: Vec<_> = with_seq
        .iter()
        .filter(|(s, _, seq)| !(s == &b && *seq == 2))
        .cloned()
        .collect();
    let left = backbone.fast_forward(&reader, &given).await.unwrap();
    assert_eq!(left, std::slice::from_ref(&b));
    assert_eq!(reader.head(&a).unwrap(), writer.store().head(&a).unwrap());
    assert_eq!(reader.head(&b).unwrap(), None);
    let mark = reader.published(&a).unwrap().unwrap();
    assert_eq!((mark.head.height, mark.sequence), (2, 5));
    // Given again: `a` is stored already and stays as it is; `b` still has its gap.
    assert_eq!(
        backbone.fast_forward(&reader, &given).await.unwrap(),
        std::slice::from_ref(&b)
    );
    assert_eq!(reader.published(&a).unwrap().unwrap(), mark);
    // `b` by pull; then both verify and equal the writer's chains.
    backbone.pull(&reader, &b).await.unwrap();
    verifies(&reader);
    for s in [&a, &b] {
        assert_eq!(
            Ledger::new(&reader).chain(s).unwrap(),
            writer.chain(s).unwrap()
        );
    }
}
