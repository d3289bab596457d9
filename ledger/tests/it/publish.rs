//! The write path with a shared log, against a scripted `Publisher`: the erasure order (nothing
//! removed before the tombstone is acknowledged, the log's blocks erased after the local
//! purge), a lost race decided again or reported as a conflict, the retry bound, and writes that
//! stay pending when the log does not answer.

use std::cell::RefCell;
use std::collections::HashSet;

use personctl_ledger::{
    BlockStore, Cid, Draft, Error, Expected, Ipld, Ledger, MemoryStore, PublishReport, Publisher,
    Retry, Signer, StreamId, Tombstone,
};

fn signer() -> Signer {
    Signer::from_seed([6; 32])
}

fn stream() -> StreamId {
    "org/acme".parse().unwrap()
}

/// How the scripted log answers a publish.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// Acknowledges every pending event.
    Ack,
    /// Says every event published lost a race.
    Lose,
    /// Does not answer: the events stay pending.
    Fail,
}

/// A log that answers as told and records, in order, what it was asked.
struct Scripted {
    answer: RefCell<Vec<Answer>>,
    calls: RefCell<Vec<String>>,
    /// For each erase_blocks call: whether the local store still held any of the blocks.
    erased_while_stored: RefCell<Vec<bool>>,
}

impl Scripted {
    fn new(answers: &[Answer]) -> Scripted {
        Scripted {
            answer: RefCell::new(answers.iter().rev().copied().collect()),
            calls: RefCell::default(),
            erased_while_stored: RefCell::default(),
        }
    }

    fn next(&self) -> Answer {
        let mut answers = self.answer.borrow_mut();
        match answers.len() {
            0 => Answer::Ack,
            1 => answers[0],
            _ => answers.pop().expect("not empty"),
        }
    }
}

impl Publisher for Scripted {
    fn publish(
        &self,
        store: &dyn BlockStore,
        streams: Option<&[StreamId]>,
    ) -> personctl_ledger::Result<PublishReport> {
        self.calls.borrow_mut().push("publish".into());
        let mut report = PublishReport::default();
        for stream in streams.unwrap_or_default() {
            let head = store.head(stream)?.expect("published streams have a head");
            match self.next() {
                Answer::Ack => report.published += 1,
                Answer::Lose => report.conflicts.push((stream.clone(), vec![head.cid])),
                Answer::Fail => report.failures.push((
                    stream.clone(),
                    Error::InvalidEvent("the scripted log does not answer".into()),
                )),
            }
        }
        Ok(report)
    }

    fn pull(&self, _: &dyn BlockStore, _: &StreamId) -> personctl_ledger::Result<u64> {
        self.calls.borrow_mut().push("pull".into());
        Ok(0)
    }

    fn erase_blocks(&self, cids: &[Cid]) -> personctl_ledger::Result<u64> {
        self.calls.borrow_mut().push("erase_blocks".into());
        Ok(cids.len() as u64)
    }
}

/// A log that also checks, when asked to erase blocks, that they are gone here already.
struct Checking<'a> {
    log: Scripted,
    store: &'a MemoryStore,
}

impl Publisher for Checking<'_> {
    fn publish(
        &self,
        store: &dyn BlockStore,
        streams: Option<&[StreamId]>,
    ) -> personctl_ledger::Result<PublishReport> {
        self.log.publish(store, streams)
    }

    fn pull(&self, store: &dyn BlockStore, stream: &StreamId) -> personctl_ledger::Result<u64> {
        self.log.pull(store, stream)
    }

    fn erase_blocks(&self, cids: &[Cid]) -> personctl_ledger::Result<u64> {
        let stored = cids.iter().any(|c| self.store.contains(c).unwrap());
        self.log.erased_while_stored.borrow_mut().push(stored);
        self.log.erase_blocks(cids)
    }
}

/// Two events with payloads on the test stream; returns the payload CIDs.
fn two_payloads(ledger: &Ledger<&MemoryStore>) -> Vec<Cid> {
    (0..2)
        .map(|i| {
            let draft = Draft::new(stream(), "Noted", 1)
                .with_data(Ipld::String(format!("personal value {i}")))
                .unwrap();
            ledger.append(&signer(), draft).unwrap().payload.unwrap()
        })
        .collect()
}

fn tombstone(ledger: &Ledger<&MemoryStore>, masks: Vec<Cid>) -> Draft {
    let head = ledger.store().head(&stream()).unwrap().unwrap();
    Tombstone {
        masks,
        reason: "asked".into(),
        scope: "member".into(),
    }
    .draft(stream())
    .unwrap()
    .expecting(Expected::Height(head.height))
}

#[test]
fn an_erasure_removes_nothing_before_its_tombstone_is_acknowledged() {
    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    let payloads = two_payloads(&ledger);
    // The log does not answer: the tombstone is stored and pending, nothing is removed.
    let log = Scripted::new(&[Answer::Fail]);
    let draft = tombstone(&ledger, vec![payloads[0]]);
    let err = ledger.erase(&signer(), draft, Some(&log)).unwrap_err();
    assert!(matches!(err, Error::NotPublished { .. }), "{err}");
    assert!(err.is_offline());
    assert!(
        store.contains(&payloads[0]).unwrap(),
        "removed before the ack"
    );
    assert!(!log.calls.borrow().contains(&"erase_blocks".to_string()));
    // A tombstone that loses its race is withdrawn: nothing removed either.
    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    let payloads = two_payloads(&ledger);
    let log = Scripted::new(&[Answer::Lose]);
    let err = ledger
        .erase(&signer(), tombstone(&ledger, vec![payloads[0]]), Some(&log))
        .unwrap_err();
    assert!(
        matches!(err, Error::Withdrawn { .. }) && err.is_conflict(),
        "{err}"
    );
    assert!(store.contains(&payloads[0]).unwrap());
}

#[test]
fn an_acknowledged_erasure_purges_here_then_in_the_log() {
    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    let payloads = two_payloads(&ledger);
    let log = Checking {
        log: Scripted::new(&[Answer::Ack]),
        store: &store,
    };
    let erased = ledger
        .erase(&signer(), tombstone(&ledger, vec![payloads[0]]), Some(&log))
        .unwrap();
    assert_eq!(erased.masked, 1);
    assert_eq!(erased.removed, vec![payloads[0]]);
    assert_eq!(erased.erased_remote, Some(1));
    assert!(!store.contains(&payloads[0]).unwrap());
    assert!(store.contains(&payloads[1]).unwrap(), "only what it masks");
    assert_eq!(*log.log.calls.borrow(), ["publish", "erase_blocks"]);
    assert_eq!(
        *log.log.erased_while_stored.borrow(),
        [false],
        "local purge first"
    );
    // Not a tombstone: refused before anything is written.
    let head = store.head(&stream()).unwrap();
    let not = Draft::new(stream(), "Noted", 1);
    assert!(matches!(
        ledger.erase(&signer(), not, None),
        Err(Error::InvalidEvent(_))
    ));
    assert_eq!(store.head(&stream()).unwrap(), head);
}

#[test]
fn a_lost_race_is_decided_again_and_a_pinned_draft_is_a_conflict() {
    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    // Lose twice, then win: three decisions, two lost rounds.
    let log = Scripted::new(&[Answer::Lose, Answer::Lose, Answer::Ack]);
    let mut decisions = 0;
    let (appended, lost) = ledger
        .append_decided(&signer(), &stream(), Some(&log), Retry::default(), |_| {
            decisions += 1;
            Ok::<_, Error>(vec![Draft::new(stream(), "Noted", 1)])
        })
        .unwrap();
    assert_eq!((decisions, lost, appended.len()), (3, 2, 1));
    assert_eq!(log.calls.borrow()[0], "pull", "decided on the newest state");
    // Nothing to decide: nothing appended, nothing published.
    let log = Scripted::new(&[]);
    let (appended, _) = ledger
        .append_decided(&signer(), &stream(), Some(&log), Retry::default(), |_| {
            Ok::<_, Error>(Vec::new())
        })
        .unwrap();
    assert!(appended.is_empty());
    assert!(!log.calls.borrow().contains(&"publish".to_string()));
    // A draft pinned to a height that loses is a conflict, never appended again.
    let head = store.head(&stream()).unwrap().unwrap();
    let log = Scripted::new(&[Answer::Lose]);
    let pinned = Draft::new(stream(), "Noted", 1).expecting(Expected::Height(head.height));
    let err = ledger
        .append_published(&signer(), pinned, Some(&log), Retry::default())
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(
        log.calls
            .borrow()
            .iter()
            .filter(|c| *c == "publish")
            .count(),
        1
    );
}

#[test]
fn losing_every_round_ends_with_still_losing_and_a_silent_log_leaves_events_pending() {
    let store = MemoryStore::new();
    let ledger = Ledger::new(&store);
    let log = Scripted::new(&[Answer::Lose]);
    let err = ledger
        .append_published(
            &signer(),
            Draft::new(stream(), "Noted", 1),
            Some(&log),
            Retry { rounds: 3 },
        )
        .unwrap_err();
    assert!(matches!(err, Error::StillLosing { rounds: 3, .. }), "{err}");
    assert!(err.is_conflict());
    // The log does not answer: the event is stored, and the error says it is pending.
    let log = Scripted::new(&[Answer::Fail]);
    let before = store.head(&stream()).unwrap().map(|h| h.height);
    let err = ledger
        .append_published(
            &signer(),
            Draft::new(stream(), "Noted", 1),
            Some(&log),
            Retry::default(),
        )
        .unwrap_err();
    assert!(err.is_offline(), "{err}");
    assert!(err.to_string().contains("kept pending"), "{err}");
    let after = store.head(&stream()).unwrap().map(|h| h.height);
    assert_eq!(after, before.map(|h| h + 1), "stored here");
    // Without a publisher, the same calls work on the local store alone.
    let seen: HashSet<Cid> = (0..2)
        .map(|_| {
            ledger
                .append_published(
                    &signer(),
                    Draft::new(stream(), "Noted", 1),
                    None,
                    Retry::default(),
                )
                .unwrap()
                .cid
        })
        .collect();
    assert_eq!(seen.len(), 2);
}
