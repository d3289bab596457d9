//! The identities' stage: `verify` of a store whose events are signed by 100 identities that
//! rotate 1,000 times in all, under a policy of 100 grants, next to the plain `verify`.

use personctl_ledger::{verify, Ledger, Signer, SledStore, StreamId, TrustSet, VerifyOptions};

use crate::embedded::{drafts, timed, Row, VERIFY_STORE};
use crate::Result;

/// Identities writing, rotations in all, grants.
const IDENTITIES: usize = 100;
const ROTATIONS: u64 = 1_000;

/// The stage; its row goes with the embedded ones.
pub(crate) fn stages(args: &crate::Options, rows: &mut Vec<Row>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let ledger = Ledger::new(SledStore::open(tmp.path().join("identities"))?);
    let (admin_key, admin_next) = (Signer::generate()?, Signer::generate()?);
    let admin = ledger.incept_identity(&admin_key, &admin_next.author())?;
    let mut trust = TrustSet::new().with_identity(admin.clone());
    // Each identity: its id, current key, next key.
    let mut ids: Vec<(StreamId, Signer, Signer)> = Vec::with_capacity(IDENTITIES);
    for _ in 0..IDENTITIES {
        let (current, next) = (Signer::generate()?, Signer::generate()?);
        let id = ledger.incept_identity(&current, &next.author())?;
        ledger.grant_write(&admin, &admin_key, &id, "person", &[])?;
        trust = trust.with_identity(id.clone());
        ids.push((id, current, next));
    }
    let streams: Vec<StreamId> = (0..args.streams)
        .map(|i| StreamId::new("person", format!("id-{i}")).expect("valid"))
        .collect();
    let all: Vec<u64> = (0..args.events).collect();
    let batches = all.chunks(args.batch as usize).count() as u64;
    let mut rotated = 0;
    for (b, part) in all.chunks(args.batch as usize).enumerate() {
        let (_, current, _) = &ids[b % IDENTITIES];
        ledger.append_batch(current, drafts(&streams, part)?)?;
        // Rotations spread evenly over the batches.
        let due = (b as u64 + 1) * ROTATIONS / batches;
        while rotated < due {
            let (id, current, next) = &mut ids[(rotated as usize) % IDENTITIES];
            let after = Signer::generate()?;
            ledger.rotate_identity(id, next, &after.author())?;
            *current = std::mem::replace(next, after);
            rotated += 1;
        }
    }
    let (report, s) = timed(|| verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {}));
    let report = report?;
    if !report.is_ok() {
        return Err(format!(
            "the identities' store did not verify: {:?}",
            report.findings.first()
        )
        .into());
    }
    rows.push(Row {
        stage: "verify, identities and grants",
        events: report.events,
        seconds: s,
        note: format!("{IDENTITIES} identities, {rotated} rotations, {IDENTITIES} grants in force"),
        ceiling: Some(VERIFY_STORE),
    });
    Ok(())
}
