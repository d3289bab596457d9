//! Raw command-line flags (clap derive). `config` turns them into a validated configuration.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// personctl: a content-addressed, signed event ledger for people.
///
/// Exit codes: 0 ok; 1 a negative verdict (verification failed); 2 an error.
#[derive(Parser, Debug)]
#[command(name = "personctl", version, max_term_width = 100)]
pub(crate) struct Args {
    /// Data directory (store, keys). Default: $XDG_DATA_HOME/personctl or ~/.local/share/personctl.
    #[arg(long, env = "PERSONCTL_HOME", global = true, value_name = "DIR")]
    pub(crate) home: Option<PathBuf>,
    /// Signing key (PKCS#8 PEM). Default: <home>/keys/default.pem.
    #[arg(long, env = "PERSONCTL_KEY", global = true, value_name = "FILE")]
    pub(crate) key: Option<PathBuf>,
    /// Print JSON Lines on stdout: one {"type": ..., "data": ...} object per line (and an
    /// error as one {"type": "error", ...} line on stderr).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// More log lines on stderr: -v personctl's own progress, -vv its debugging (RUST_LOG,
    /// when set, decides instead).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub(crate) verbose: u8,
    /// Only errors on stderr: no warnings.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,
    /// Publish to and read from NATS JetStream at this URL (several servers: comma-separated).
    /// Without it, personctl works on the local store alone.
    #[arg(long, env = "PERSONCTL_NATS", global = true, value_name = "URL")]
    pub(crate) nats: Option<String>,
    /// JetStream subject prefix: events go to <prefix>.<type>.<id>.
    #[arg(
        long,
        env = "PERSONCTL_NATS_PREFIX",
        global = true,
        default_value = "ledger",
        value_name = "PREFIX"
    )]
    pub(crate) nats_prefix: String,
    /// Replicas of the JetStream stream and block bucket when personctl creates them.
    #[arg(
        long,
        env = "PERSONCTL_NATS_REPLICAS",
        global = true,
        default_value_t = 1,
        value_name = "N"
    )]
    pub(crate) nats_replicas: usize,
    /// The JetStream servers' monitoring URLs (`nats-server -m PORT`: `http://HOST:PORT`;
    /// several: comma-separated). With --nats, each server's durability setting is read from
    /// its /varz, and a warning names every server that acknowledges before it fsyncs.
    #[arg(
        long,
        env = "PERSONCTL_NATS_MONITOR",
        global = true,
        value_name = "URL"
    )]
    pub(crate) nats_monitor: Option<String>,
    /// After a command that appends (append, append-event, erase), sign a checkpoint of the
    /// home's log when at least N events were added since the newest one.
    #[arg(
        long,
        env = "PERSONCTL_CHECKPOINT_EVERY",
        global = true,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub(crate) checkpoint_every: Option<u64>,
    /// Sign as this identity (key/ID, made by `identity create` in this home): its current key,
    /// instead of --key.
    #[arg(
        long,
        env = "PERSONCTL_IDENTITY",
        global = true,
        value_name = "key/ID",
        conflicts_with = "key"
    )]
    pub(crate) identity: Option<String>,
    /// Serve Prometheus metrics (text format) over HTTP at this address while the command runs,
    /// for example 127.0.0.1:9464 (README, Operate).
    #[arg(long, env = "PERSONCTL_METRICS", global = true, value_name = "ADDR")]
    pub(crate) metrics: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Create an ed25519 signing key (mode 0600), print its did:key, and trust it in this home.
    #[command(
        after_help = "Examples:\n  personctl keygen\n  personctl keygen --out ~/keys/service.pem --label service"
    )]
    Keygen(KeygenArgs),
    /// Manage the public keys and identities whose signatures `verify` accepts.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  personctl trust list\n  personctl trust add did:key:z6Mk... --label payroll\n  personctl trust add --from-key ~/keys/service.pem"
    )]
    Trust(TrustCommand),
    /// Run a person command: `append register --legal-name "Ada Lovelace"`,
    /// `append add-email --person ID --address ada@example.org`, ... or many from a JSON Lines
    /// file. `personctl append --help` lists every command and its fields.
    #[command(after_long_help = COMMANDS_HELP)]
    Append(AppendArgs),
    /// Append one raw event to any stream (domain-agnostic, low level).
    #[command(
        after_help = "Examples:\n  personctl append-event --stream order/o-1 --type OrderPlaced --data '{\"total\": 42}'\n  personctl append-event --stream order/o-1 --type OrderPaid --expect-height 0"
    )]
    AppendEvent(AppendEventArgs),
    /// Rebuild persons from their chains: one (`--person`, optionally `--at`) or all.
    #[command(after_help = "Examples:\n  personctl replay\n  personctl replay --person ID --at 1")]
    Replay(ReplayArgs),
    /// Show persons readably (name, lifecycle, components): one by id, or everyone with an
    /// email address.
    #[command(after_help = "Examples:\n  personctl show --person ID\n  personctl --json show")]
    Show(ShowArgs),
    /// Print the person lifecycle's transition table and the event schema versions.
    #[command(after_help = "Examples:\n  personctl states")]
    States,
    /// Audit chains: CIDs, canonical encoding, signatures, trust, links, forks, truncation.
    #[command(
        after_help = "Examples:\n  personctl verify\n  personctl verify --person ID --exact\n  personctl verify --car backup.car"
    )]
    Verify(VerifyArgs),
    /// Print a stream's audit trail: height, time, type, author, CID, verdict.
    #[command(
        after_help = "Examples:\n  personctl log --person ID\n  personctl log --stream org/acme"
    )]
    Log(StreamArgs),
    /// List every stream with its head.
    #[command(after_help = "Examples:\n  personctl streams")]
    Streams,
    /// With --nats: publish pending events (stored here, not yet acknowledged by JetStream),
    /// then bring every stream (or one) level with JetStream. --repair first gives JetStream
    /// back what it acknowledged and lost (`verify --nats` reports it as `lost`).
    #[command(
        after_help = "Examples:\n  personctl --nats nats://127.0.0.1:4222 sync\n  personctl --nats nats://127.0.0.1:4222 sync --person ID\n  personctl --nats nats://127.0.0.1:4222 sync --repair"
    )]
    Sync(SyncArgs),
    /// With --nats: follow new events live, printing stream, height, type and CID.
    #[command(
        after_help = "Examples:\n  personctl --nats nats://127.0.0.1:4222 tail\n  personctl --nats nats://127.0.0.1:4222 tail --person ID --count 10"
    )]
    Tail(TailArgs),
    /// GDPR erasure: append a signed tombstone that masks the person's personal data (or one
    /// component's), then remove the masked blocks here (and with --nats from the JetStream
    /// bucket). The chain stays verifiable.
    #[command(
        after_help = "Examples:\n  personctl erase --person ID --reason \"Art. 17 request 2024-113\"\n  personctl erase --person ID --component phone --reason \"asked by phone\"\n  personctl erase --person ID --reason \"Art. 17\" --dry-run"
    )]
    Erase(EraseArgs),
    /// Remove every block a tombstone masks that is still stored (finishes an interrupted
    /// erasure; with --nats also in the JetStream bucket).
    #[command(after_help = "Examples:\n  personctl gc")]
    Gc,
    /// With --nats: keep the read models (summary, search, timeline, skills, network) current
    /// from JetStream, with a checkpoint, retries and a dead-letter stream. Stops on
    /// SIGINT/SIGTERM.
    #[command(
        after_help = "Examples:\n  personctl --nats nats://127.0.0.1:4222 serve\n  personctl --nats nats://127.0.0.1:4222 serve --policies --until-caught-up"
    )]
    Serve(ServeArgs),
    /// Read the read models: summary, search TEXT, timeline ID, skills SKILL, network ID.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  personctl query summary\n  personctl query search ada\n  personctl query timeline ID"
    )]
    Query(QueryCommand),
    /// Build the read models out of the chains when there are none yet (else describe them);
    /// `--rebuild` builds them again from scratch.
    #[command(after_help = "Examples:\n  personctl project\n  personctl project --rebuild")]
    Project(ProjectArgs),
    /// With --nats: the messages `serve` could not apply.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  personctl --nats nats://127.0.0.1:4222 dlq list\n  personctl --nats nats://127.0.0.1:4222 dlq retry"
    )]
    Dlq(DlqCommand),
    /// Write chains to a CARv1 file: every chain, or one person's (`--person`) or one stream's
    /// (`--stream`), with every block they reach (causal parents too; masked payloads left out).
    #[command(
        after_help = "Examples:\n  personctl export --car backup.car\n  personctl export --car ada.car --person ID"
    )]
    Export(ExportArgs),
    /// Read a CARv1 file, verify every block and chain, and only then store it here (all or
    /// nothing; exit 1 when it does not verify).
    #[command(after_help = "Examples:\n  personctl import --car backup.car")]
    Import(ImportArgs),
    /// Measure throughput on this machine (events/s), each stage next to its raw primitive.
    #[command(
        after_help = "Examples:\n  personctl bench\n  personctl --nats nats://127.0.0.1:4222 bench --events 20000"
    )]
    Bench(BenchArgs),
    /// Sign a checkpoint of this home's log (every event, in the order stored: a Merkle tree,
    /// RFC 6962): its size and root, as a C2SP signed note, kept in the store. Prints it and
    /// the verifier key. With --witness, collects witnesses' cosignatures (exit 1 when fewer
    /// than the quorum cosign).
    #[command(
        after_help = "Examples:\n  personctl checkpoint\n  personctl checkpoint --origin ledger.example.org/hr\n  personctl checkpoint --witness http://witness.example.org:7380 --witness-key 'witness.example.org+5d2e1f0a+BA...'"
    )]
    Checkpoint(CheckpointArgs),
    /// Check that this home's log only grew since an older checkpoint (a consistency proof
    /// from it to a fresh one); --out writes the proof for an auditor, who checks it offline
    /// with --proof. Exit 1 when the log did not just grow.
    #[command(
        after_help = "Examples:\n  personctl audit --from old.note --out growth.txt\n  personctl audit --from old.note --proof growth.txt --log-key 'personctl.local/...+1a2b3c4d+AQ...'"
    )]
    Audit(AuditArgs),
    /// Identities whose keys rotate and can be revoked: create, rotate, revoke, show, list.
    #[command(
        subcommand,
        after_help = "Examples:\n  personctl identity create --label hr-service\n  personctl --identity key/ab12... append register --legal-name 'Ada'\n  personctl identity rotate --id key/ab12...\n  personctl identity revoke --id key/ab12... --revoked-key did:key:z6Mk... --from 1200\n  personctl identity show --id key/ab12..."
    )]
    Identity(IdentityCommand),
    /// Grant an identity the right to write a stream type (or some event types in it), in the
    /// policy of an admin identity (signed with its current key): while a policy is in force
    /// (its admin trusted), every write needs a grant, `append` refuses the others and `verify`
    /// reports them (`unauthorized`).
    #[command(
        after_help = "Examples:\n  personctl grant --admin key/ab12... --grantee key/cd34... --aggregate person\n  personctl grant --admin key/ab12... --grantee key/ef56... --aggregate person --event PersonRenamed --event EmailAdded"
    )]
    Grant(GrantArgs),
    /// Withdraw every grant of an identity on a stream type, from now on.
    #[command(
        name = "revoke-grant",
        after_help = "Examples:\n  personctl revoke-grant --admin key/ab12... --grantee key/cd34... --aggregate person"
    )]
    RevokeGrant(GrantArgs),
    /// What a retention policy (JSON: README, Operate) makes due for erasure; `serve
    /// --policies --retention FILE` erases it.
    #[command(
        subcommand,
        after_help = "Examples:\n  personctl retention show --retention retention.json\n  personctl retention show --retention retention.json --now 2027-06-01T00:00:00Z"
    )]
    Retention(RetentionCommand),
    /// Run a witness (C2SP tlog-witness over HTTP): it cosigns a checkpoint of a log it
    /// follows only if a consistency proof shows it extends the last one it cosigned, so a
    /// log cannot show two histories or roll back unnoticed. Signs with this home's key.
    #[command(
        after_help = "Examples:\n  personctl witness --log 'personctl.local/...+1a2b3c4d+AQ...'\n  personctl witness --listen 0.0.0.0:7380 --name witness.example.org --log VKEY --log VKEY2"
    )]
    Witness(WitnessArgs),
    /// Write a self-contained proof that one event is in this home's log: a fresh checkpoint,
    /// the inclusion proof, the event and its payload. `verify --proof` checks it offline.
    #[command(
        after_help = "Examples:\n  personctl prove --cid bafyr4i... --out event.proof.json\n  personctl verify --proof event.proof.json --log-key 'personctl.local/...+1a2b3c4d+AQ...'"
    )]
    Prove(ProveArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(
        after_help = "Examples:\n  personctl completions bash > ~/.local/share/bash-completion/completions/personctl\n  personctl completions zsh > ~/.zfunc/_personctl"
    )]
    Completions(CompletionsArgs),
    /// Print the manual page (roff) on stdout.
    #[command(after_help = "Examples:\n  personctl man > personctl.1 && man ./personctl.1")]
    Man,
    /// Create a fresh sample ledger, append events to a few chains, verify and show them.
    #[command(after_help = "Examples:\n  personctl demo\n  personctl demo --dir /tmp/sample")]
    Demo(DemoArgs),
}

#[derive(ClapArgs, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    pub(crate) shell: clap_complete::Shell,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct ServeArgs {
    /// Attempts per message before it goes to the dead-letter stream.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) max_attempts: u32,
    /// The first retry's delay in milliseconds; each retry doubles it (at most 5 s).
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub(crate) retry_delay_ms: u64,
    /// Stop once every message on the stream is applied (instead of running until a signal).
    #[arg(long)]
    pub(crate) until_caught_up: bool,
    /// Run the policies (welcome, skill recommendation, data quality, auto-archive) and the
    /// onboarding process manager, signing their events with this home's key (--key).
    #[arg(long)]
    pub(crate) policies: bool,
    /// Days after which an unverified email address is flagged (data-quality policy).
    #[arg(long, default_value_t = 7, value_name = "DAYS")]
    pub(crate) unverified_email_days: u64,
    /// Days without any event after which a person is archived (auto-archive policy).
    #[arg(long, default_value_t = 365, value_name = "DAYS")]
    pub(crate) inactive_days: u64,
    /// Days an onboarding may wait for a verified email before it fails (and suspends).
    #[arg(long, default_value_t = 14, value_name = "DAYS")]
    pub(crate) onboarding_days: u64,
    /// Seconds between sweeps for the time-based policies (also run whenever caught up).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub(crate) sweep_seconds: u64,
    /// The time the time-based policies take as now (RFC 3339; default: the system clock). For
    /// tests and dry runs.
    #[arg(long, value_name = "TIME")]
    pub(crate) now: Option<String>,
    /// Also accept person commands by NATS request-reply on `<prefix>_commands.<command>`
    /// (queue group `personctl-commands`, so several instances share them), signed with this
    /// home's key (or --identity's). The body is the JSON of one `append --file` line plus an
    /// optional "id" that makes a retry idempotent; the reply is JSON (README, Operate).
    #[arg(long)]
    pub(crate) commands: bool,
    /// With --policies: erase what this retention policy (JSON: README, Operate) makes due,
    /// with signed tombstones, whenever the time-based policies run.
    #[arg(long, value_name = "FILE", requires = "policies")]
    pub(crate) retention: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum RetentionCommand {
    /// List the erasures due: person, rule, state and since when, what it erases.
    Show {
        /// The retention policy (JSON).
        #[arg(long, value_name = "FILE")]
        retention: PathBuf,
        /// The time to judge at (RFC 3339; default: now).
        #[arg(long, value_name = "TIME")]
        now: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum QueryCommand {
    /// Id, name, lifecycle and primary email: of one person, or of everyone.
    Summary {
        /// One person.
        #[arg(long, value_name = "ID")]
        person: Option<String>,
    },
    /// The persons whose names or email addresses hold every word of TEXT.
    Search {
        /// Words to look for (case-insensitive).
        text: String,
    },
    /// A person's events with time and type.
    Timeline {
        /// The person.
        person: String,
    },
    /// The persons with a skill, and their levels.
    Skills {
        /// The skill (case-insensitive).
        skill: String,
    },
    /// Who a person is connected to, in either direction.
    Network {
        /// The person.
        person: String,
    },
}

#[derive(ClapArgs, Debug)]
pub(crate) struct ProjectArgs {
    /// Clear every read model and build it again from the chains (with --nats: after bringing
    /// the store level with JetStream; the checkpoint becomes the stream's last sequence).
    #[arg(long)]
    pub(crate) rebuild: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum DlqCommand {
    /// List the dead letters: original sequence, subject, CID, reason, attempts.
    List,
    /// Apply each dead letter again; those that succeed leave the dead-letter stream.
    Retry,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct EraseArgs {
    /// The person to erase.
    #[arg(long, value_name = "ID")]
    pub(crate) person: String,
    /// Only one component: KIND (every item of it: email, phone, address, skill, employment,
    /// certification, relationship, attribute) or KIND:KEY (one item, for example
    /// phone:+442079460000).
    #[arg(long, value_name = "KIND[:KEY]")]
    pub(crate) component: Option<String>,
    /// Why (kept in the tombstone for the audit trail; must not hold personal data).
    #[arg(long, value_name = "TEXT")]
    pub(crate) reason: String,
    /// Show exactly which payloads the erasure would mask (event, height, type), and write
    /// nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct DemoArgs {
    /// Data directory for the sample ledger (must not exist yet). Default: a new directory
    /// under the system's temporary directory, kept so that you can explore it.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct ExportArgs {
    /// The CAR file to write (replaced atomically once complete).
    #[arg(long, value_name = "FILE")]
    pub(crate) car: PathBuf,
    #[command(flatten)]
    pub(crate) select: StreamSelector,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct ImportArgs {
    /// The CAR file to read.
    #[arg(long, value_name = "FILE")]
    pub(crate) car: PathBuf,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct KeygenArgs {
    /// Where to write the key. Default: the --key path. Never overwrites an existing file.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// A label for the trust list.
    #[arg(long, default_value = "keygen")]
    pub(crate) label: String,
    /// Do not add the new key to this home's trusted keys.
    #[arg(long)]
    pub(crate) no_trust: bool,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct GrantArgs {
    /// The admin identity whose policy this is (its keys in this home).
    #[arg(long, value_name = "key/ID")]
    pub(crate) admin: String,
    /// The identity granted (or withdrawn).
    #[arg(long, value_name = "key/ID")]
    pub(crate) grantee: String,
    /// The stream type (person, org, ...).
    #[arg(long, value_name = "TYPE")]
    pub(crate) aggregate: String,
    /// Only these event types (repeatable; default: any). Not for revoke-grant.
    #[arg(long = "event", value_name = "NAME")]
    pub(crate) events: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum IdentityCommand {
    /// Create an identity: a current and a next key (kept under <home>/keys/identities/, mode
    /// 0600), its inception in the ledger, and trust in it here.
    Create {
        /// A label for the trust list.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Rotate to the next key (committed at the last key event); a new next key is made.
    Rotate {
        /// The identity.
        #[arg(long, value_name = "key/ID")]
        id: String,
    },
    /// Revoke one of the identity's keys from a log position on (signed by its current key):
    /// events that key signed from there on fail `verify` (`revoked-key`).
    Revoke {
        /// The identity.
        #[arg(long, value_name = "key/ID")]
        id: String,
        /// The key (did:key) to revoke.
        #[arg(long = "revoked-key", value_name = "DID")]
        revoked: String,
        /// The first log position it no longer speaks for (`personctl checkpoint` prints the
        /// log's size; events before stay valid). With JetStream, a position in the shared log
        /// (`personctl --nats URL checkpoint`), where every home judges it.
        #[arg(long, value_name = "POSITION")]
        from: u64,
    },
    /// Show an identity: its keys, from which log position to which, revocations.
    Show {
        /// The identity.
        #[arg(long, value_name = "key/ID")]
        id: String,
    },
    /// List the identities in the store.
    List,
}

#[derive(Subcommand, Debug)]
pub(crate) enum TrustCommand {
    /// Trust a public key (a did:key string, or a PEM private key file with --from-key), or
    /// an identity (key/ID: whichever key it has at each event's place in the log).
    Add {
        /// The did:key or identity (key/ID) to trust.
        #[arg(required_unless_present = "from_key")]
        did: Option<String>,
        /// Trust the public half of this private key file instead.
        #[arg(long, value_name = "FILE", conflicts_with = "did")]
        from_key: Option<PathBuf>,
        /// A label to remember the key by.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List trusted keys.
    List,
    /// Stop trusting a key or an identity.
    Remove {
        /// The did:key or identity (key/ID) to remove.
        did: String,
    },
}

#[derive(ClapArgs, Debug)]
pub(crate) struct StreamSelector {
    /// A stream as TYPE/ID, for example person/0193f0c2-....
    #[arg(long, value_name = "TYPE/ID", conflicts_with = "person")]
    pub(crate) stream: Option<String>,
    /// A person id: shorthand for --stream person/ID.
    #[arg(long, value_name = "ID")]
    pub(crate) person: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct SyncArgs {
    #[command(flatten)]
    pub(crate) select: StreamSelector,
    /// Repair JetStream from this home's chains first: republish, in chain order, the events
    /// it acknowledged and no longer holds, and store again the blocks its bucket lost or
    /// holds damaged. A subject ending on another history is reported, never overwritten.
    #[arg(long, conflicts_with_all = ["person", "stream"])]
    pub(crate) repair: bool,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct StreamArgs {
    #[command(flatten)]
    pub(crate) select: StreamSelector,
}

/// The person commands and their fields, for `append --help`.
pub(crate) const COMMANDS_HELP: &str = "\
Commands and their fields (--field-name VALUE; dates YYYY-MM-DD; every command but register needs --person ID):
  register                         --legal-name
  rename                           --legal-name [--reason]
  set-birth-date, record-death     --date
  suspend, reactivate, archive     [--reason]
  merge                            --into ID (the surviving person)
  add-email, verify-email, remove-email      --address
  add-phone, update-phone          --number [--kind];   remove-phone --number
  add-address, update-address      --label [--street --city --postal-code --country];   remove-address --label
  add-skill, update-skill          --name --level 1..5;   remove-skill --name
  add-employment, update-employment    --id --organisation --role --start [--end];   remove-employment --id
  add-certification, update-certification  --name --issued [--issuer --expires];   remove-certification --name
  add-relationship, remove-relationship    --other ID --kind
  add-attribute, update-attribute  --name --value [--source --confidence 0..100 --valid-from --valid-until];   remove-attribute --name
  set-preferences                  [--language --channels a,b];   clear-preferences

JSON Lines (--file): one object per line, {\"person\": ID, \"command\": \"add-email\", \"address\": ...}, field names with underscores.

Examples:
  personctl append register --legal-name \"Ada Lovelace\"
  personctl append add-email --person ID --address ada@example.org
  personctl append --file commands.jsonl
  generate-commands | personctl append --file -";

#[derive(ClapArgs, Debug)]
pub(crate) struct AppendArgs {
    /// Apply the commands of a JSON Lines file, one object per line
    /// (`{"person": ID, "command": "add-email", "address": ...}`), in one batch. Stops at the
    /// first invalid line; the lines before it are appended, nothing of it.
    #[arg(long, value_name = "FILE", conflicts_with = "command")]
    pub(crate) file: Option<PathBuf>,
    /// The command and its fields: COMMAND [--person ID] [--FIELD VALUE]...
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "file"
    )]
    pub(crate) command: Vec<String>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct ReplayArgs {
    /// Replay only this person.
    #[arg(long, value_name = "ID")]
    pub(crate) person: Option<String>,
    /// Stop at this event of the person's chain: a height or an event CID (needs --person).
    #[arg(long, value_name = "HEIGHT|CID", requires = "person")]
    pub(crate) at: Option<String>,
}

#[derive(ClapArgs, Debug)]
#[group(required = true, multiple = false)]
pub(crate) struct ShowArgs {
    /// The person with this id.
    #[arg(long, value_name = "ID")]
    pub(crate) person: Option<String>,
    /// Every person with this email address (case-insensitive), found in the World built by
    /// replaying every chain.
    #[arg(long, value_name = "ADDRESS")]
    pub(crate) email: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct AppendEventArgs {
    /// The stream, as TYPE/ID.
    #[arg(long, value_name = "TYPE/ID")]
    pub(crate) stream: String,
    /// Event type name, past tense (letters, digits, _ . -).
    #[arg(long = "type", value_name = "NAME")]
    pub(crate) event_type: String,
    /// Schema version of the event type.
    #[arg(long, default_value_t = 1)]
    pub(crate) schema: u64,
    /// Event data as JSON; stored in a salted payload block.
    #[arg(long, value_name = "JSON")]
    pub(crate) data: Option<String>,
    /// A causal parent in another stream (repeatable).
    #[arg(long = "cause", value_name = "CID")]
    pub(crate) causes: Vec<String>,
    /// Fail with a conflict unless the stream's head is at this height.
    #[arg(long, value_name = "HEIGHT", conflicts_with = "expect_empty")]
    pub(crate) expect_height: Option<u64>,
    /// Fail with a conflict unless the stream does not exist yet.
    #[arg(long)]
    pub(crate) expect_empty: bool,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) select: StreamSelector,
    /// Audit this CARv1 archive instead of the store (nothing is imported; the home's trusted
    /// keys are used).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["stream", "person"])]
    pub(crate) car: Option<PathBuf>,
    /// Check each signature on its own instead of in batches (slower; same verdicts).
    #[arg(long)]
    pub(crate) exact: bool,
    /// Check this proof bundle (from `personctl prove`) offline, with no home: needs
    /// --log-key.
    #[arg(long, value_name = "FILE", requires = "log_key", conflicts_with_all = ["stream", "person", "car"])]
    pub(crate) proof: Option<PathBuf>,
    /// The log's verifier key (NAME+ID+KEY, as `personctl checkpoint` prints it).
    #[arg(long, value_name = "VKEY")]
    pub(crate) log_key: Option<String>,
    /// Also check the log against this signed checkpoint (default key: this home's, under
    /// the checkpoint's origin; else --log-key): fewer events than it signed is
    /// `truncated-log`, another root for them is `root-mismatch`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["car", "proof"])]
    pub(crate) checkpoint: Option<PathBuf>,
    /// With --proof: witnesses whose cosignatures on the proof's checkpoint count.
    #[command(flatten)]
    pub(crate) witnesses: WitnessKeys,
    /// With --nats: also ask each server of the --nats list alone what its replicas hold
    /// (`replica-lost`, `replica-diverged`, `replica-bucket-missing`, `replica-bucket-corrupt`),
    /// so that a replica serving another history is named.
    #[arg(long, conflicts_with_all = ["car", "proof"])]
    pub(crate) replicas: bool,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct CheckpointArgs {
    /// The log's name in its checkpoints and verifier key (host[/path]). Default:
    /// personctl.local/ and the end of this home's did:key.
    #[arg(long, value_name = "NAME")]
    pub(crate) origin: Option<String>,
    /// A witness to ask for a cosignature (its URL, http://HOST:PORT[/PREFIX]; repeatable).
    #[arg(long = "witness", value_name = "URL", requires = "witness_keys")]
    pub(crate) witnesses: Vec<String>,
    #[command(flatten)]
    pub(crate) keys: WitnessKeys,
}

/// Witnesses' verifier keys and a quorum.
#[derive(ClapArgs, Debug, Default)]
pub(crate) struct WitnessKeys {
    /// A witness's verifier key (NAME+ID+KEY, type 0x04, as `personctl witness` prints it);
    /// only cosignatures by these count (repeatable).
    #[arg(long = "witness-key", value_name = "VKEY")]
    pub(crate) witness_keys: Vec<String>,
    /// How many of the --witness-key witnesses must cosign (default: all of them).
    #[arg(long, value_name = "K", requires = "witness_keys")]
    pub(crate) quorum: Option<usize>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct AuditArgs {
    /// The older signed checkpoint (a file, as `checkpoint` printed or kept it).
    #[arg(long, value_name = "FILE")]
    pub(crate) from: PathBuf,
    /// The log's verifier key (default: this home's key, under the checkpoint's origin).
    #[arg(long, value_name = "VKEY")]
    pub(crate) log_key: Option<String>,
    /// Check this consistency proof (from `audit --out`) offline, with no home: needs
    /// --log-key.
    #[arg(
        long,
        value_name = "FILE",
        requires = "log_key",
        conflicts_with = "out"
    )]
    pub(crate) proof: Option<PathBuf>,
    /// Write the consistency proof (old size, hashes, the new signed checkpoint) here.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// The log's origin for the new checkpoint (default as for `checkpoint`).
    #[arg(long, value_name = "NAME", conflicts_with = "proof")]
    pub(crate) origin: Option<String>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct WitnessArgs {
    /// Where to listen (HOST:PORT; port 0 picks a free one, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7380")]
    pub(crate) listen: String,
    /// The witness's name in its cosignatures and verifier key. Default:
    /// personctl.witness/ and the end of this home's did:key.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// A log to follow: its verifier key, as `personctl checkpoint` prints it (repeatable).
    #[arg(long = "log", value_name = "VKEY", required = true)]
    pub(crate) logs: Vec<String>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct ProveArgs {
    /// The event to prove.
    #[arg(long, value_name = "CID")]
    pub(crate) cid: String,
    /// Where to write the proof bundle (JSON).
    #[arg(long, value_name = "FILE")]
    pub(crate) out: PathBuf,
    #[command(flatten)]
    pub(crate) checkpoint: CheckpointArgs,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct TailArgs {
    #[command(flatten)]
    pub(crate) select: StreamSelector,
    /// Stop after this many events (default: follow until interrupted).
    #[arg(long, value_name = "N")]
    pub(crate) count: Option<u64>,
}

#[derive(ClapArgs, Debug)]
pub(crate) struct BenchArgs {
    /// Events to append and verify.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) events: u64,
    /// Streams to spread them over.
    #[arg(long, default_value_t = 1_000)]
    pub(crate) streams: u64,
    /// Events per batch (one durable write each).
    #[arg(long, default_value_t = 1_000)]
    pub(crate) batch: u64,
    /// Concurrent writers, each appending batches to its own share of the streams (default:
    /// one per core).
    #[arg(long)]
    pub(crate) writers: Option<u64>,
    /// Work in this directory instead of a fresh temporary one (it must not exist yet).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
    /// Instead of the stages: measure what JetStream subjects cost the server (with --nats),
    /// publishing N block-sized messages on a subject each, then on 1,000 subjects
    /// (`docs/JETSTREAM.md`, capacity model).
    #[arg(long, value_name = "N")]
    pub(crate) subjects: Option<u64>,
    /// The server's monitoring URL (`nats-server -m PORT`: `http://127.0.0.1:PORT`), to read
    /// its memory for --subjects.
    #[arg(long, value_name = "URL", requires = "subjects")]
    pub(crate) monitor: Option<String>,
    /// The Hypercore peer's directory (default: `benches/hypercore` when run from the
    /// repository; `npm ci` there first): run in the same run, personctl's matching stages
    /// printed as multiples of its rates.
    #[arg(long, value_name = "DIR")]
    pub(crate) hypercore: Option<PathBuf>,
}
