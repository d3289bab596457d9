//! Output: the only place that picks formats. Human text, or JSON Lines
//! (`{"type": ..., "data": ...}` per line) with `--json`. Stdout carries only the report.
//!
//! Invariants 5 and 11: the only place that picks a format; text is escaped.

use std::io::{BufWriter, Stdout, Write};

use personctl_ledger::{Finding, Report};
use serde_json::{json, Value};

use crate::{EXIT_NEGATIVE, EXIT_OK};

/// Where reports go.
pub(crate) struct Out {
    writer: BufWriter<Stdout>,
    json: bool,
}

impl Out {
    pub(crate) fn new(json: bool) -> Out {
        Out {
            writer: BufWriter::new(std::io::stdout()),
            json,
        }
    }

    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    pub(crate) fn set_json(&mut self, json: bool) {
        self.json = json;
    }

    /// One record: the `human` line, or a JSON Lines object of type `ty` with `data`.
    pub(crate) fn record(
        &mut self,
        ty: &str,
        data: Value,
        human: impl FnOnce() -> String,
    ) -> std::io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.writer, &json!({"type": ty, "data": data}))?;
            self.writer.write_all(b"\n")
        } else {
            // Values are escaped where they are formatted (`escape`); this keeps any control
            // sequence that slipped through from reaching the terminal, but keeps the line
            // breaks and tabs of the layout.
            let line = human();
            if !line
                .chars()
                .any(|c| c != '\n' && c != '\t' && unsafe_char(c))
            {
                return writeln!(self.writer, "{line}");
            }
            let safe: String = line
                .split('\n')
                .map(|l| {
                    l.split('\t')
                        .map(|f| escape(f).into_owned())
                        .collect::<Vec<_>>()
                        .join("\t")
                })
                .collect::<Vec<_>>()
                .join("\n");
            writeln!(self.writer, "{safe}")
        }
    }

    /// A line of text output only (a table's header): nothing under `--json`.
    pub(crate) fn heading(&mut self, line: &str) -> std::io::Result<()> {
        if self.json {
            return Ok(());
        }
        writeln!(self.writer, "{line}")
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// Text from the data, made safe for a terminal: control characters (line breaks and tabs
/// too, which could fake a line of output), and the invisible characters that reorder text
/// (bidirectional overrides and isolates), are written as escapes (`\n`, `\t`, `\u{1b}`). Text
/// without them is returned as it is. JSON output needs none of this: its encoder escapes.
pub(crate) fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Whether [`escape`] writes `c` as an escape.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// [`escape`] of anything displayable.
fn e(x: impl std::fmt::Display) -> String {
    escape(&x.to_string()).into_owned()
}

/// Formats microseconds since the Unix epoch as RFC 3339 (UTC).
pub(crate) fn time(us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_micros(t).to_string()
}

/// A person as JSON (the `person` record of `replay`, `show` and `demo`).
pub(crate) fn person_json(p: &personctl_domain::Person) -> Value {
    let id = &p.identity;
    fn v<T: serde::Serialize>(x: &T) -> Value {
        serde_json::to_value(x).unwrap_or(Value::Null)
    }
    json!({
        "person": id.id.to_string(),
        "legal_name": id.legal_name,
        "lifecycle": p.lifecycle.to_string(),
        "birth_date": id.birth_date.map(|d| d.to_string()),
        "death_date": id.death_date.map(|d| d.to_string()),
        "contact": p.contact.as_ref().map(|c| json!({
            "emails": v(&c.emails), "phones": v(&c.phones), "addresses": v(&c.addresses)
        })),
        "professional": p.professional.as_ref().map(|x| json!({
            "skills": v(&x.skills), "employments": v(&x.employments), "certifications": v(&x.certifications)
        })),
        "social": p.social.as_ref().map(|x| json!({"relationships": v(&x.relationships)})),
        "preferences": p.preferences.as_ref().map(v),
        "attributes": p.attributes.as_ref().map(|x| v(&x.items)),
    })
}

/// A person, readably, one line per fact.
pub(crate) fn person_text(p: &personctl_domain::Person) -> String {
    use std::fmt::Write;
    let id = &p.identity;
    let mut s = String::new();
    let _ = writeln!(s, "{}  {}", e(&id.legal_name), id.id);
    let _ = writeln!(s, "  lifecycle      {}", p.lifecycle);
    if let Some(d) = id.birth_date {
        let _ = writeln!(s, "  born           {d}");
    }
    if let Some(d) = id.death_date {
        let _ = writeln!(s, "  died           {d}");
    }
    if let Some(c) = &p.contact {
        for em in &c.emails {
            let _ = writeln!(
                s,
                "  email          {}{}",
                e(&em.address),
                if em.verified { " (verified)" } else { "" }
            );
        }
        for x in &c.phones {
            let _ = writeln!(s, "  phone          {} {}", e(&x.number), e(&x.kind));
        }
        for a in &c.addresses {
            let _ = writeln!(
                s,
                "  address        {}: {}, {} {}, {}",
                e(&a.label),
                e(&a.street),
                e(&a.postal_code),
                e(&a.city),
                e(&a.country)
            );
        }
    }
    if let Some(x) = &p.professional {
        for k in &x.skills {
            let _ = writeln!(s, "  skill          {} (level {})", e(&k.name), k.level);
        }
        for j in &x.employments {
            let end = j.end.map(|d| d.to_string()).unwrap_or_else(|| "now".into());
            let _ = writeln!(
                s,
                "  employment     {} at {} ({} to {end}) [{}]",
                e(&j.role),
                e(&j.organisation),
                j.start,
                j.id
            );
        }
        for c in &x.certifications {
            let _ = writeln!(
                s,
                "  certification  {} by {} ({})",
                e(&c.name),
                e(&c.issuer),
                c.issued
            );
        }
    }
    if let Some(x) = &p.social {
        for r in &x.relationships {
            let _ = writeln!(s, "  relationship   {} of {}", e(&r.kind), r.other);
        }
    }
    if let Some(x) = &p.preferences {
        let _ = writeln!(
            s,
            "  preferences    language {}, channels {}",
            e(x.language.as_deref().unwrap_or("-")),
            e(x.channels.join(", "))
        );
    }
    if let Some(x) = &p.attributes {
        for a in &x.items {
            let _ = writeln!(
                s,
                "  attribute      {} = {} (source {}, {} %)",
                e(&a.name),
                e(&a.value),
                e(&a.source),
                a.confidence
            );
        }
    }
    s.trim_end().to_string()
}

/// Prints a report: every failure, every masked payload, then the summary. Returns the exit
/// code of its verdict.
pub(crate) fn verdict(
    report: &Report,
    messages: Option<u64>,
    seconds: f64,
    out: &mut Out,
) -> anyhow::Result<u8> {
    for f in &report.findings {
        out.record("failure", finding_json(f), || human(f))?;
    }
    // Masked payloads are not failures: a tombstone later on the chain covers each.
    for m in &report.masked {
        out.record(
            "masked",
            json!({
                "cid": m.payload.to_string(),
                "stream": m.stream.to_string(),
                "height": m.height,
                "event": m.event.to_string(),
                "tombstone": m.tombstone.to_string(),
            }),
            || {
                format!(
                    "masked {} {}@{}: payload erased, covered by tombstone {}",
                    m.payload, m.stream, m.height, m.tombstone
                )
            },
        )?;
    }
    let masked = report.masked.len();
    let failures = report.findings.len();
    let rate = report.events as f64 / seconds.max(1e-9);
    out.record(
        "summary",
        json!({
            "ok": report.is_ok(),
            "events": report.events,
            "payloads": report.payloads,
            "streams": report.streams,
            "failures": failures,
            "masked": masked,
            "messages": messages,
            "seconds": seconds,
            "events_per_second": rate.round(),
        }),
        || {
            let verdict = if report.is_ok() { "OK" } else { "FAILED" };
            let messages = messages
                .map(|m| format!(", {m} JetStream messages"))
                .unwrap_or_default();
            let masked = if masked > 0 {
                format!(", {} masked by tombstones", plural(masked as u64, "payload"))
            } else {
                String::new()
            };
            format!(
                "{verdict}: {}, {}, {}{messages} checked in {seconds:.2}s ({rate:.0} events/s); {}{masked}",
                plural(report.events, "event"),
                plural(report.payloads, "payload"),
                plural(report.streams, "stream"),
                plural(failures as u64, "failure")
            )
        },
    )?;
    Ok(if report.is_ok() {
        EXIT_OK
    } else {
        EXIT_NEGATIVE
    })
}

fn finding_json(f: &Finding) -> serde_json::Value {
    json!({
        "cid": f.cid.map(|c| c.to_string()),
        "stream": f.stream.as_ref().map(|s| s.to_string()),
        "height": f.height,
        "check": f.problem.code(),
        "message": f.problem.to_string(),
    })
}

fn human(f: &Finding) -> String {
    let place = match (&f.stream, f.height) {
        (Some(s), Some(h)) => format!(" {s}@{h}"),
        (Some(s), None) => format!(" {s}"),
        _ => String::new(),
    };
    let cid = f.cid.map_or_else(|| "-".to_string(), |c| c.to_string());
    // What fixes it, in this command line's words.
    let hint = match f.problem.code() {
        "unpurged" => " (`personctl gc` finishes the erasure)",
        "unpublished" => " (`personctl sync` publishes it)",
        _ => "",
    };
    format!(
        "FAIL {cid}{place} [{}]: {}{hint}",
        f.problem.code(),
        f.problem
    )
}

/// Prints an error on stderr: `personctl: MESSAGE`, or with `--json` one JSON line
/// `{"type": "error", "data": {"message": ..., "exit": 2}}`.
pub(crate) fn error(err: &anyhow::Error, json: bool) {
    if json {
        let line = json!({"type": "error", "data": {"message": format!("{err:#}"), "exit": crate::EXIT_ERROR}});
        eprintln!("{line}");
    } else {
        eprintln!("personctl: {err:#}");
    }
}

/// `1 event`, `2 events`: a count and its noun, in the plural unless the count is one.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// How to run this very program in a shell: `personctl` when that name on `PATH` is this
/// executable, else its full path (after `cargo run`, nothing named `personctl` is on PATH).
pub(crate) fn program() -> String {
    let Ok(me) = std::env::current_exe().and_then(std::fs::canonicalize) else {
        return "personctl".into();
    };
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("personctl"))
            .find(|p| p.is_file())
            .and_then(|p| std::fs::canonicalize(p).ok())
    });
    if on_path.as_ref() == Some(&me) {
        return "personctl".into();
    }
    let path = me.display().to_string();
    if path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        path
    } else {
        format!("'{}'", path.replace('\'', "'\\''"))
    }
}
