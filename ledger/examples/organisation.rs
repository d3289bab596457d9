//! A second domain on the ledger: organisations with members, written against the public API of
//! `personctl-ledger` alone (nothing in the ledger knows about it).
//!
//! The shape is the one the person domain uses: commands go through a pure `decide` over the
//! current state, which returns events; a pure `apply` folds events into state; the state is
//! rebuilt by walking the chain. I/O (the store, the key) stays in `main`.
//!
//! ```text
//! cargo run -p personctl-ledger --features jetstream --example organisation -- \
//!     [--nats URL] HOME ORG VERB
//!   VERB: found NAME | join MEMBER ROLE [CAUSE-CID] | leave MEMBER | erase MEMBER | show
//!         | identity
//! personctl --home HOME [--nats URL] verify
//! ```
//!
//! HOME is a personctl data directory: the store is `HOME/store`. The example writes as its own
//! identity (`identity` prints it), made on first use with its keys under
//! `HOME/keys/identities/` and trusted in the store, so `personctl verify` audits the
//! organisation chains with everything else and `personctl identity rotate` rotates its key.
//! Where a write policy is in force, it writes only once an admin has granted it `org`
//! (`personctl grant --admin A --grantee ID --aggregate org`); before, a command is refused
//! up front (the ledger's `enforce_policies`). `join` may name a
//! causal parent in another chain, for example the head of the member's person chain.
//! `erase` removes a member's name from every payload that holds it, through a tombstone.
//!
//! With `--nats URL`, the same library calls publish to JetStream: `append_decided` decides
//! on the newest state, and decides again when another writer won the race;
//! `Ledger::erase` keeps the erasure order (tombstone acknowledged before anything is
//! removed). Exit codes as personctl's: 0 ok, 2 an error (a refused command among them).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;

use personctl_ledger::identity::IdentityKeys;
use personctl_ledger::jetstream::{Link, Settings};
use personctl_ledger::{
    BlockStore, Cid, Draft, Expected, Head, Ledger, Payload, Publisher, Retry, Signer, SledStore,
    StreamId, Tombstone,
};
use serde::{Deserialize, Serialize};

/// The aggregate type: every organisation is a stream `org/<id>`.
const AGGREGATE: &str = "org";

/// What a user asks for.
enum Command {
    Found { name: String },
    Join { member: String, role: String },
    Leave { member: String },
}

/// What happened; each variant is an event type with its payload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum OrgEvent {
    Founded { name: String },
    MemberJoined { member: String, role: String },
    MemberLeft { member: String },
}

impl OrgEvent {
    /// The event type name stored in the event block.
    fn type_name(&self) -> &'static str {
        match self {
            OrgEvent::Founded { .. } => "OrganisationFounded",
            OrgEvent::MemberJoined { .. } => "MemberJoined",
            OrgEvent::MemberLeft { .. } => "MemberLeft",
        }
    }
}

/// The state every decision is made on.
#[derive(Debug, Default, Serialize)]
struct Organisation {
    name: Option<String>,
    members: BTreeMap<String, String>,
}

/// Pure: the events a command causes, or why it is refused.
fn decide(state: &Organisation, command: &Command) -> Result<Vec<OrgEvent>, String> {
    match command {
        Command::Found { .. } if state.name.is_some() => {
            Err("the organisation is already founded".into())
        }
        Command::Found { name } if name.trim().is_empty() => Err("a name is required".into()),
        Command::Found { name } => Ok(vec![OrgEvent::Founded {
            name: name.trim().into(),
        }]),
        _ if state.name.is_none() => Err("no such organisation: found it first".into()),
        Command::Join { member, .. } if state.members.contains_key(member) => {
            Err(format!("{member} is already a member"))
        }
        Command::Join { member, role } => Ok(vec![OrgEvent::MemberJoined {
            member: member.clone(),
            role: role.clone(),
        }]),
        Command::Leave { member } if !state.members.contains_key(member) => {
            Err(format!("{member} is not a member"))
        }
        Command::Leave { member } => Ok(vec![OrgEvent::MemberLeft {
            member: member.clone(),
        }]),
    }
}

/// Pure: folds one event into the state.
fn apply(state: &mut Organisation, event: OrgEvent) {
    match event {
        OrgEvent::Founded { name } => state.name = Some(name),
        OrgEvent::MemberJoined { member, role } => {
            state.members.insert(member, role);
        }
        OrgEvent::MemberLeft { member } => {
            state.members.remove(&member);
        }
    }
}

/// Rebuilds an organisation by walking its chain from genesis; returns it and its head.
fn load(
    ledger: &Ledger<SledStore>,
    stream: &StreamId,
) -> personctl_ledger::Result<(Organisation, Option<Head>)> {
    let mut state = Organisation::default();
    // An erased payload is gone for good: its event no longer changes the state.
    let masks = ledger.masks(stream)?;
    for event in ledger.walk_forward(stream)? {
        let event = event?;
        if event.event_type() == personctl_ledger::TOMBSTONE_TYPE {
            continue;
        }
        let cid = event.payload().ok_or_else(|| {
            personctl_ledger::Error::InvalidEvent(format!("{} has no payload", event.cid()))
        })?;
        if masks.contains_key(&cid) {
            continue;
        }
        let block = ledger
            .store()
            .get(&cid)?
            .ok_or(personctl_ledger::Error::MissingBlock(cid))?;
        apply(&mut state, Payload::decode_as::<OrgEvent>(&block)?);
    }
    Ok((state, ledger.store().head(stream)?))
}

/// The payloads of `stream` that name `member` (what erasing the member masks).
fn naming(ledger: &Ledger<SledStore>, stream: &StreamId, member: &str) -> Vec<Cid> {
    let mut out = Vec::new();
    for event in ledger.walk_forward(stream).into_iter().flatten().flatten() {
        let Some(cid) = event.payload() else { continue };
        let Ok(Some(block)) = ledger.store().get(&cid) else {
            continue;
        };
        match Payload::decode_as::<OrgEvent>(&block) {
            Ok(OrgEvent::MemberJoined { member: m, .. } | OrgEvent::MemberLeft { member: m })
                if m == member =>
            {
                out.push(cid)
            }
            _ => {}
        }
    }
    out
}

/// This example's identity (`key/ID`): made on first use (its keys under
/// `HOME/keys/identities/ID`, its id in `HOME/keys/organisation.id`) and trusted in the store;
/// its current key signs, after a rotation a crash interrupted is settled. With a publisher,
/// its key chain is published so that other homes resolve it.
fn signer(
    home: &Path,
    ledger: &Ledger<SledStore>,
    publisher: Option<&dyn Publisher>,
) -> Result<(StreamId, Signer), String> {
    let id_file = home.join("keys/organisation.id");
    let root = home.join("keys/identities");
    let (id, keys) = match std::fs::read_to_string(&id_file) {
        Ok(text) => {
            let id: StreamId = text
                .trim()
                .parse()
                .map_err(|e| format!("{}: {e}", id_file.display()))?;
            let keys = IdentityKeys::at(root.join(id.id()));
            (id, keys)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (id, keys) = ledger
                .create_identity_keys(&root)
                .map_err(|e| e.to_string())?;
            std::fs::write(&id_file, format!("{id}\n"))
                .map_err(|e| format!("{}: {e}", id_file.display()))?;
            (id, keys)
        }
        Err(e) => return Err(format!("{}: {e}", id_file.display())),
    };
    ledger
        .store()
        .trust_identity_add(&id, "organisation example")
        .map_err(|e| e.to_string())?;
    if let Some(p) = publisher {
        p.pull(ledger.store(), &id).map_err(|e| e.to_string())?;
        p.publish(ledger.store(), Some(std::slice::from_ref(&id)))
            .and_then(|r| r.settled())
            .map_err(|e| e.to_string())?;
    }
    let signer = ledger
        .identity_signer(&id, &keys)
        .map_err(|e| e.to_string())?;
    Ok((id, signer))
}

fn run(args: &[String]) -> Result<String, String> {
    let usage = "usage: organisation [--nats URL] HOME ORG (found NAME | join MEMBER ROLE [CAUSE-CID] | leave MEMBER | erase MEMBER | show | identity)";
    let (nats, args) = match args {
        [flag, url, rest @ ..] if flag == "--nats" => (Some(url), rest),
        _ => (None, args),
    };
    let [home, org, verb, rest @ ..] = args else {
        return Err(usage.into());
    };
    let home = Path::new(home);
    let stream = StreamId::new(AGGREGATE, org.as_str()).map_err(|e| e.to_string())?;
    let store = SledStore::open(home.join("store")).map_err(|e| e.to_string())?;
    // Appends the write policies in force here would report as unauthorized are refused.
    let trust = store.trust_set().map_err(|e| e.to_string())?;
    let ledger = Ledger::new(store).enforce_policies(trust);
    let link = match nats {
        Some(url) => Some(Link::connect(url, Settings::default()).map_err(|e| e.to_string())?),
        None => None,
    };
    let publisher = link.as_ref().map(|l| l as &dyn Publisher);
    let mut causes: Vec<Cid> = Vec::new();
    let command = match (verb.as_str(), rest) {
        ("show", []) => {
            if let Some(p) = publisher {
                p.pull(ledger.store(), &stream).map_err(|e| e.to_string())?;
            }
            let (state, _) = load(&ledger, &stream).map_err(|e| e.to_string())?;
            return serde_json::to_string(&state).map_err(|e| e.to_string());
        }
        ("erase", [member]) => return erase(&ledger, home, &stream, member, publisher),
        ("identity", []) => return Ok(signer(home, &ledger, publisher)?.0.to_string()),
        ("found", [name]) => Command::Found { name: name.clone() },
        ("join", [member, role, cause @ ..]) if cause.len() <= 1 => {
            for c in cause {
                causes.push(c.parse().map_err(|e| format!("cause {c:?}: {e}"))?);
            }
            Command::Join {
                member: member.clone(),
                role: role.clone(),
            }
        }
        ("leave", [member]) => Command::Leave {
            member: member.clone(),
        },
        _ => return Err(usage.into()),
    };
    let (_, signer) = signer(home, &ledger, publisher)?;
    // Decided on the newest state; decided again if another writer's event wins the race.
    let (appended, lost) = ledger
        .append_decided(
            &signer,
            &stream,
            publisher,
            Retry::default(),
            |ledger| -> Result<Vec<Draft>, Failure> {
                let (state, head) = load(ledger, &stream)?;
                let events = decide(&state, &command)
                    .map_err(|e| Failure(format!("{stream}: refused: {e}")))?;
                // Optimistic concurrency: the events land only on the head the decision was made on.
                let expected = head.map_or(Expected::Empty, |h| Expected::Height(h.height));
                let mut drafts = Vec::new();
                for event in &events {
                    let draft = Draft::new(stream.clone(), event.type_name(), 1)
                        .expecting(expected)
                        .caused_by(causes.iter().copied())
                        .with_value(event)?;
                    drafts.push(draft);
                }
                Ok(drafts)
            },
        )
        .map_err(|Failure(e)| e)?;
    let last = appended.last().expect("decide returns at least one event");
    Ok(format!(
        "{stream} {} {} lost-races {lost}",
        last.height, last.cid
    ))
}

/// Why a command failed, in words (a refusal, or the ledger's error).
struct Failure(String);

impl From<personctl_ledger::Error> for Failure {
    fn from(e: personctl_ledger::Error) -> Failure {
        Failure(e.to_string())
    }
}

/// Erases a member's name: a tombstone masks every payload naming it, then (in this order,
/// kept by the library) the blocks go from the store and from JetStream's bucket.
fn erase(
    ledger: &Ledger<SledStore>,
    home: &Path,
    stream: &StreamId,
    member: &str,
    publisher: Option<&dyn Publisher>,
) -> Result<String, String> {
    if let Some(p) = publisher {
        p.pull(ledger.store(), stream).map_err(|e| e.to_string())?;
    }
    let head = ledger.store().head(stream).map_err(|e| e.to_string())?;
    let masked = ledger.masks(stream).map_err(|e| e.to_string())?;
    let masks: Vec<Cid> = naming(ledger, stream, member)
        .into_iter()
        .filter(|c| !masked.contains_key(c))
        .collect();
    if masks.is_empty() {
        return Err(format!("{stream}: nothing names {member}"));
    }
    let tombstone = Tombstone {
        masks,
        // The reason and scope stay in the audit trail: never the erased value itself.
        reason: "a member asked to be forgotten".into(),
        scope: "member".into(),
    };
    let expected = head.map_or(Expected::Empty, |h| Expected::Height(h.height));
    let draft = tombstone
        .draft(stream.clone())
        .map_err(|e| e.to_string())?
        .expecting(expected);
    let (_, signer) = signer(home, ledger, publisher)?;
    let erased = ledger
        .erase(&signer, draft, publisher)
        .map_err(|e| e.to_string())?;
    Ok(format!(
        "{stream} {} {} erased {} removed {} bucket {}",
        erased.tombstone.height,
        erased.tombstone.cid,
        erased.masked,
        erased.removed.len(),
        erased.erased_remote.unwrap_or(0)
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("organisation: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_and_apply_keep_membership() {
        let mut org = Organisation::default();
        let join = Command::Join {
            member: "p-1".into(),
            role: "engineer".into(),
        };
        assert!(decide(&org, &join).is_err(), "not founded yet");
        for e in decide(
            &org,
            &Command::Found {
                name: "Acme".into(),
            },
        )
        .unwrap()
        {
            apply(&mut org, e);
        }
        for e in decide(&org, &join).unwrap() {
            apply(&mut org, e);
        }
        assert_eq!(org.members["p-1"], "engineer");
        assert!(decide(&org, &join).is_err(), "already a member");
        let leave = Command::Leave {
            member: "p-1".into(),
        };
        for e in decide(&org, &leave).unwrap() {
            apply(&mut org, e);
        }
        assert!(org.members.is_empty());
        assert!(decide(&org, &leave).is_err(), "no longer a member");
    }
}
