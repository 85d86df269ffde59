//! `segel consent list|grant|revoke ORIGIN`: the sites the user allowed to use Segel.
//! Works with or without a running daemon (the daemon reads the grants on every request).

use super::output::{print_json, print_table};
use super::{CliError, Context};
use crate::server::consent::ConsentStore;
use crate::server::files::DaemonFiles;
use crate::server::policy::{Origin, Policy, load_admin_policy};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// List the sites with consent.
    List,
    /// Allow a procurement site (it must also be allowed by policy).
    Grant {
        /// The site's origin, e.g. https://spse.lkpp.go.id
        origin: String,
    },
    /// Withdraw a site's consent.
    Revoke {
        /// The site's origin.
        origin: String,
    },
}

fn parse(origin: &str) -> Result<Origin, CliError> {
    Origin::parse(origin).ok_or_else(|| {
        CliError::bad_request(format!(
            "{origin:?} is not a site origin: give scheme://host[:port], e.g. https://spse.lkpp.go.id"
        ))
    })
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let files = DaemonFiles::for_user()?;
    let store = ConsentStore::new(files.consent());
    let err = |e: crate::server::consent::ConsentError| CliError::bad_request(e.to_string());
    match &args.action {
        Action::List => {
            let grants = store.list().map_err(err)?;
            if ctx.global.json {
                return print_json(&grants);
            }
            if grants.is_empty() {
                println!("No site has consent.");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = grants
                .iter()
                .map(|g| vec![g.origin.clone(), g.granted_at.clone()])
                .collect();
            print_table(&["ORIGIN", "GRANTED"], &rows);
        }
        Action::Grant { origin } => {
            let origin = parse(origin)?;
            let (admin, admin_file) =
                load_admin_policy(None).map_err(|e| CliError::bad_request(e.to_string()))?;
            let policy = Policy::effective(&ctx.config.daemon, &admin, admin_file)
                .map_err(|e| CliError::bad_request(e.to_string()))?;
            if !policy.allows(&origin) {
                return Err(CliError::new(
                    crate::protocol::ErrorCode::SiteNotAllowed,
                    format!(
                        "{origin} is not an allowed procurement site; allowed: {}",
                        policy
                            .allowed_origins
                            .iter()
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            let grant = store.grant(&origin).map_err(err)?;
            if ctx.global.json {
                return print_json(&grant);
            }
            println!("Consent granted to {}", grant.origin);
        }
        Action::Revoke { origin } => {
            let origin = parse(origin)?;
            let revoked = store.revoke(&origin).map_err(err)?;
            if ctx.global.json {
                return print_json(
                    &serde_json::json!({"origin": origin.to_string(), "revoked": revoked}),
                );
            }
            if revoked {
                println!("Consent revoked for {origin}");
            } else {
                println!("{origin} had no consent");
            }
        }
    }
    Ok(())
}
