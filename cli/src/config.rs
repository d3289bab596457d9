//! The validated configuration (second stage of argument parsing) and the data directory:
//! where the store and keys live, opening them, loading the signing key.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use personctl_ledger::jetstream::Settings;
use personctl_ledger::{Signer, SledStore, StreamId, TrustSet};

use crate::args::{Args, StreamSelector};

/// Everything the commands need to know about where things are.
pub(crate) struct Config {
    pub(crate) home: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) json: bool,
    /// `--nats`: the JetStream URL and settings; `None`: the local store alone.
    pub(crate) nats: Option<(String, Settings)>,
    /// `--nats-monitor`: the servers' monitoring URLs.
    pub(crate) nats_monitor: Vec<String>,
    /// `--checkpoint-every N`.
    pub(crate) checkpoint_every: Option<u64>,
    /// `--identity key/ID`: the key is that identity's current one.
    pub(crate) identity: Option<personctl_ledger::StreamId>,
}

impl Config {
    /// Whether this home has read models yet.
    pub(crate) fn has_projections(&self) -> bool {
        self.home.join("projections").is_dir()
    }

    /// The read models of this home, for reading: an error that says how to build them when
    /// there are none yet (instead of empty answers).
    pub(crate) fn existing_projections(&self) -> Result<personctl_domain::Projections> {
        if !self.has_projections() {
            anyhow::bail!(
                "no read models in {} yet: build them from the chains with `personctl project`, or keep them current from JetStream with `personctl --nats URL serve`",
                self.home.display()
            );
        }
        self.projections()
    }

    /// The read models of this home (made empty when there are none).
    pub(crate) fn projections(&self) -> Result<personctl_domain::Projections> {
        let dir = self.home.join("projections");
        personctl_domain::Projections::open(&dir).map_err(|e| {
            anyhow::anyhow!("{e} (is `personctl serve` running on this home? it holds the read models open: ask it with --nats URL)")
        })
    }

    pub(crate) fn from_args(args: &Args) -> Result<Config> {
        let home = match &args.home {
            Some(h) => h.clone(),
            None => default_home()?,
        };
        if home.as_os_str().is_empty() {
            bail!("--home (PERSONCTL_HOME) is empty");
        }
        let key = match (&args.key, &args.identity) {
            (Some(k), _) => k.clone(),
            (None, Some(id)) => {
                identity_dir(&home, id)?.join(personctl_ledger::identity::CURRENT_KEY_FILE)
            }
            (None, None) => home.join("keys").join("default.pem"),
        };
        let nats = match args.nats.as_deref().map(str::trim) {
            None => None,
            Some("") => None,
            Some(url) => {
                if args.nats_replicas == 0 || args.nats_replicas > 5 {
                    bail!(
                        "--nats-replicas {} must be 1 to 5 (JetStream's limit)",
                        args.nats_replicas
                    );
                }
                let prefix = &args.nats_prefix;
                let token_ok = |t: &str| {
                    !t.is_empty()
                        && t.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                };
                if !prefix.split('.').all(token_ok) {
                    bail!("--nats-prefix {prefix:?} must be dot-separated tokens of letters, digits, _ and -");
                }
                let settings = Settings {
                    prefix: prefix.clone(),
                    replicas: args.nats_replicas,
                    ..Settings::default()
                };
                Some((url.to_string(), settings))
            }
        };
        Ok(Config {
            home,
            key,
            json: args.json,
            nats,
            nats_monitor: args
                .nats_monitor
                .iter()
                .flat_map(|m| m.split(','))
                .map(|m| m.trim().trim_end_matches('/').to_string())
                .filter(|m| !m.is_empty())
                .collect(),
            checkpoint_every: args.checkpoint_every,
            identity: match (&args.key, &args.identity) {
                (None, Some(id)) => Some(id.parse().with_context(|| format!("--identity {id:?}"))?),
                _ => None,
            },
        })
    }

    fn store_path(&self) -> PathBuf {
        self.home.join("store")
    }

    /// Opens the store, creating the data directory and store if needed.
    pub(crate) fn open_or_create_store(&self) -> Result<SledStore> {
        create_private_dir(&self.home)?;
        self.open(&self.store_path())
    }

    /// Opens an existing store; a missing one is an error naming the path.
    pub(crate) fn open_existing_store(&self) -> Result<SledStore> {
        let path = self.store_path();
        if !path.is_dir() {
            bail!(
                "no store at {} (set --home or PERSONCTL_HOME, or create one with `personctl keygen`)",
                path.display()
            );
        }
        self.open(&path)
    }

    fn open(&self, path: &Path) -> Result<SledStore> {
        let store = SledStore::open(path).map_err(|e| match e {
            personctl_ledger::Error::InUse { .. } => anyhow::anyhow!(
                "the store at {} is in use by another personctl process (one writer at a time; commands that only read still work)",
                path.display()
            ),
            other => {
                anyhow::Error::new(other).context(format!("opening the store at {}", path.display()))
            }
        })?;
        report_repairs(&store, false);
        Ok(store)
    }

    /// Opens an existing store for a command that only reads: for writing when it can (so that
    /// recovery repairs what a crash left), else read-only: while another process writes it,
    /// or when its files cannot be written (an auditor's copy, a read-only mount).
    /// Opens the store read-only, taking no lock: for commands that run long and only read
    /// (`tail`), so that writers go on meanwhile. Nothing is repaired.
    pub(crate) fn open_read_only(&self) -> Result<SledStore> {
        let path = self.store_path();
        SledStore::open_read_only(&path)
            .with_context(|| format!("opening the store at {} read-only", path.display()))
    }

    pub(crate) fn open_for_reading(&self) -> Result<SledStore> {
        let path = self.store_path();
        if !path.is_dir() {
            return self.open_existing_store();
        }
        let busy = match SledStore::open(&path) {
            Ok(store) => {
                report_repairs(&store, false);
                return Ok(store);
            }
            Err(personctl_ledger::Error::InUse { .. }) => true,
            Err(personctl_ledger::Error::Io { source, .. })
                if matches!(
                    source.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) =>
            {
                false
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("opening the store at {}", path.display())))
            }
        };
        tracing::debug!(busy, "opening the store read-only");
        let store = SledStore::open_read_only(&path)
            .with_context(|| format!("opening the store at {} read-only", path.display()))?;
        report_repairs(&store, busy);
        Ok(store)
    }

    /// The trusted keys and identities recorded in the store.
    pub(crate) fn trust(&self, store: &SledStore) -> Result<TrustSet> {
        Ok(store.trust_set()?)
    }

    /// A ledger over `store` that refuses up front what the write policies in force here would
    /// report as `unauthorized` (`ledger::policy`).
    pub(crate) fn guarded<'a>(
        &self,
        store: &'a SledStore,
    ) -> Result<personctl_ledger::Ledger<&'a SledStore>> {
        Ok(personctl_ledger::Ledger::new(store).enforce_policies(self.trust(store)?))
    }

    /// Loads the signing key from the key path.
    pub(crate) fn signer(&self) -> Result<Signer> {
        load_signer(&self.key)
    }

    /// The signing key for a write to `store`: with `--identity`, its current key, after an
    /// interrupted rotation of it is settled (`ledger::identity::IdentityKeys`).
    pub(crate) fn signer_over(&self, store: &SledStore) -> Result<Signer> {
        let Some(id) = &self.identity else {
            return self.signer();
        };
        let dir = self.key.parent().context("the identity's key directory")?;
        personctl_ledger::Ledger::new(store)
            .identity_signer(id, &personctl_ledger::identity::IdentityKeys::at(dir))
            .with_context(|| format!("the current key of {id}"))
    }
}

/// Where an identity's keys are kept: `<home>/keys/identities/ID` (current.pem, next.pem,
/// retired-N.pem).
pub(crate) fn identity_dir(home: &Path, id: &str) -> Result<PathBuf> {
    let stream: personctl_ledger::StreamId =
        id.parse().with_context(|| format!("--identity {id:?}"))?;
    if stream.aggregate() != personctl_ledger::identity::KEY_AGGREGATE {
        bail!("--identity {id:?}: an identity is key/ID");
    }
    Ok(home.join("keys").join("identities").join(stream.id()))
}

/// Says on stderr what recovery did when the store was opened. A read-only open beside a
/// writer (`busy`) does not mention a torn tail: that is the writer's commit in progress.
fn report_repairs(store: &SledStore, busy: bool) {
    use personctl_ledger::store::Repair;
    for repair in store.repairs() {
        if busy && matches!(repair, Repair::TornTail { .. }) {
            continue;
        }
        eprintln!(
            "personctl: recovery: {}",
            crate::output::escape(&repair.to_string())
        );
    }
}

/// The largest key file read, in bytes: a PEM ed25519 key is about 120.
const MAX_KEY_FILE: u64 = 16 * 1024;

pub(crate) fn load_signer(path: &Path) -> Result<Signer> {
    let meta = fs::metadata(path).with_context(|| {
        format!(
            "reading the signing key {} (create one with `personctl keygen`)",
            path.display()
        )
    })?;
    if !meta.is_file() {
        bail!("the signing key {} is not a file", path.display());
    }
    if meta.len() == 0 {
        bail!(
            "the signing key {} is empty (expected a PKCS#8 PEM ed25519 key, as `personctl keygen` writes)",
            path.display()
        );
    }
    if meta.len() > MAX_KEY_FILE {
        bail!(
            "the signing key {} is {} bytes, not a key file (a PEM ed25519 key is about 120 bytes; the limit is {MAX_KEY_FILE})",
            path.display(),
            meta.len()
        );
    }
    let text = fs::read_to_string(path).with_context(|| {
        format!(
            "reading the signing key {} (not UTF-8 text: expected a PKCS#8 PEM ed25519 key)",
            path.display()
        )
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(path = %path.display(), "the signing key is readable by others; chmod 600 it");
    }
    Signer::from_pkcs8_pem(&text)
        .with_context(|| format!("reading the signing key {}", path.display()))
}

/// Writes a new key file readable only by its owner; never overwrites.
pub(crate) fn write_key(path: &Path, signer: &Signer) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let pem = signer.to_pkcs8_pem()?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating the key file {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(pem.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the directory {}", dir.display()))
}

fn default_home() -> Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("personctl"));
    }
    match std::env::var_os("HOME").filter(|x| !x.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/personctl")),
        None => bail!("no data directory: set --home or PERSONCTL_HOME"),
    }
}

/// Resolves `--stream TYPE/ID` or `--person ID` to a stream id; `None` when neither is given.
pub(crate) fn stream_of(select: &StreamSelector) -> Result<Option<StreamId>> {
    match (&select.stream, &select.person) {
        (Some(s), _) => Ok(Some(s.parse().with_context(|| format!("--stream {s:?}"))?)),
        (None, Some(p)) => Ok(Some(
            StreamId::new(personctl_domain::AGGREGATE, p.as_str())
                .with_context(|| format!("--person {p:?}"))?,
        )),
        (None, None) => Ok(None),
    }
}

/// A person id given on the command line; `flag` names where (`--person `, or empty for a
/// positional argument) in the error.
pub(crate) fn person_arg(flag: &str, text: &str) -> Result<personctl_domain::PersonId> {
    text.parse()
        .with_context(|| format!("{flag}{text:?} is not a person id (a UUID)"))
}
