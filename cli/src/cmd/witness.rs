//! `personctl witness`: the library's `tlog::Witness` served over HTTP (C2SP `tlog-witness`:
//! `POST /add-checkpoint`), one request at a time, until the process is stopped.

use std::io::Read;

use anyhow::{Context, Result};
use serde_json::json;

use personctl_ledger::tlog::{NoteKey, Witness};

use crate::args::WitnessArgs;
use crate::config::Config;
use crate::output::Out;
use crate::EXIT_OK;

/// The largest request body read (a checkpoint with many cosignatures and 63 proof lines is a
/// few KiB).
const MAX_BODY: u64 = 64 * 1024;

pub(crate) fn run(config: &Config, args: &WitnessArgs, out: &mut Out) -> Result<u8> {
    let signer = config.signer()?;
    let logs = args
        .logs
        .iter()
        .map(|v| NoteKey::from_vkey(v).with_context(|| format!("--log {v:?}")))
        .collect::<Result<Vec<_>>>()?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| super::tlog::default_name("personctl.witness", &signer));
    let dir = config.home.join("witness");
    let witness = Witness::open(&dir, &name, signer, logs)?;
    let server = tiny_http::Server::http(&args.listen)
        .map_err(|e| anyhow::anyhow!("--listen {}: {e}", args.listen))?;
    let addr = server
        .server_addr()
        .to_ip()
        .map(|a| a.to_string())
        .unwrap_or_else(|| args.listen.clone());
    let vkey = witness.key().to_vkey();
    out.record(
        "witness",
        json!({"name": name, "listen": addr, "vkey": vkey, "logs": args.logs, "state": dir.display().to_string()}),
        || {
            format!(
                "witness {name} listening on http://{addr}/add-checkpoint for {} log(s)\nverifier key: {vkey}",
                args.logs.len()
            )
        },
    )?;
    out.flush()?;
    for mut request in server.incoming_requests() {
        let answer = if !request.url().ends_with("/add-checkpoint") {
            (404, "text/plain; charset=utf-8", "not found\n".to_string())
        } else if *request.method() != tiny_http::Method::Post {
            (405, "text/plain; charset=utf-8", "POST only\n".to_string())
        } else {
            let mut body = Vec::new();
            let read = request
                .as_reader()
                .take(MAX_BODY + 1)
                .read_to_end(&mut body);
            match read {
                Err(e) => (400, "text/plain; charset=utf-8", format!("{e}\n")),
                Ok(_) if body.len() as u64 > MAX_BODY => (
                    413,
                    "text/plain; charset=utf-8",
                    "the body is over 64 KiB\n".to_string(),
                ),
                Ok(_) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    let a = witness.add_checkpoint(&body, now);
                    (a.status, a.content_type, a.body)
                }
            }
        };
        let (status, content_type, body) = answer;
        tracing::info!(status, url = request.url(), "add-checkpoint");
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
            .expect("a valid header");
        let response = tiny_http::Response::from_string(body)
            .with_status_code(status)
            .with_header(header);
        if let Err(e) = request.respond(response) {
            tracing::warn!("answering a request: {e}");
        }
    }
    Ok(EXIT_OK)
}
