//! `segel pin status|change|unblock`: the PIN's state, changing it, and unblocking it with the
//! security officer's PIN (or a PIV card's PUK).
//!
//! Non-interactive use: the current PIN from `--pin-file` / `SEGEL_PIN`, the new one from
//! `--new-pin-file`, the SO PIN / PUK from `--so-pin-file`. On a terminal Segel asks (the new
//! PIN twice).

use std::io::IsTerminal;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

use super::output::print_json;
use super::{CliError, Context};
use crate::pin::read_pin_file;
use crate::protocol::ErrorCode;
use crate::token::TokenError;

#[derive(Debug, clap::Subcommand)]
pub enum PinCommand {
    /// Tries left and flags (locked, final try, to be changed, PIN pad).
    Status(TokenArg),
    /// Change the user PIN (the current PIN is checked by the token).
    Change(ChangeArgs),
    /// Unblock or reset the user PIN with the SO PIN / PUK.
    Unblock(UnblockArgs),
}

#[derive(Debug, clap::Args)]
pub struct TokenArg {
    /// The token (its label).
    #[arg(long, value_name = "LABEL")]
    pub token: String,
}

#[derive(Debug, clap::Args)]
pub struct ChangeArgs {
    #[command(flatten)]
    pub token: TokenArg,
    /// The new PIN, first line of this file.
    #[arg(long, value_name = "PATH")]
    pub new_pin_file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct UnblockArgs {
    #[command(flatten)]
    pub token: TokenArg,
    /// The SO PIN (or PUK), first line of this file.
    #[arg(long, value_name = "PATH")]
    pub so_pin_file: Option<PathBuf>,
    /// The new user PIN, first line of this file.
    #[arg(long, value_name = "PATH")]
    pub new_pin_file: Option<PathBuf>,
}

fn prompt(question: &str) -> Result<SecretString, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(TokenError::PinRequired.into());
    }
    let answer = rpassword::prompt_password(question)
        .map_err(|e| CliError::from(TokenError::PinSource(e.to_string())))?;
    Ok(SecretString::from(answer))
}

/// The new PIN: from the file, or asked twice; checked against the `[pin]` policy.
fn new_pin(ctx: &Context, file: Option<&PathBuf>) -> Result<SecretString, CliError> {
    let pin = match file {
        Some(f) => read_pin_file(f)?,
        None => {
            let first = prompt("New PIN: ")?;
            let again = prompt("New PIN again: ")?;
            if first.expose_secret() != again.expose_secret() {
                return Err(CliError::new(
                    ErrorCode::PinInvalid,
                    "the two new PINs differ",
                ));
            }
            first
        }
    };
    ctx.config
        .pin
        .check_new_pin(pin.expose_secret())
        .map_err(|message| CliError::new(ErrorCode::PinInvalid, message))?;
    Ok(pin)
}

/// The current PIN through the usual sources (`--pin-file`, `SEGEL_PIN`, prompt).
fn current_pin(
    ctx: &Context,
    desc: &crate::token::TokenDescription,
) -> Result<SecretString, CliError> {
    ctx.pin_source().pin_for(desc)?.ok_or_else(|| {
        CliError::bad_request(
            "changing the PIN on the PIN pad is not supported yet; use the token vendor's tool",
        )
    })
}

pub fn run(ctx: &Context, cmd: &PinCommand) -> Result<(), CliError> {
    let service = ctx.token_service()?;
    match cmd {
        PinCommand::Status(t) => {
            let admin = service.admin(&t.token)?;
            let d = admin.description();
            let f = &d.flags;
            if ctx.global.json {
                return print_json(&serde_json::json!({
                    "token": d.label,
                    "serial": d.serial,
                    "initialized": f.user_pin_initialized,
                    "locked": f.pin_locked,
                    "final_try": f.pin_final_try,
                    "count_low": f.pin_count_low,
                    "to_be_changed": f.pin_to_be_changed,
                    "pin_pad": f.protected_authentication_path,
                }));
            }
            let state = if f.pin_locked {
                "BLOCKED — unblock with `segel pin unblock` (SO PIN / PUK)"
            } else if f.pin_final_try {
                "one try left before the PIN is blocked"
            } else if f.pin_count_low {
                "a wrong PIN was entered; few tries left"
            } else if !f.user_pin_initialized {
                "no user PIN set yet"
            } else {
                "ok"
            };
            println!("Token:        {} ({})", d.label, d.serial);
            println!("PIN:          {state}");
            if f.pin_to_be_changed {
                println!("              the token asks for the PIN to be changed");
            }
            if f.protected_authentication_path {
                println!("PIN pad:      yes (the PIN is entered on the reader)");
            }
            Ok(())
        }
        PinCommand::Change(a) => {
            let mut admin = service.admin(&a.token.token)?;
            let old = current_pin(ctx, admin.description())?;
            let new = new_pin(ctx, a.new_pin_file.as_ref())?;
            admin.change_pin(&old, &new)?;
            report(ctx, &a.token.token, "changed")
        }
        PinCommand::Unblock(a) => {
            let mut admin = service.admin(&a.token.token)?;
            let so = match &a.so_pin_file {
                Some(f) => read_pin_file(f)?,
                None => prompt(&format!("SO PIN / PUK for token \"{}\": ", a.token.token))?,
            };
            let new = new_pin(ctx, a.new_pin_file.as_ref())?;
            admin.unblock_pin(&so, &new)?;
            report(ctx, &a.token.token, "unblocked and set")
        }
    }
}

fn report(ctx: &Context, token: &str, what: &str) -> Result<(), CliError> {
    if ctx.global.json {
        print_json(&serde_json::json!({"token": token, "pin": what}))
    } else {
        println!("The PIN of token {token:?} was {what}.");
        Ok(())
    }
}
