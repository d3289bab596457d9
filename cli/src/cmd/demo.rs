//! `personctl demo`: a fresh sample ledger on the embedded store, appended to, verified and shown.

use anyhow::{bail, Result};
use serde_json::json;

use personctl_ledger::{verify, Draft, Expected, Ipld, Ledger, Signer, StreamId, VerifyOptions};

use crate::args::DemoArgs;
use crate::config::{write_key, Config};
use crate::output::{time, Out};
use crate::{EXIT_NEGATIVE, EXIT_OK};

fn data(entries: &[(&str, &str)]) -> Ipld {
    Ipld::Map(
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), Ipld::String(v.to_string())))
            .collect(),
    )
}

pub(crate) fn run(args: &DemoArgs, out: &mut Out) -> Result<u8> {
    let home = match &args.dir {
        Some(d) if d.exists() => bail!(
            "--dir {}: already exists; the demo needs a new directory",
            d.display()
        ),
        Some(d) => d.clone(),
        None => tempfile::Builder::new()
            .prefix("personctl-demo-")
            .tempdir()?
            .keep(),
    };
    let config = Config {
        key: home.join("keys/default.pem"),
        home: home.clone(),
        json: out.is_json(),
    };
    let signer = Signer::generate()?;
    write_key(&config.key, &signer)?;
    let store = config.open_or_create_store()?;
    store.trust_add(&signer.author(), "demo")?;
    let ledger = Ledger::new(store);

    let ada: StreamId = "person/ada".parse()?;
    let alan: StreamId = "person/alan".parse()?;
    let org: StreamId = "org/analytical-engine".parse()?;
    let step = |stream: &StreamId, expected, ty: &str, d: Option<Ipld>| -> Result<Draft> {
        let mut draft = Draft::new(stream.clone(), ty, 1);
        draft.expected = expected;
        if let Some(d) = d {
            draft = draft.with_data(d)?;
        }
        Ok(draft)
    };
    // One durable batch for the registrations, then single appends with explicit expectations.
    ledger.append_batch(
        &signer,
        vec![
            step(
                &ada,
                Expected::Empty,
                "PersonRegistered",
                Some(data(&[("legal_name", "Ada Lovelace")])),
            )?,
            step(
                &alan,
                Expected::Empty,
                "PersonRegistered",
                Some(data(&[("legal_name", "Alan Turing")])),
            )?,
            step(
                &org,
                Expected::Empty,
                "OrganisationFounded",
                Some(data(&[("name", "Analytical Engine Society")])),
            )?,
        ],
    )?;
    ledger.append(
        &signer,
        step(
            &ada,
            Expected::Height(0),
            "EmailAdded",
            Some(data(&[("email", "ada@example.org")])),
        )?,
    )?;
    let ada_head = ledger.append(
        &signer,
        step(&ada, Expected::Height(1), "EmailVerified", None)?,
    )?;
    let mut joined = step(
        &org,
        Expected::Height(0),
        "MemberAdded",
        Some(data(&[("member", "ada")])),
    )?;
    joined.causes = vec![ada_head.cid];
    ledger.append(&signer, joined)?;
    ledger.append(
        &signer,
        step(
            &alan,
            Expected::Height(0),
            "PersonSuspended",
            Some(data(&[("reason", "on leave")])),
        )?,
    )?;

    for stream in [&ada, &alan, &org] {
        for event in ledger.walk_forward(stream)? {
            let event = event?;
            out.record(
                "event",
                json!({"stream": stream.to_string(), "height": event.height(), "type": event.event_type(),
                       "time": time(event.time_us()), "cid": event.cid().to_string(),
                       "causes": event.causes().iter().map(|c| c.to_string()).collect::<Vec<_>>()}),
                || {
                    let causes = if event.causes().is_empty() { String::new() } else { format!("  (caused by {})", event.causes()[0].short()) };
                    format!("{:<24} {:>2}  {:<20} {}{causes}", stream.to_string(), event.height(), event.event_type(), event.cid())
                },
            )?;
        }
    }
    let trust = config.trust(ledger.store())?;
    let report = verify(ledger.store(), &trust, &VerifyOptions::default(), &|_| {})?;
    out.record(
        "summary",
        json!({"home": home.display().to_string(), "ok": report.is_ok(), "events": report.events,
               "payloads": report.payloads, "streams": report.streams, "failures": report.findings.len()}),
        || {
            format!(
                "\nverify: {} ({} events, {} payloads, {} streams)\nexplore it:  export PERSONCTL_HOME={}\n             personctl verify; personctl log --person ada; personctl streams",
                if report.is_ok() { "OK" } else { "FAILED" },
                report.events,
                report.payloads,
                report.streams,
                home.display()
            )
        },
    )?;
    Ok(if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_NEGATIVE
    })
}
