//! Judging authors and grants on the JetStream path with `verify`'s rules
//! ([`crate::policy::Rules`]), every event at its position in the shared log
//! ([`Backbone::shared_log`]): what adoption (`pull`, `fast_forward`) and the follower apply.
//!
//! - A store with no key or policy chain is judged on its trusted raw keys alone, and nothing
//!   is read from JetStream.
//! - Otherwise the positions are read from the event stream once and then grown from its tail
//!   as new events are met; the rules are resolved again whenever the key or policy chains the
//!   store holds move.
//! - An author no identity knows makes the key and policy chains be pulled from JetStream once
//!   (per new message in the event stream), so a key that rotated in elsewhere is recognised.
//! - A key chain (`key/ID`) is adopted when its identity is trusted here: it is
//!   self-certifying (its id derives from its inception, each rotation from the digest the key
//!   before committed to), and `verify` checks its rules.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use futures_util::StreamExt;

use super::Backbone;
use crate::identity::KEY_AGGREGATE;
use crate::policy::{Rules, POLICY_AGGREGATE};
use crate::store::{BlockStore, Head};
use crate::{Cid, Event, Problem, Result, StreamId, TrustSet};

/// While it lives, [`Backbone::judge`] pulls no key or policy chain.
pub(super) struct HoldRules<'a> {
    backbone: &'a Backbone,
    was: bool,
}

impl Drop for HoldRules<'_> {
    fn drop(&mut self) {
        self.backbone
            .pulling_rules
            .store(self.was, Ordering::SeqCst);
    }
}

/// The rules and shared-log positions a backbone judged with last.
#[derive(Default)]
pub(in crate::jetstream) struct Cache {
    /// The key and policy heads the rules were resolved at (`None`: not resolved).
    chains: Option<Vec<(StreamId, Head)>>,
    rules: Rules,
    /// Every event of the event stream read so far, at its shared-log position.
    positions: HashMap<Cid, u64>,
    /// The next stream sequence to read.
    next_sequence: u64,
    /// The event stream's last sequence when the rule chains were last pulled.
    pulled_at: Option<u64>,
}

fn rule_chains<S: BlockStore + ?Sized>(store: &S) -> Result<Vec<(StreamId, Head)>> {
    let mut chains = store.heads_of(KEY_AGGREGATE)?;
    chains.extend(store.heads_of(POLICY_AGGREGATE)?);
    Ok(chains)
}

fn untrusted(event: &Event) -> Problem {
    Problem::UntrustedAuthor {
        author: *event.author(),
    }
}

impl Backbone {
    /// What `verify` would report of `event`'s author and grant under `trust` (`None`: it
    /// stands), judged at the event's position in the shared log with the key and policy
    /// chains `store` holds (pulled from JetStream when the author is unknown).
    pub async fn judge<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        trust: &TrustSet,
        event: &Event,
    ) -> Result<Option<Problem>> {
        if event.stream().aggregate() == KEY_AGGREGATE {
            let adopted = trust.trusts_identity(event.stream()) || trust.contains(event.author());
            return Ok((!adopted).then(|| untrusted(event)));
        }
        let verdict = self.judge_held(store, trust, event).await?;
        let unknown = matches!(verdict, Some(Problem::UntrustedAuthor { .. }));
        if unknown && self.pull_rule_chains(store).await? {
            return self.judge_held(store, trust, event).await;
        }
        Ok(verdict)
    }

    /// [`Backbone::judge`] with the rule chains `store` holds now.
    async fn judge_held<S: BlockStore + ?Sized>(
        &self,
        store: &S,
        trust: &TrustSet,
        event: &Event,
    ) -> Result<Option<Problem>> {
        let chains = rule_chains(store)?;
        if chains.is_empty() {
            return Ok((!trust.contains(event.author())).then(|| untrusted(event)));
        }
        // Taken out while it is worked on (no lock is held across a wait); a concurrent judge
        // starts from an empty one.
        let mut cache = self
            .rules
            .lock()
            .expect("rules lock")
            .take()
            .unwrap_or_default();
        let result = self
            .judge_cached(&mut cache, store, trust, event, chains)
            .await;
        *self.rules.lock().expect("rules lock") = Some(cache);
        result
    }

    async fn judge_cached<S: BlockStore + ?Sized>(
        &self,
        cache: &mut Cache,
        store: &S,
        trust: &TrustSet,
        event: &Event,
        chains: Vec<(StreamId, Head)>,
    ) -> Result<Option<Problem>> {
        if cache.chains.as_ref() != Some(&chains) || cache.rules.trust != *trust {
            // Every rule chain event is in the event stream: read up to its end first.
            self.grow_positions(cache).await?;
            let positions = &cache.positions;
            cache.rules = Rules::of_store_at(store, trust, &|c| positions.get(c).copied())?;
            cache.chains = Some(chains);
        }
        let author = event.author();
        let position = if cache.rules.needs_position(author) {
            if !cache.positions.contains_key(&event.cid()) {
                self.grow_positions(cache).await?;
            }
            cache.positions.get(&event.cid()).copied()
        } else {
            None
        };
        Ok(cache
            .rules
            .judge(author, event.stream(), event.event_type(), position))
    }

    /// Reads the event stream from where `cache` stopped to its end (a CID published again
    /// keeps its first place, as in [`Backbone::shared_log`]).
    async fn grow_positions(&self, cache: &mut Cache) -> Result<()> {
        let Some(last) = self.last_sequence().await? else {
            return Ok(());
        };
        let start = cache.next_sequence.max(1);
        if last < start {
            return Ok(());
        }
        let messages = self.messages_from(start).await?;
        futures_util::pin_mut!(messages);
        while let Some(m) = messages.next().await {
            let m = m?;
            let next = cache.positions.len() as u64;
            cache.positions.entry(m.notice.cid).or_insert(next);
            cache.next_sequence = m.sequence + 1;
            if m.pending == 0 || m.sequence >= last {
                break;
            }
        }
        Ok(())
    }

    /// Pulls every key and policy chain JetStream has into `store`, once per new message in
    /// the event stream; whether anything was pulled. Chains refused as untrusted stay out.
    async fn pull_rule_chains<S: BlockStore + ?Sized>(&self, store: &S) -> Result<bool> {
        // A policy chain's own adoption judges its admin: no second pull from inside this one
        // (nor during an adoption in the shared order, which holds them).
        if self.pulling_rules.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(last) = self.last_sequence().await? else {
            return Ok(false);
        };
        {
            let mut guard = self.rules.lock().expect("rules lock");
            let cache = guard.get_or_insert_with(Cache::default);
            if cache.pulled_at == Some(last) {
                return Ok(false);
            }
            cache.pulled_at = Some(last);
        }
        let _held = self.hold_rule_chains();
        self.pull_rule_chains_now(store).await
    }

    /// Keeps [`Backbone::judge`] from pulling key and policy chains until the guard drops.
    pub(super) fn hold_rule_chains(&self) -> HoldRules<'_> {
        HoldRules {
            backbone: self,
            was: self.pulling_rules.swap(true, Ordering::SeqCst),
        }
    }

    /// Boxed, as it is a future inside [`Backbone::pull`]'s own (through `judge`).
    fn pull_rule_chains_now<'a, S: BlockStore + ?Sized>(
        &'a self,
        store: &'a S,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool>> + Send + 'a>> {
        Box::pin(async move {
            let mut fetched = 0;
            for aggregate in [KEY_AGGREGATE, POLICY_AGGREGATE] {
                for stream in self.streams_of(aggregate).await? {
                    match self.pull(store, &stream).await {
                        Ok(pulled) => fetched += pulled.fetched,
                        Err(e @ crate::Error::Untrusted { .. }) => {
                            tracing::debug!(%stream, error = %e, "a rule chain not adopted")
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Ok(fetched > 0)
        })
    }
}
