//! `segel tokens`: the tokens of every module.

use super::output::{print_json, print_table};
use super::{CliError, Context};
use crate::token::TokenFlags;

#[derive(Debug, clap::Args)]
pub struct Args {}

fn flag_words(f: &TokenFlags) -> String {
    let words: Vec<&str> = [
        (f.login_required, "login"),
        (f.protected_authentication_path, "pin-pad"),
        (f.pin_count_low, "pin-count-low"),
        (f.pin_final_try, "pin-final-try"),
        (f.pin_locked, "PIN-LOCKED"),
        (f.pin_to_be_changed, "pin-to-be-changed"),
        (f.write_protected, "read-only"),
        (f.removable, "removable"),
    ]
    .into_iter()
    .filter_map(|(on, w)| on.then_some(w))
    .collect();
    words.join(",")
}

pub fn run(ctx: &Context, _args: &Args) -> Result<(), CliError> {
    let service = ctx.token_service()?;
    let tokens = service.tokens().wait()?;
    if ctx.global.json {
        return print_json(&tokens);
    }
    if tokens.is_empty() {
        println!("No tokens found. Insert a token or card, or pass --module PATH.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.label.clone(),
                t.serial.clone(),
                t.manufacturer.clone(),
                t.model.clone(),
                flag_words(&t.flags),
                t.module.display().to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "LABEL",
            "SERIAL",
            "MANUFACTURER",
            "MODEL",
            "FLAGS",
            "MODULE",
        ],
        &rows,
    );
    Ok(())
}
