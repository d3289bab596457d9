//! One module per subcommand; `run` dispatches.

mod append;
mod append_event;
mod bench;
mod car;
mod demo;
mod erase;
mod identity;
mod keygen;
mod log;
mod query;
mod replay;
mod retention;
mod serve;
mod sync;
mod tlog;
mod trust;
mod verify;
mod witness;

use anyhow::Result;
use serde_json::json;

use crate::args::{Args, Command};
use crate::config::Config;
use crate::output::Out;
use crate::EXIT_OK;

pub(crate) fn run(args: Args) -> Result<u8> {
    let config = Config::from_args(&args)?;
    let mut out = Out::new(config.json);
    let appends = matches!(
        args.command,
        Command::Append(_) | Command::AppendEvent(_) | Command::Erase(_)
    );
    let code = match args.command {
        Command::Keygen(a) => keygen::run(&config, &a, &mut out)?,
        Command::Trust(a) => trust::run(&config, a, &mut out)?,
        Command::Append(a) => append::run(&config, &a, &mut out)?,
        Command::AppendEvent(a) => append_event::run(&config, &a, &mut out)?,
        Command::Replay(a) => replay::replay(&config, &a, &mut out)?,
        Command::Show(a) => replay::show(&config, &a, &mut out)?,
        Command::States => replay::states(&mut out)?,
        Command::Verify(a) => verify::run(&config, &a, &mut out)?,
        Command::Log(a) => log::run(&config, &a, &mut out)?,
        Command::Streams => streams(&config, &mut out)?,
        Command::Sync(a) => sync::sync(&config, &a, &mut out)?,
        Command::Tail(a) => sync::tail(&config, &a, &mut out)?,
        Command::Erase(a) => erase::erase(&config, &a, &mut out)?,
        Command::Gc => erase::gc(&config, &mut out)?,
        Command::Serve(a) => serve::serve(&config, &a, &mut out)?,
        Command::Query(a) => query::query(&config, &a, &mut out)?,
        Command::Project(a) => query::project(&config, &a, &mut out)?,
        Command::Dlq(a) => serve::dlq(&config, &a, &mut out)?,
        Command::Retention(a) => retention::run(&config, &a, &mut out)?,
        // One run: the embedded stages, then (with --nats) the JetStream and read-side ones.
        Command::Bench(a) => bench::run(&config, &a, &mut out)?,
        Command::Export(a) => car::export(&config, &a, &mut out)?,
        Command::Import(a) => car::import(&config, &a, &mut out)?,
        Command::Demo(a) => demo::run(&a, &mut out)?,
        Command::Checkpoint(a) => tlog::checkpoint(&config, &a, &mut out)?,
        Command::Prove(a) => tlog::prove(&config, &a, &mut out)?,
        Command::Audit(a) => tlog::audit(&config, &a, &mut out)?,
        Command::Witness(a) => witness::run(&config, &a, &mut out)?,
        Command::Identity(a) => identity::run(&config, a, &mut out)?,
        Command::Grant(a) => identity::grant(&config, &a, true, &mut out)?,
        Command::RevokeGrant(a) => identity::grant(&config, &a, false, &mut out)?,
        Command::Completions(a) => {
            let mut command = <Args as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut command, "personctl", &mut std::io::stdout());
            EXIT_OK
        }
        Command::Man => {
            let command = <Args as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(&mut std::io::stdout())?;
            EXIT_OK
        }
    };
    if appends && code == EXIT_OK {
        if let Some(every) = config.checkpoint_every {
            tlog::auto_checkpoint(&config, every, &mut out)?;
        }
    }
    out.flush()?;
    Ok(code)
}

fn streams(config: &Config, out: &mut Out) -> Result<u8> {
    let store = config.open_for_reading()?;
    for (stream, head) in personctl_ledger::BlockStore::heads(&store)? {
        out.record(
            "stream",
            json!({"stream": stream.to_string(), "height": head.height, "head": head.cid.to_string()}),
            || format!("{stream}\theight {}\thead {}", head.height, head.cid),
        )?;
    }
    Ok(EXIT_OK)
}
