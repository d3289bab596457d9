//! Recovery at open: every damage a crash or a bad disk can do to the tail of a store, each
//! as data (a name and what it does to the newest segment). For each, the store must open,
//! keep every commit before the damaged one, report what it did, take new appends, and open
//! clean the next time; and a read-only open of the damaged store must agree without changing
//! a byte.

use std::fs;
use std::path::Path;

use personctl_ledger::store::Repair;
use personctl_ledger::{
    verify, BlockStore, Draft, Ipld, Ledger, SledStore, StreamId, TrustSet, VerifyOptions,
};

use crate::golden::fixture_signer;

fn trust() -> TrustSet {
    [fixture_signer().author()].into_iter().collect()
}

fn stream() -> StreamId {
    "person/p".parse().unwrap()
}

/// Appends one commit of `n` events; returns the segment's length after it.
fn commit(ledger: &Ledger<SledStore>, n: usize, tag: &str, segment: &Path) -> u64 {
    let drafts = (0..n)
        .map(|i| {
            Draft::new(stream(), "Touched", 1)
                .with_data(Ipld::String(format!("{tag}-{i}")))
                .unwrap()
        })
        .collect();
    ledger.append_batch(&fixture_signer(), drafts).unwrap();
    fs::metadata(segment).unwrap().len()
}

/// What a damage does to the last commit: whether it survives.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Last {
    /// Kept; junk after it cut off.
    Kept,
    /// Kept; damage inside it skipped (its commit record and blocks are whole), nothing cut.
    Healed,
    /// Dropped with the torn tail.
    Dropped,
    /// Kept, nothing to repair: the damage hit bytes that are never read (a record header's
    /// copy of a CID the commit record also holds).
    Intact,
}

type Damage = fn(&mut Vec<u8>, u64);

/// (name, damage applied to the segment's bytes given where the last commit starts, outcome)
fn damages() -> Vec<(&'static str, Damage, Last)> {
    fn cut(b: &mut Vec<u8>, n: usize) {
        let len = b.len();
        b.truncate(len - n);
    }
    fn zero_tail(b: &mut [u8], n: usize) {
        let len = b.len();
        b[len - n..].fill(0);
    }
    vec![
        ("cut 1 byte", |b, _| cut(b, 1), Last::Dropped),
        ("cut 2 bytes", |b, _| cut(b, 2), Last::Dropped),
        ("cut 7 bytes", |b, _| cut(b, 7), Last::Dropped),
        ("cut 40 bytes", |b, _| cut(b, 40), Last::Dropped),
        ("cut 100 bytes", |b, _| cut(b, 100), Last::Dropped),
        (
            "cut to the middle of the last commit",
            |b, at| {
                let mid = (at as usize + b.len()) / 2;
                b.truncate(mid)
            },
            Last::Dropped,
        ),
        (
            "cut 3 bytes into the last commit",
            |b, at| b.truncate(at as usize + 3),
            Last::Dropped,
        ),
        (
            "cut the whole last commit",
            |b, at| b.truncate(at as usize),
            Last::Dropped,
        ),
        (
            "zero the last 5 bytes",
            |b, _| zero_tail(b, 5),
            Last::Dropped,
        ),
        (
            "zero the last 16 bytes",
            |b, _| zero_tail(b, 16),
            Last::Dropped,
        ),
        (
            "zero the last 256 bytes",
            |b, _| {
                let n = 256;
                zero_tail(b, n)
            },
            Last::Dropped,
        ),
        (
            "zero the last commit",
            |b, at| b[at as usize..].fill(0),
            Last::Dropped,
        ),
        (
            "flip the last byte",
            |b, _| *b.last_mut().unwrap() ^= 0x01,
            Last::Dropped,
        ),
        (
            "flip a bit in the last commit's first header",
            |b, at| b[at as usize] ^= 0x80,
            Last::Healed,
        ),
        (
            "flip a bit in the last commit's first CID",
            |b, at| b[at as usize + 20] ^= 0x04,
            Last::Intact,
        ),
        (
            "garble the last 64 bytes",
            |b, _| {
                let len = b.len();
                for (i, x) in b[len - 64..].iter_mut().enumerate() {
                    *x = (i as u8).wrapping_mul(37).wrapping_add(11);
                }
            },
            Last::Dropped,
        ),
        ("append 1 garbage byte", |b, _| b.push(0xff), Last::Kept),
        (
            "append 100 garbage bytes",
            |b, _| b.extend((0..100u8).map(|i| i ^ 0x5a)),
            Last::Kept,
        ),
        (
            "append 4 KiB of zeros",
            |b, _| b.extend(std::iter::repeat_n(0, 4096)),
            Last::Kept,
        ),
        (
            "append a header with a huge length",
            |b, _| {
                b.extend_from_slice(&u32::MAX.to_le_bytes());
                b.extend_from_slice(&[0x01, 0x71, 0x1e, 0x20]);
                b.extend_from_slice(&[7; 32]);
            },
            Last::Kept,
        ),
        (
            "append a whole block record without its commit record",
            |b, at| {
                // A copy of the last commit's first record: a complete, valid block, uncommitted.
                let len = u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap());
                let record = b[at as usize..at as usize + 40 + len as usize].to_vec();
                b.extend_from_slice(&record);
            },
            Last::Kept,
        ),
        (
            "append half a block record",
            |b, at| {
                let len = u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap());
                let record = b[at as usize..at as usize + 20 + len as usize / 2].to_vec();
                b.extend_from_slice(&record);
            },
            Last::Kept,
        ),
        (
            "append a second copy of the last commit",
            |b, at| {
                let copy = b[at as usize..].to_vec();
                b.extend_from_slice(&copy);
            },
            Last::Intact,
        ),
        ("cut everything", |b, _| b.clear(), Last::Dropped),
    ]
}

#[test]
fn every_tail_damage_opens_keeps_what_came_before_and_reports_it() {
    let list = damages();
    assert!(list.len() >= 24, "{} variants", list.len());
    for (name, damage, last) in list {
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("blocks/00000000.seg");
        let (before, at, all) = {
            let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
            let end_of_first = commit(&ledger, 3, "first", &segment);
            let before = ledger.chain(&stream()).unwrap();
            commit(&ledger, 2, "second", &segment);
            (before, end_of_first, ledger.chain(&stream()).unwrap())
        };
        let mut bytes = fs::read(&segment).unwrap();
        damage(&mut bytes, at);
        fs::write(&segment, &bytes).unwrap();

        // A read-only open first: it changes nothing and sees what a writer will keep.
        let reader = SledStore::open_read_only(dir.path())
            .unwrap_or_else(|e| panic!("{name}: read-only open failed: {e}"));
        let read_chain = Ledger::new(&reader).chain(&stream()).unwrap();
        drop(reader);
        assert_eq!(fs::read(&segment).unwrap(), bytes, "{name}: a reader wrote");

        let ledger = Ledger::new(
            SledStore::open(dir.path()).unwrap_or_else(|e| panic!("{name}: open failed: {e}")),
        );
        let chain = ledger.chain(&stream()).unwrap();
        let everything_cut = name == "cut everything";
        let expected = match (last, everything_cut) {
            (_, true) => Vec::new(),
            (Last::Kept | Last::Healed | Last::Intact, _) => all.clone(),
            (Last::Dropped, _) => before.clone(),
        };
        assert_eq!(chain, expected, "{name}: wrong chain after recovery");
        assert_eq!(read_chain, expected, "{name}: the reader saw another chain");
        let repairs = ledger.store().repairs().to_vec();
        let tail_cut = repairs
            .iter()
            .any(|r| matches!(r, Repair::TornTail { cut: true, .. }));
        match last {
            Last::Healed => assert!(
                matches!(repairs[..], [Repair::Damaged { .. }]),
                "{name}: {repairs:?}"
            ),
            _ if last == Last::Intact || bytes.is_empty() || bytes.len() as u64 == at => {
                assert!(repairs.is_empty(), "{name}: {repairs:?}")
            }
            _ => assert!(tail_cut, "{name}: no torn tail reported: {repairs:?}"),
        }
        for r in &repairs {
            assert!(!r.to_string().is_empty());
        }
        // The store verifies, takes new appends after the cut, and opens clean next time.
        let report = verify(ledger.store(), &trust(), &VerifyOptions::default(), &|_| {}).unwrap();
        assert!(report.is_ok(), "{name}: {report:?}");
        commit(&ledger, 1, "after", &segment);
        let after = ledger.chain(&stream()).unwrap();
        drop(ledger);
        let reopened = SledStore::open(dir.path()).unwrap();
        // Damage in the middle stays (and is reported at each open); a tail is gone for good.
        let lasting: Vec<Repair> = repairs
            .into_iter()
            .filter(|r| matches!(r, Repair::Damaged { .. }))
            .collect();
        assert_eq!(
            reopened.repairs(),
            &lasting[..],
            "{name}: not clean after recovery"
        );
        assert_eq!(Ledger::new(&reopened).chain(&stream()).unwrap(), after);
    }
}

#[test]
fn damage_in_the_middle_is_skipped_and_later_commits_stay() {
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("blocks/00000000.seg");
    let other: StreamId = "person/q".parse().unwrap();
    let (at, end) = {
        let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
        let at = commit(&ledger, 2, "first", &segment);
        let draft = Draft::new(other.clone(), "Touched", 1)
            .with_data(Ipld::String("q".into()))
            .unwrap();
        ledger.append(&fixture_signer(), draft).unwrap();
        let end = commit(&ledger, 2, "third", &segment);
        (at, end)
    };
    // Garble the second commit's first record (stream q), header and bytes: a bad sector.
    let mut bytes = fs::read(&segment).unwrap();
    bytes[at as usize + 4..at as usize + 60].fill(0xee);
    fs::write(&segment, &bytes).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(
        store
            .repairs()
            .iter()
            .any(|r| matches!(r, Repair::Damaged { offset, .. } if *offset == at)),
        "{:?}",
        store.repairs()
    );
    assert_eq!(
        fs::metadata(&segment).unwrap().len(),
        end,
        "nothing was cut"
    );
    let ledger = Ledger::new(&store);
    assert_eq!(
        ledger.chain(&stream()).unwrap().len(),
        4,
        "commits after the damage stay"
    );
    // The damaged commit's record survived, so its head is known and its damaged block is
    // named by verify: the damage is reported, never an "OK".
    let report = verify(&store, &trust(), &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(!report.is_ok());
}

#[test]
fn a_leftover_sled_snapshot_and_a_broken_index_do_not_cost_the_home() {
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("blocks/00000000.seg");
    let chain = {
        let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
        commit(&ledger, 3, "a", &segment);
        ledger
            .store()
            .trust_add(&fixture_signer().author(), "me")
            .unwrap();
        ledger.chain(&stream()).unwrap()
    };
    // What a kill during sled's snapshot leaves (sled #1527).
    fs::write(
        dir.path().join("index/snap.FFFFFFFFFFFFFFFF.generating"),
        b"half",
    )
    .unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert!(
        matches!(store.repairs(), [Repair::Leftover { .. }]),
        "{:?}",
        store.repairs()
    );
    assert_eq!(Ledger::new(&store).chain(&stream()).unwrap(), chain);
    drop(store);
    // The index lost altogether, then garbled: the segments still hold everything.
    fs::remove_dir_all(dir.path().join("index")).unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(Ledger::new(&store).chain(&stream()).unwrap(), chain);
    drop(store);
    for entry in fs::read_dir(dir.path().join("index")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            fs::write(&path, vec![0xa5; 300]).unwrap();
        }
    }
    let store = SledStore::open(dir.path()).unwrap();
    assert!(
        store
            .repairs()
            .iter()
            .any(|r| matches!(r, Repair::IndexRebuilt { .. })),
        "{:?}",
        store.repairs()
    );
    assert_eq!(Ledger::new(&store).chain(&stream()).unwrap(), chain);
    assert_eq!(
        store.trust_list().unwrap().len(),
        1,
        "trust lives outside sled"
    );
}

#[test]
fn a_read_only_copy_verifies_and_refuses_writes() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let segment = dir.path().join("blocks/00000000.seg");
    {
        let ledger = Ledger::new(SledStore::open(dir.path()).unwrap());
        commit(&ledger, 3, "a", &segment);
    }
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&segment), 0o600, "segments hold personal data");
    assert_eq!(mode(&dir.path().join("blocks")), 0o700);
    for entry in fs::read_dir(dir.path().join("index")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    // While a writer holds the store, a reader still reads it.
    let writer = SledStore::open(dir.path()).unwrap();
    let reader = SledStore::open_read_only(dir.path()).unwrap();
    assert!(reader.is_read_only());
    let report = verify(&reader, &trust(), &VerifyOptions::default(), &|_| {}).unwrap();
    assert!(report.is_ok());
    let draft = Draft::new(stream(), "Touched", 1)
        .with_data(Ipld::String("x".into()))
        .unwrap();
    let refused = Ledger::new(&reader).append(&fixture_signer(), draft);
    assert!(
        matches!(refused, Err(personctl_ledger::Error::ReadOnly { .. })),
        "{refused:?}"
    );
    assert!(reader.heads().unwrap().len() == 1);
    drop(writer);
}
