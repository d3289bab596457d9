//! `personctl verify`: audit the store, report every failing CID; exit 1 on any failure.

use std::io::IsTerminal;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use personctl_ledger::jetstream::{check_replicas, cross_check};
use personctl_ledger::{verify, BlockStore, Scope, VerifyOptions};

use crate::args::VerifyArgs;
use crate::config::{stream_of, Config};
use crate::nats;
use crate::output::{self, Out};

pub(crate) fn run(config: &Config, args: &VerifyArgs, out: &mut Out) -> Result<u8> {
    if let (Some(path), Some(key)) = (&args.proof, &args.log_key) {
        return super::tlog::verify_proof(path, key, &args.witnesses, out);
    }
    if let Some(path) = &args.car {
        return super::car::verify(config, path, args.exact, out);
    }
    let scope = match stream_of(&args.select)? {
        Some(s) => Scope::Stream(s),
        None => Scope::All,
    };
    let store = config.open_for_reading()?;
    let trust = config.trust(&store)?;
    if trust.is_empty() {
        tracing::warn!("no trusted keys in this home: every event will be reported as untrusted");
    }
    let total: u64 = match &scope {
        Scope::All => store.heads()?.iter().map(|(_, h)| h.height + 1).sum(),
        Scope::Stream(s) => store.head(s)?.map_or(0, |h| h.height + 1),
    };
    let bar = progress_bar(out.is_json(), total);
    let started = Instant::now();
    // With --nats, identities and grants are judged at the shared log's positions (the same
    // on every home), and JetStream is cross-checked against the store (read-only: nothing
    // is published or pulled).
    let link = nats::connect(config)?;
    let rules = !store
        .heads_of(personctl_ledger::identity::KEY_AGGREGATE)?
        .is_empty()
        || !store
            .heads_of(personctl_ledger::policy::POLICY_AGGREGATE)?
            .is_empty();
    let order = match &link {
        Some(link) if rules => Some(
            link.shared_log()
                .context("reading JetStream's shared log")?,
        ),
        _ => None,
    };
    let options = VerifyOptions {
        scope,
        exact: args.exact,
        order,
    };
    let mut report = verify(&store, &trust, &options, &|n| bar.set_position(n))?;
    bar.finish_and_clear();
    let mut messages = None;
    if let Some(link) = link {
        let stream = match &options.scope {
            Scope::Stream(s) => Some(s),
            Scope::All => None,
        };
        let check = link
            .block_on(cross_check(link.backbone(), &store, stream))
            .context("cross-checking JetStream against the store")?;
        messages = Some(check.messages);
        report.findings.extend(check.findings);
        if let (true, Some((urls, settings))) = (args.replicas, &config.nats) {
            let found = check_replicas(urls, settings, &store, stream)
                .context("asking each server alone")?;
            report.findings.extend(found);
        }
    } else if args.replicas {
        bail!("--replicas needs --nats: the servers to ask");
    }
    if let Some(path) = &args.checkpoint {
        let checkpoint = super::tlog::open_checkpoint(config, path, args.log_key.as_deref())?;
        let ledger = personctl_ledger::Ledger::new(&store);
        if let Some(problem) = ledger.check_against(&checkpoint)? {
            report.findings.push(personctl_ledger::Finding {
                cid: None,
                stream: None,
                height: None,
                problem,
            });
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    output::verdict(&report, messages, seconds, out)
}

fn progress_bar(json: bool, total: u64) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() || total < 10_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events (eta {eta})")
    {
        bar.set_style(style);
    }
    bar
}
