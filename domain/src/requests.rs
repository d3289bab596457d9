//! Person commands as requests, whatever carries them (`personctl serve --commands` answers
//! them over NATS request-reply): a request is the JSON form of `personctl append --file` (one
//! command object) plus an optional client-supplied command id, and the reply is one JSON
//! object, the appended events or the error, never a transport-level failure.
//!
//! ```text
//! request  {"id": UUID?, "command": NAME?, "person": UUID?, FIELD: VALUE, ...}
//! reply    {"ok": true, "command": NAME, "command_id": UUID, "person": UUID, "repeated": bool,
//!           "events": [{"stream": "person/UUID", "height": N, "type": NAME, "cid": CID}]}
//!          {"ok": false, "command": NAME|null, "command_id": UUID|null,
//!           "error": {"kind": KIND, "message": TEXT}}
//! ```
//!
//! The command's name comes from the request's `command` field or, without one, from the
//! caller (the subject's last token over NATS); both given and different is refused. With an
//! `id`, the command runs at most once ([`Persons::execute_once`]): a retried request gets
//! the same events back with `repeated: true`, and a `register` without a person registers the
//! person whose id is the command id, so that its retry finds it. Without an `id`, a fresh
//! one is made and the request is not idempotent. Error kinds: `invalid` (the request),
//! `rule` (a business rule refused the command), `unknown-person`, `conflict`, `unpublished`
//! (stored here, the shared log did not acknowledge it: pending), `failed` (anything else).

use personctl_ledger::{BlockStore, Publisher, Retry, Signer};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::command::{self, for_person, from_json_value};
use crate::{Command, Error, Once, PersonId, Persons};

/// A parsed request: the command id (made when the client gave none), the person and the
/// command.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The command id the events will carry.
    pub id: Uuid,
    /// Whether the client supplied the id (the request is then idempotent).
    pub supplied: bool,
    /// The person the command is for.
    pub person: PersonId,
    /// The command.
    pub command: Command,
}

/// Why a request was refused before it ran: the field and what was wrong.
fn invalid(field: &str, reason: impl std::fmt::Display) -> (&'static str, String) {
    ("invalid", format!("{field}: {reason}"))
}

/// Parses a request `body` for the command `name` (`None`: the body names it).
pub fn parse(name: Option<&str>, body: &[u8]) -> Result<Request, (&'static str, String)> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid("request", format!("not a JSON object: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(invalid("request", "expected a JSON object"));
    };
    let id = match object.remove("id") {
        None => None,
        Some(Value::String(s)) => Some(
            s.parse::<Uuid>()
                .map_err(|_| invalid("id", format!("{s:?} is not a UUID")))?,
        ),
        Some(other) => {
            return Err(invalid(
                "id",
                format!("must be a UUID string, found {other}"),
            ))
        }
    };
    match (name, object.get("command")) {
        (Some(name), None) => {
            object.insert("command".into(), Value::String(name.to_string()));
        }
        (Some(name), Some(given)) if given.as_str() != Some(name) => {
            return Err(invalid(
                "command",
                format!("the request says {given} but was sent for {name:?}"),
            ));
        }
        (None, None) => return Err(invalid("command", "missing")),
        _ => {}
    }
    let command_name = object
        .get("command")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !command::NAMES.contains(&command_name.as_str()) {
        return Err(invalid(
            "command",
            format!("unknown command {command_name:?}"),
        ));
    }
    let (person, command) =
        from_json_value(Value::Object(object)).map_err(|e| ("invalid", e.to_string()))?;
    let person = match (person, id, &command) {
        // A retried register must land on the same person: its id is the command id.
        (None, Some(id), Command::Register { .. }) => Some(PersonId::from_uuid(id)),
        (person, _, _) => person,
    };
    let (person, command) =
        for_person((person, command)).map_err(|e| ("invalid", e.to_string()))?;
    Ok(Request {
        id: id.unwrap_or_else(Uuid::now_v7),
        supplied: id.is_some(),
        person,
        command,
    })
}

/// [`handle`] of a request that came on `subject`, whose last dot-separated token names the
/// command (`ledger_commands.register`), as the bytes of its JSON reply: what a request-reply
/// transport sends back.
pub fn answer<S: BlockStore>(
    persons: &Persons<S>,
    signer: &Signer,
    publisher: Option<&dyn Publisher>,
    subject: &str,
    body: &[u8],
) -> Vec<u8> {
    let name = subject.rsplit('.').next();
    let reply = handle(persons, signer, publisher, name, body);
    serde_json::to_vec(&reply).expect("a JSON value serialises")
}

/// The error's kind in a reply.
fn kind(error: &Error) -> &'static str {
    match error {
        Error::Rule { .. } => "rule",
        Error::UnknownPerson(_) => "unknown-person",
        e if e.is_conflict() => "conflict",
        Error::Ledger(e) if e.is_offline() => "unpublished",
        Error::Ledger(personctl_ledger::Error::NotPublished { .. }) => "unpublished",
        Error::PartlyAccepted { .. } => "conflict",
        _ => "failed",
    }
}

/// Runs one request and returns its reply (see the module docs): parsed, executed at most
/// once per command id with `publisher` (`None`: the local store alone), signed by `signer`.
pub fn handle<S: BlockStore>(
    persons: &Persons<S>,
    signer: &Signer,
    publisher: Option<&dyn Publisher>,
    name: Option<&str>,
    body: &[u8],
) -> Value {
    let request = match parse(name, body) {
        Ok(r) => r,
        Err((kind, message)) => {
            metrics::counter!(crate::metrics::COMMANDS, "outcome" => kind).increment(1);
            return json!({
                "ok": false,
                "command": name,
                "command_id": null,
                "error": {"kind": kind, "message": message},
            });
        }
    };
    let span = tracing::info_span!(
        "command",
        command = request.command.name(),
        command_id = %request.id,
        person = %request.person,
    );
    let _entered = span.enter();
    let started = std::time::Instant::now();
    let result = persons.execute_once(
        signer,
        request.person,
        &request.command,
        request.id,
        publisher,
        Retry::default(),
    );
    let outcome = match &result {
        Ok(once) if once.repeated => "repeated",
        Ok(_) => "appended",
        Err(e) => kind(e),
    };
    metrics::counter!(crate::metrics::COMMANDS, "outcome" => outcome).increment(1);
    metrics::histogram!(crate::metrics::COMMAND_SECONDS).record(started.elapsed().as_secs_f64());
    reply(&request, result)
}

/// The reply to `request` given how it ran.
pub fn reply(request: &Request, result: Result<Once, Error>) -> Value {
    let mut out = Map::new();
    out.insert("command".into(), json!(request.command.name()));
    out.insert("command_id".into(), json!(request.id.to_string()));
    match result {
        Ok(Once { events, repeated }) => {
            tracing::info!(events = events.len(), repeated, "command done");
            out.insert("ok".into(), json!(true));
            out.insert("person".into(), json!(request.person.to_string()));
            out.insert("repeated".into(), json!(repeated));
            let events: Vec<Value> = events
                .iter()
                .map(|a| {
                    json!({"stream": a.stream.to_string(), "height": a.height, "type": a.event_type, "cid": a.cid.to_string()})
                })
                .collect();
            out.insert("events".into(), Value::Array(events));
        }
        Err(e) => {
            tracing::info!(error = %e, "command refused or failed");
            out.insert("ok".into(), json!(false));
            out.insert(
                "error".into(),
                json!({"kind": kind(&e), "message": e.to_string()}),
            );
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_its_command_once_and_a_supplied_id_fixes_a_new_person() {
        let id = "0190a5b2-0000-7000-8000-000000000001";
        let r = parse(
            Some("register"),
            format!(r#"{{"id": "{id}", "legal_name": "Ada"}}"#).as_bytes(),
        )
        .unwrap();
        assert!(r.supplied);
        assert_eq!(r.person.to_string(), id);
        assert_eq!(r.command.name(), "register");
        // Without an id: a fresh one, and a fresh person.
        let r = parse(Some("register"), br#"{"legal_name": "Ada"}"#).unwrap();
        assert!(!r.supplied);
        assert_ne!(r.person.uuid(), r.id);
        let err = |name: Option<&str>, body: &str| parse(name, body.as_bytes()).unwrap_err();
        assert_eq!(err(Some("rename"), "[]").0, "invalid");
        assert!(err(
            Some("rename"),
            r#"{"command": "register", "legal_name": "A"}"#
        )
        .1
        .contains("was sent for \"rename\""));
        assert!(err(None, r#"{"legal_name": "A"}"#)
            .1
            .contains("command: missing"));
        assert!(err(Some("nope"), "{}").1.contains("unknown command"));
        assert!(err(Some("register"), r#"{"id": 7, "legal_name": "A"}"#)
            .1
            .contains("id: must be a UUID string"));
        assert!(err(Some("rename"), r#"{"legal_name": "A"}"#)
            .1
            .contains("person"));
    }
}
