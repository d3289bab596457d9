//! `personctl keygen`: a new signing key, trusted in this home unless `--no-trust`.

use anyhow::Result;
use serde_json::json;

use personctl_ledger::Signer;

use crate::args::KeygenArgs;
use crate::config::{write_key, Config};
use crate::output::Out;
use crate::EXIT_OK;

pub(crate) fn run(config: &Config, args: &KeygenArgs, out: &mut Out) -> Result<u8> {
    let path = args.out.clone().unwrap_or_else(|| config.key.clone());
    let signer = Signer::generate()?;
    write_key(&path, &signer)?;
    let author = signer.author();
    let trusted = !args.no_trust;
    if trusted {
        let store = config.open_or_create_store()?;
        store.trust_add(&author, &args.label)?;
    }
    out.record(
        "key",
        json!({"author": author.to_string(), "path": path.display().to_string(), "trusted": trusted}),
        || author.to_string(),
    )?;
    if !out.is_json() {
        let note = if trusted {
            ", trusted in this home"
        } else {
            ""
        };
        eprintln!("personctl: wrote {} (mode 0600){note}", path.display());
    }
    Ok(EXIT_OK)
}
