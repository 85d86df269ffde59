//! `segel install [--dry-run]` and `segel uninstall [--purge]`: set Segel up for this user
//! (daemon at login, native messaging for every browser, the local CA trusted in every NSS
//! database, the flash-drive module registered with p11-kit) and remove it again exactly.

use std::path::PathBuf;

use serde::Serialize;

use super::output::print_json;
use super::{CliError, Context};
use crate::install::{self, InstallOptions, Platform, ServiceMode, Step, linux};
use crate::protocol::ErrorCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// List every file and registration without changing anything.
    #[arg(long)]
    pub dry_run: bool,
    /// How the daemon starts at login.
    #[arg(long, value_enum, default_value = "auto")]
    pub service: ServiceMode,
    /// Do not start the daemon now (it still starts at login).
    #[arg(long)]
    pub no_start: bool,
    /// The PKCS#11 shim to register (default: next to segel, else /usr/lib/segel).
    #[arg(long, value_name = "PATH")]
    pub shim: Option<PathBuf>,
    /// The unpacked extension builds (`chromium/`, `firefox/` inside).
    #[arg(long, value_name = "DIR")]
    pub extension_dir: Option<PathBuf>,
    /// The systemctl command (for systems where it lives elsewhere).
    #[arg(long, env = "SEGEL_SYSTEMCTL", default_value = "systemctl")]
    pub systemctl: String,
}

#[derive(Debug, clap::Args)]
pub struct UninstallArgs {
    /// Also remove Segel's configuration and state (consent grants, credential, local CA).
    #[arg(long)]
    pub purge: bool,
    /// The systemctl command.
    #[arg(long, env = "SEGEL_SYSTEMCTL", default_value = "systemctl")]
    pub systemctl: String,
}

#[derive(Serialize)]
struct StepLine {
    #[serde(flatten)]
    step: Step,
    description: String,
}

fn cli_err(e: install::InstallError) -> CliError {
    CliError::new(ErrorCode::Internal, e.to_string())
}

fn options(args: &Args) -> Result<InstallOptions, CliError> {
    let segel = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| CliError::new(ErrorCode::Internal, format!("cannot locate segel: {e}")))?;
    let shim = match &args.shim {
        Some(p) if !p.is_file() => {
            return Err(CliError::bad_request(format!(
                "{} does not exist",
                p.display()
            )));
        }
        Some(p) => Some(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())),
        None => linux::find_shim(&segel),
    };
    let extension_dir = args
        .extension_dir
        .clone()
        .or_else(|| linux::find_extension(&segel));
    Ok(InstallOptions {
        segel,
        shim,
        extension_dir,
        service: args.service,
        systemctl: args.systemctl.clone(),
        no_start: args.no_start,
    })
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let platform = install::current().map_err(cli_err)?;
    let opts = options(args)?;
    let steps = platform.plan(&opts).map_err(cli_err)?;
    let lines = |steps: &[Step]| -> Vec<StepLine> {
        steps
            .iter()
            .map(|s| StepLine {
                step: s.clone(),
                description: s.describe(),
            })
            .collect()
    };
    if args.dry_run {
        if ctx.global.json {
            return print_json(&serde_json::json!({"dry_run": true, "steps": lines(&steps)}));
        }
        println!("segel install would (nothing is changed with --dry-run):");
        for s in &steps {
            println!("  - {}", s.describe());
        }
        return Ok(());
    }
    let done = install::install(&platform, &steps).map_err(cli_err)?;
    if ctx.global.json {
        return print_json(&serde_json::json!({
            "dry_run": false,
            "state_file": platform.state_file(),
            "steps": lines(&done),
        }));
    }
    println!("Segel is installed for this user:");
    for s in done
        .iter()
        .filter(|s| !matches!(s, Step::Instruction { .. }))
    {
        println!("  ✓ {}", s.describe());
    }
    for s in done
        .iter()
        .filter(|s| matches!(s, Step::Instruction { .. }))
    {
        println!("  → {}", s.describe());
    }
    println!("Check it with `segel doctor`; remove it with `segel uninstall`.");
    Ok(())
}

pub fn uninstall(ctx: &Context, args: &UninstallArgs) -> Result<(), CliError> {
    let platform = install::current().map_err(cli_err)?;
    // Without an install record: what a default install would have made, so a manual or
    // older install is still removed.
    let fallback = std::env::current_exe()
        .ok()
        .map(|segel| {
            platform.plan(&InstallOptions {
                shim: Some(PathBuf::from("/usr/lib/segel/libsegel_pkcs11.so")),
                extension_dir: None,
                service: ServiceMode::Autostart,
                systemctl: args.systemctl.clone(),
                no_start: false,
                segel,
            })
        })
        .transpose()
        .map_err(cli_err)?
        .unwrap_or_default();
    let report = install::uninstall(&platform, &fallback, args.purge).map_err(cli_err)?;
    if ctx.global.json {
        print_json(&report)?;
    } else {
        if report.removed.is_empty() {
            println!("Nothing of Segel's was installed for this user.");
        }
        for r in &report.removed {
            println!("  removed {r}");
        }
        for p in &report.problems {
            eprintln!("  problem: {p}");
        }
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::new(
            ErrorCode::Internal,
            format!(
                "uninstall left {} problem(s); run it again after fixing them",
                report.problems.len()
            ),
        ))
    }
}
