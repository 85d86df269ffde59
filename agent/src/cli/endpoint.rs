//! `segel endpoint`: where the running daemon listens and how to call it (for the same user:
//! scripts, `doctor`, tests). `--json` prints `{"url", "ca_cert", "credential"}`.

use super::output::print_json;
use super::{CliError, Context};
use crate::protocol::ErrorCode;
use crate::server::credential::Credential;
use crate::server::endpoint;
use crate::server::files::DaemonFiles;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(ctx: &Context, _args: &Args) -> Result<(), CliError> {
    let files = DaemonFiles::for_user()?;
    let Some(ep) = endpoint::read(&files) else {
        return Err(CliError::new(
            ErrorCode::DaemonNotRunning,
            "the Segel daemon is not running for this user; start it with `segel serve`",
        ));
    };
    let credential = Credential::load(&files.credential())
        .map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    if ctx.global.json {
        return print_json(&serde_json::json!({
            "url": ep.url,
            "ca_cert": files.ca_cert(),
            "credential": credential.expose(),
        }));
    }
    println!("URL:        {}", ep.url);
    println!("CA:         {}", files.ca_cert().display());
    println!(
        "Credential: {} (keep it secret)",
        files.credential().display()
    );
    Ok(())
}
