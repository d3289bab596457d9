//! `personctl append-event`: one raw, domain-agnostic event.

use anyhow::{Context, Result};
use serde_json::json;

use personctl_ledger::{Cid, Draft, Expected, Ipld, Publisher, Retry, StreamId};

use crate::args::AppendEventArgs;
use crate::config::Config;
use crate::nats;
use crate::output::Out;
use crate::EXIT_OK;

pub(crate) fn run(config: &Config, args: &AppendEventArgs, out: &mut Out) -> Result<u8> {
    let stream: StreamId = args
        .stream
        .parse()
        .with_context(|| format!("--stream {:?}", args.stream))?;
    let data = match &args.data {
        Some(text) => {
            let value: serde_json::Value = serde_json::from_str(text)
                .with_context(|| format!("--data is not valid JSON: {text:?}"))?;
            Some(json_to_ipld(&value))
        }
        None => None,
    };
    let mut causes = Vec::new();
    for c in &args.causes {
        causes.push(c.parse::<Cid>().with_context(|| format!("--cause {c:?}"))?);
    }
    let store = config.open_or_create_store()?;
    let signer = config.signer_over(&store)?;
    let ledger = config.guarded(&store)?;
    let (link, offline) = nats::connect_or_offline(config, ledger.store())?;
    let mut draft = Draft::new(stream, args.event_type.clone(), args.schema);
    if let Some(data) = data {
        draft = draft.with_data(data)?;
    }
    draft.causes = causes;
    draft.expected = match (args.expect_empty, args.expect_height) {
        (true, _) => Expected::Empty,
        (false, Some(h)) => Expected::Height(h),
        (false, None) => Expected::Any,
    };
    let publisher = link.as_ref().map(|l| l as &dyn Publisher);
    let a = ledger
        .append_published(&signer, draft, publisher, Retry::default())
        .map_err(|e| match (&link, e) {
            (Some(link), e) if e.is_offline() => nats::pending_error(link, e),
            (_, e) => nats::untrusted_hint(e),
        })?;
    out.record(
        "appended",
        json!({
            "stream": a.stream.to_string(),
            "height": a.height,
            "cid": a.cid.to_string(),
            "payload": a.payload.map(|p| p.to_string()),
        }),
        || a.cid.to_string(),
    )?;
    match offline {
        Some(why) => Err(nats::stored_offline(&why, "the event is")),
        None => Ok(EXIT_OK),
    }
}

/// JSON to the IPLD data model: integers stay integers, other numbers become floats.
pub(crate) fn json_to_ipld(value: &serde_json::Value) -> Ipld {
    use serde_json::Value;
    match value {
        Value::Null => Ipld::Null,
        Value::Bool(b) => Ipld::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Ipld::Integer(i.into()),
            (None, Some(u)) => Ipld::Integer(u.into()),
            _ => Ipld::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Ipld::String(s.clone()),
        Value::Array(items) => Ipld::List(items.iter().map(json_to_ipld).collect()),
        Value::Object(map) => Ipld::Map(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_ipld(v)))
                .collect(),
        ),
    }
}
