//! Output: the only place that picks formats. Human text, or JSON Lines
//! (`{"type": ..., "data": ...}` per line) with `--json`. Stdout carries only the report.

use std::io::{BufWriter, Stdout, Write};

use serde_json::{json, Value};

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
            writeln!(self.writer, "{}", human())
        }
    }

    pub(crate) fn flush(&mut self) -> std::io::Result<()> {
        self.writer.flush()
    }
}

/// Formats microseconds since the Unix epoch as RFC 3339 (UTC).
pub(crate) fn time(us: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(us);
    humantime::format_rfc3339_micros(t).to_string()
}
