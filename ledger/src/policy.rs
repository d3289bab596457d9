//! Write authorization as ledger data: policy chains, written by an admin identity, that grant
//! identities the right to write a stream type (or some event types in it), checked by the same
//! `verify` as the data.
//!
//! The policy of admin identity `key/ID` is the stream `policy/ID`; every event of it is signed
//! by the admin's current key at its position (`crate::identity`), and holds no personal data:
//!
//! - [`WRITE_GRANTED`]: `{"identity": "key/…", "aggregate": TYPE, "events": [NAME…]}`: from here
//!   on, that identity may write streams `TYPE/…`, only the events named (none named: any).
//! - [`WRITE_REVOKED`]: `{"identity": "key/…", "aggregate": TYPE}`: from here on, it may not.
//!
//! A policy is *in force* when the verifier trusts its admin identity. While any policy is in
//! force, every event outside `key/*` and `policy/*` must be signed by an identity's current key
//! and granted at its position by a policy in force, or it is `unauthorized`; a store with no
//! policy in force is judged on trust alone, as before.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::identity::{Identities, KeyVerdict};
use crate::ledger::Ledger;
use crate::store::BlockStore;
use crate::{Author, Cid, Draft, Error, Expected, Problem, Result, Signer, StreamId, TrustSet};

/// The aggregate type of policy chains.
pub const POLICY_AGGREGATE: &str = "policy";
/// A grant.
pub const WRITE_GRANTED: &str = "WriteGranted";
/// A grant withdrawn.
pub const WRITE_REVOKED: &str = "WriteRevoked";
/// The schema of policy payloads.
pub const POLICY_SCHEMA: u64 = 1;

/// A grant's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    identity: String,
    aggregate: String,
    events: Vec<String>,
}

/// A withdrawal's payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Withdraw {
    identity: String,
    aggregate: String,
}

/// One grant in force between two log positions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantPeriod {
    /// The admin identity whose policy granted it.
    pub admin: StreamId,
    /// The event types granted (empty: any).
    pub events: Vec<String>,
    /// From this position on.
    pub from: u64,
    /// Until this position (`None`: still).
    pub until: Option<u64>,
}

/// A policy event that breaks the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadPolicyEvent {
    /// The event.
    pub cid: Cid,
    /// Its stream.
    pub stream: StreamId,
    /// Its height.
    pub height: u64,
    /// Why.
    pub reason: String,
}

/// Every policy in force under a trust set.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    grants: HashMap<(StreamId, String), Vec<GrantPeriod>>,
    in_force: bool,
    /// Policy events that break the rules (not applied).
    pub bad: Vec<BadPolicyEvent>,
}

/// The policy stream of admin identity `admin` (`key/ID` → `policy/ID`).
pub fn policy_stream(admin: &StreamId) -> Result<StreamId> {
    StreamId::new(POLICY_AGGREGATE, admin.id())
}

impl Policies {
    /// Reads every `policy/*` chain of `store` whose admin `trust` trusts, with positions from
    /// `position`.
    pub fn of_store<S: BlockStore + ?Sized>(
        store: &S,
        identities: &Identities,
        trust: &TrustSet,
        position: &dyn Fn(&Cid) -> Option<u64>,
    ) -> Result<Policies> {
        Policies::of_chains(store, policy_chains(store)?, identities, trust, position)
    }

    fn of_chains<S: BlockStore + ?Sized>(
        store: &S,
        chains: Vec<(StreamId, Vec<Cid>)>,
        identities: &Identities,
        trust: &TrustSet,
        position: &dyn Fn(&Cid) -> Option<u64>,
    ) -> Result<Policies> {
        let mut out = Policies::default();
        for (stream, chain) in chains {
            let admin = StreamId::new(crate::identity::KEY_AGGREGATE, stream.id())?;
            if !trust.trusts_identity(&admin) {
                continue;
            }
            out.in_force = true;
            for (height, cid) in chain.iter().enumerate() {
                let at = position(cid).unwrap_or(u64::MAX);
                if let Err(reason) = out.apply(store, identities, &admin, cid, at) {
                    out.bad.push(BadPolicyEvent {
                        cid: *cid,
                        stream: stream.clone(),
                        height: height as u64,
                        reason,
                    });
                }
            }
        }
        Ok(out)
    }

    fn apply<S: BlockStore + ?Sized>(
        &mut self,
        store: &S,
        identities: &Identities,
        admin: &StreamId,
        cid: &Cid,
        at: u64,
    ) -> std::result::Result<(), String> {
        let block = store
            .get(cid)
            .map_err(|e| e.to_string())?
            .ok_or("the policy event is missing")?;
        let event = crate::Event::decode(&block).map_err(|e| e.to_string())?;
        match identities.judge(event.author(), Some(at)) {
            KeyVerdict::Current(id) if id == admin => {}
            _ => return Err(format!("not signed by the current key of {admin}")),
        }
        if event.schema() != POLICY_SCHEMA {
            return Err(format!("schema {} of a policy event", event.schema()));
        }
        let payload = event.payload().ok_or("a policy event without a payload")?;
        let payload = store
            .get(&payload)
            .map_err(|e| e.to_string())?
            .ok_or("its payload is missing (policy payloads are never erased)")?;
        match event.event_type() {
            WRITE_GRANTED => {
                let g: Grant = crate::Payload::decode_as(&payload).map_err(|e| e.to_string())?;
                let identity: StreamId = g.identity.parse().map_err(|e: Error| e.to_string())?;
                self.grants
                    .entry((identity, g.aggregate))
                    .or_default()
                    .push(GrantPeriod {
                        admin: admin.clone(),
                        events: g.events,
                        from: at,
                        until: None,
                    });
            }
            WRITE_REVOKED => {
                let w: Withdraw = crate::Payload::decode_as(&payload).map_err(|e| e.to_string())?;
                let identity: StreamId = w.identity.parse().map_err(|e: Error| e.to_string())?;
                if let Some(periods) = self.grants.get_mut(&(identity, w.aggregate)) {
                    for p in periods
                        .iter_mut()
                        .filter(|p| p.admin == *admin && p.until.is_none())
                    {
                        p.until = Some(at);
                    }
                }
            }
            other => return Err(format!("{other} is not a policy event")),
        }
        Ok(())
    }

    /// Whether any policy is in force (and so every write needs a grant).
    pub fn in_force(&self) -> bool {
        self.in_force
    }

    /// The problem with an event of type `event_type` in `stream`, signed for `identity`
    /// (`None`: by a raw key) at `position`; `None` when it may be written.
    pub fn judge(
        &self,
        identity: Option<&StreamId>,
        stream: &StreamId,
        event_type: &str,
        position: Option<u64>,
    ) -> Option<Problem> {
        if !self.in_force || exempt(stream) {
            return None;
        }
        let p = position.unwrap_or(u64::MAX);
        let granted = identity.is_some_and(|id| {
            self.grants
                .get(&(id.clone(), stream.aggregate().to_string()))
                .is_some_and(|periods| {
                    periods.iter().any(|g| {
                        g.from <= p
                            && g.until.is_none_or(|u| p < u)
                            && (g.events.is_empty() || g.events.iter().any(|e| e == event_type))
                    })
                })
        });
        (!granted).then(|| Problem::Unauthorized {
            identity: identity.cloned(),
            aggregate: stream.aggregate().to_string(),
            event_type: event_type.to_string(),
        })
    }
}

/// [`Rules`] with every position of one store's log: judges any event of the store, from any
/// thread. What a reader that meets every event needs (a replay of everything, a follower over
/// one store); `verify` judges the same way.
#[derive(Clone, Debug)]
pub struct Judge {
    rules: Rules,
    /// Every event's leaf index in the log (left empty when no verdict depends on a position).
    positions: rustc_hash::FxHashMap<Cid, u64>,
}

impl Judge {
    /// The rules of `store` under `trust`, and its log's positions when identities or a policy
    /// in force make them matter.
    pub fn of_store<S: BlockStore + ?Sized>(store: &S, trust: &TrustSet) -> Result<Judge> {
        let rules = Rules::of_store(store, trust)?;
        let mut positions = rustc_hash::FxHashMap::default();
        if rules.policies.in_force() || !rules.identities.is_empty() {
            store.with_log(&mut |log| {
                let leaves = log.leaves();
                positions.reserve(leaves.len());
                for (i, cid) in leaves.iter().enumerate() {
                    positions.insert(*cid, i as u64);
                }
            })?;
        }
        Ok(Judge { rules, positions })
    }

    /// What `verify` reports of `event`'s author or grant (`None`: it stands).
    pub fn judge(&self, event: &crate::Event) -> Option<Problem> {
        let author = event.author();
        // Kept only when some verdict depends on a position.
        let position = if self.positions.is_empty() {
            None
        } else {
            self.positions.get(&event.cid()).copied()
        };
        self.rules
            .judge(author, event.stream(), event.event_type(), position)
    }

    /// The rules it judges by.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }
}

/// [`Rules`] as a [`Ledger`] resolved them last, and the key and policy heads they hold for.
#[derive(Debug)]
pub(crate) struct CachedRules {
    heads: Vec<(StreamId, crate::Head)>,
    rules: std::sync::Arc<Rules>,
}

/// What judging a write needs: the identities and policies of one log (positions in that log),
/// and the trust they are judged under. `verify`, `replay`, `append`, the JetStream admission
/// and the follower all judge with it, so they share one verdict.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// Every identity.
    pub identities: Identities,
    /// Every policy.
    pub policies: Policies,
    /// The trust.
    pub trust: TrustSet,
}

impl Rules {
    /// The rules of `store`, with positions in its own log.
    pub fn of_store<S: BlockStore + ?Sized>(store: &S, trust: &TrustSet) -> Result<Rules> {
        let identities = Identities::of_store_in_log(store)?;
        let chains = policy_chains(store)?;
        let wanted = chains.iter().flat_map(|(_, c)| c.iter().copied()).collect();
        let positions = crate::identity::positions_in_log(store, &wanted)?;
        let policies = Policies::of_chains(store, chains, &identities, trust, &|c| {
            positions.get(c).copied()
        })?;
        Ok(Rules {
            identities,
            policies,
            trust: trust.clone(),
        })
    }

    /// The rules of the key and policy chains `store` holds, with positions from `position`
    /// (another log's order, such as JetStream's shared log).
    pub fn of_store_at<S: BlockStore + ?Sized>(
        store: &S,
        trust: &TrustSet,
        position: &dyn Fn(&Cid) -> Option<u64>,
    ) -> Result<Rules> {
        let identities = Identities::of_store_at(store, position)?;
        let policies = Policies::of_store(store, &identities, trust, position)?;
        Ok(Rules {
            identities,
            policies,
            trust: trust.clone(),
        })
    }

    /// Whether the verdict on an event by `author` depends on its position in the log (its key
    /// belongs to an identity, or a policy is in force).
    pub fn needs_position(&self, author: &Author) -> bool {
        self.policies.in_force() || self.identities.knows(author)
    }

    /// The identity whose current key `author` was at `position`, if any.
    pub fn identity_of(&self, author: &Author, position: Option<u64>) -> Option<StreamId> {
        match self.identities.judge(author, position) {
            KeyVerdict::Current(id) => Some(id.clone()),
            _ => None,
        }
    }

    /// The whole verdict on an event of type `event_type` in `stream` that `author` signed at
    /// `position`: its author ([`crate::identity::judge_author`]), then, while a policy is in
    /// force, its grant. `None`: it stands.
    pub fn judge(
        &self,
        author: &Author,
        stream: &StreamId,
        event_type: &str,
        position: Option<u64>,
    ) -> Option<Problem> {
        crate::identity::judge_author(&self.identities, &self.trust, author, position).or_else(
            || {
                if !self.policies.in_force() {
                    return None;
                }
                let identity = match self.identities.judge(author, position) {
                    KeyVerdict::Current(id) => Some(id),
                    _ => None,
                };
                self.policies.judge(identity, stream, event_type, position)
            },
        )
    }
}

/// Streams whose writers the identity and policy rules govern, not grants.
fn exempt(stream: &StreamId) -> bool {
    matches!(
        stream.aggregate(),
        crate::identity::KEY_AGGREGATE | POLICY_AGGREGATE
    )
}

/// Every `policy/*` chain, genesis first.
fn policy_chains<S: BlockStore + ?Sized>(store: &S) -> Result<Vec<(StreamId, Vec<Cid>)>> {
    let mut out = Vec::new();
    for (stream, _) in store.heads_of(POLICY_AGGREGATE)? {
        let chain = crate::identity::chain_of(store, &stream)?;
        out.push((stream, chain));
    }
    Ok(out)
}

impl<S: BlockStore> Ledger<S> {
    /// Grants identity `identity` the right to write streams of type `aggregate` (only
    /// `events`, or any when empty), in the policy of admin identity `admin`, signed by the
    /// admin's current key.
    pub fn grant_write(
        &self,
        admin: &StreamId,
        signer: &Signer,
        identity: &StreamId,
        aggregate: &str,
        events: &[String],
    ) -> Result<Cid> {
        self.policy_event(
            admin,
            signer,
            Draft::new(policy_stream(admin)?, WRITE_GRANTED, POLICY_SCHEMA).with_value(&Grant {
                identity: identity.to_string(),
                aggregate: aggregate.to_string(),
                events: events.to_vec(),
            })?,
        )
    }

    /// Withdraws every grant of `identity` on `aggregate` in admin `admin`'s policy.
    pub fn revoke_write(
        &self,
        admin: &StreamId,
        signer: &Signer,
        identity: &StreamId,
        aggregate: &str,
    ) -> Result<Cid> {
        self.policy_event(
            admin,
            signer,
            Draft::new(policy_stream(admin)?, WRITE_REVOKED, POLICY_SCHEMA).with_value(
                &Withdraw {
                    identity: identity.to_string(),
                    aggregate: aggregate.to_string(),
                },
            )?,
        )
    }

    fn policy_event(&self, admin: &StreamId, signer: &Signer, draft: Draft) -> Result<Cid> {
        let identity = self.identity(admin)?;
        if identity.current() != &signer.author() {
            return Err(Error::InvalidKey {
                input: signer.author().to_string(),
                reason: format!("it is not the current key of {admin}"),
            });
        }
        let height = self.store().head(&draft.stream)?.map(|h| h.height);
        let draft = draft.expecting(height.map_or(Expected::Empty, Expected::Height));
        Ok(self.append(signer, draft)?.cid)
    }

    /// Whether `author` may write events of `event_types` to `stream` now, under the policies
    /// in force for `trust`: the check `append` makes up front, with `verify`'s rules (the
    /// position is the log's next).
    pub fn may_write(
        &self,
        author: &Author,
        writes: &[(&StreamId, &str)],
        trust: &TrustSet,
    ) -> Result<std::result::Result<(), (StreamId, Problem)>> {
        let policies = self.store().heads_of(POLICY_AGGREGATE)?;
        if policies.is_empty() {
            return Ok(Ok(()));
        }
        let mut heads = self.store().heads_of(crate::identity::KEY_AGGREGATE)?;
        heads.extend(policies);
        let rules = {
            let mut cached = self.rules.lock().unwrap_or_else(|e| e.into_inner());
            match &*cached {
                Some(c) if c.heads == heads && c.rules.trust == *trust => c.rules.clone(),
                _ => {
                    let rules = std::sync::Arc::new(Rules::of_store(self.store(), trust)?);
                    *cached = Some(CachedRules {
                        heads,
                        rules: rules.clone(),
                    });
                    rules
                }
            }
        };
        if !rules.policies.in_force() {
            return Ok(Ok(()));
        }
        let next = self.log_size()?;
        let identity = rules.identity_of(author, Some(next));
        for (stream, t) in writes {
            if let Some(problem) = rules
                .policies
                .judge(identity.as_ref(), stream, t, Some(next))
            {
                return Ok(Err(((*stream).clone(), problem)));
            }
        }
        Ok(Ok(()))
    }
}
