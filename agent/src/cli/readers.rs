//! `segel readers`: each PC/SC reader with its card (ATR) and the PKCS#11 module the ATR table
//! names for it, as the watcher the daemon uses sees them.

use std::time::Duration;

use serde::Serialize;

use super::output::{print_json, print_table};
use super::{CliError, Context};
use crate::config::Paths;
use crate::pcsc::atr::{format_hex, unknown_atr_hint};
use crate::pcsc::{AtrTable, ServiceState, Watcher, WatcherOptions};
use crate::protocol::ErrorCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How long to wait for pcscd to answer.
    #[arg(long, value_name = "SECONDS", default_value = "3")]
    pub timeout: u64,
}

#[derive(Debug, Serialize)]
struct ReaderRow {
    name: String,
    card_present: bool,
    /// ATR in hex, empty without a card.
    atr: String,
    /// The card's name in the ATR table, when known.
    card: Option<String>,
    /// The first module for this platform, or `unknown`.
    module: String,
    /// Every module the table lists for this platform, best first.
    modules: Vec<String>,
    /// For an unknown ATR: what it is and how to add it.
    hint: Option<String>,
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let paths = Paths::for_user()?;
    let table = AtrTable::load(&paths.config_dir)
        .map_err(|e| CliError::new(ErrorCode::BadRequest, e.to_string()))?;
    let watcher = Watcher::start(WatcherOptions::default())
        .map_err(|e| CliError::new(ErrorCode::Internal, format!("PC/SC watcher: {e}")))?;
    // One full scan after pcscd answered, or pcscd reported down.
    let (snap, settled) = watcher.wait_until(Duration::from_secs(args.timeout), |s| {
        matches!(s.service, ServiceState::Down { .. })
            || (s.service == ServiceState::Up && s.scans >= 2)
    });
    match &snap.service {
        ServiceState::Up => {}
        ServiceState::Down { reason } => {
            return Err(CliError::new(
                ErrorCode::PcscUnavailable,
                format!("{reason}: start it (e.g. `systemctl start pcscd.socket`) and try again"),
            ));
        }
        ServiceState::Starting => {
            return Err(CliError::new(
                ErrorCode::PcscUnavailable,
                "the PC/SC service (pcscd) did not answer in time",
            ));
        }
    }
    if !settled {
        tracing::warn!("PC/SC scan did not settle; showing what is known");
    }
    let rows: Vec<ReaderRow> = snap
        .readers
        .iter()
        .map(|r| {
            let entry = r.card_present.then(|| table.lookup(&r.atr)).flatten();
            let modules: Vec<String> = entry
                .map(|e| e.modules.current().to_vec())
                .unwrap_or_default();
            ReaderRow {
                name: r.name.clone(),
                card_present: r.card_present,
                atr: hex::encode(&r.atr),
                card: entry.map(|e| e.name.clone()),
                module: modules
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "unknown".to_owned()),
                hint: (r.card_present && entry.is_none())
                    .then(|| unknown_atr_hint(&r.atr, &paths.config_dir)),
                modules,
            }
        })
        .collect();
    if ctx.global.json {
        return print_json(&rows);
    }
    if rows.is_empty() {
        println!("No smart card readers found. Plug a reader or token in.");
        return Ok(());
    }
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let atr = hex::decode(&r.atr)
                .map(|b| format_hex(&b))
                .unwrap_or_default();
            vec![
                r.name.clone(),
                if r.card_present { "yes" } else { "no" }.to_owned(),
                atr,
                r.card.clone().unwrap_or_else(|| "-".to_owned()),
                r.module.clone(),
            ]
        })
        .collect();
    print_table(
        &["READER", "CARD", "ATR", "KNOWN AS", "MODULE"],
        &table_rows,
    );
    for hint in rows.iter().filter_map(|r| r.hint.as_ref()) {
        eprintln!("\n{hint}");
    }
    Ok(())
}
