//! [`Durability`]: when a nats-server makes JetStream writes durable, read from its monitoring
//! endpoint's `/varz` (a client connection does not say). By default a server acknowledges a
//! write once a quorum holds it in memory and fsyncs every two minutes: a power cut on enough
//! nodes can lose acknowledged events. personctl detects and repairs that from the chains
//! (`verify --nats`, `sync --repair`); `sync_interval: always` keeps it from happening.

use std::fmt;
use std::time::Duration;

use crate::{Error, Result};

/// A server's JetStream durability setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Durability {
    /// The server's name.
    pub server: String,
    /// `sync_interval: always`: every write is fsynced before it is acknowledged.
    pub sync_always: bool,
    /// How often it fsyncs otherwise (`None`: the server did not say; its default is 2 min).
    pub sync_interval: Option<Duration>,
}

impl Durability {
    /// Reads the setting from a `/varz` answer (JSON); an error names what is missing.
    pub fn from_varz(varz: &[u8]) -> Result<Durability> {
        let bad = |reason: String| Error::Nats {
            context: "reading the server's /varz".into(),
            reason,
        };
        let varz: serde_json::Value =
            serde_json::from_slice(varz).map_err(|e| bad(format!("not JSON: {e}")))?;
        let config = varz
            .pointer("/jetstream/config")
            .ok_or_else(|| bad("no jetstream.config: is JetStream enabled there?".into()))?;
        Ok(Durability {
            server: varz["server_name"].as_str().unwrap_or_default().to_string(),
            sync_always: config["sync_always"].as_bool().unwrap_or(false),
            sync_interval: config["sync_interval"].as_u64().map(Duration::from_nanos),
        })
    }

    /// Whether the server acknowledges writes before they are on disk.
    pub fn is_lazy(&self) -> bool {
        !self.sync_always
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sync_always {
            return write!(
                f,
                "server {} fsyncs every JetStream write before acknowledging it (sync_interval: always)",
                self.server
            );
        }
        let every = self
            .sync_interval
            .map_or("2m (the default)".to_string(), |d| {
                format!("{}s", d.as_secs_f64())
            });
        write!(
            f,
            "server {} acknowledges JetStream writes before they are on disk (it fsyncs every {every}): \
             a power cut can lose acknowledged events; `personctl verify --nats` finds them and \
             `personctl sync --repair` publishes them again from the chains; set \
             `sync_interval: always` where a lost acknowledgement matters (docs/JETSTREAM.md)",
            self.server
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_lazy_and_an_always_server_from_their_varz() {
        // As nats-server 2.15.1 answers, trimmed.
        let lazy = br#"{"server_name":"n0","jetstream":{"config":{"max_memory":1,"store_dir":"/s","sync_interval":120000000000,"strict":true}}}"#;
        let always = br#"{"server_name":"n1","jetstream":{"config":{"sync_interval":120000000000,"sync_always":true}}}"#;
        let lazy = Durability::from_varz(lazy).unwrap();
        assert!(lazy.is_lazy());
        assert_eq!(lazy.sync_interval, Some(Duration::from_secs(120)));
        assert!(lazy.to_string().contains("fsyncs every 120s"), "{lazy}");
        let always = Durability::from_varz(always).unwrap();
        assert!(!always.is_lazy());
        assert!(always.to_string().contains("n1 fsyncs every"), "{always}");
        let off = Durability::from_varz(br#"{"server_name":"x"}"#).unwrap_err();
        assert!(off.to_string().contains("no jetstream.config"), "{off}");
        assert!(Durability::from_varz(b"<html>").is_err());
    }
}
