//! `segel doctor [--json]`: diagnose this user's Segel (daemon, local CA trust, native
//! messaging, PKCS#11 modules, pcscd, certificates, config and policy), each problem with a
//! fix, in Bahasa Indonesia when the locale is Indonesian. Exit code 1 when something is wrong.

use super::output::print_json;
use super::{CliError, Context};
use crate::install::doctor::{Check, DEFAULT_LIMIT, Doctor, Status};
use crate::install::{self, linux::Linux};
use crate::protocol::ErrorCode;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The longest the checks may take, in seconds: a check that has not answered by then
    /// (a hung pcscd, a module stuck in C_Initialize) is reported as a problem.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LIMIT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

/// Runs the checks; returns the exit code (0: nothing failed; warnings are shown).
pub fn run(ctx: &Context, config_error: Option<String>, args: &Args) -> Result<i32, CliError> {
    let platform =
        Linux::for_user().map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    let indonesian = install::indonesian_locale();
    let doctor = Doctor {
        platform,
        config: match config_error {
            Some(e) => Err(e),
            None => Ok(ctx.config.clone()),
        },
        explicit_modules: ctx.global.modules.clone(),
        indonesian,
        limit: std::time::Duration::from_secs(args.timeout),
    };
    let checks = doctor.run();
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    let warned = checks.iter().filter(|c| c.status == Status::Warn).count();
    if ctx.global.json {
        print_json(&serde_json::json!({
            "ok": failed == 0,
            "problems": failed,
            "warnings": warned,
            "language": if indonesian { "id" } else { "en" },
            "checks": checks,
        }))?;
    } else {
        print_text(&checks, failed, warned, indonesian, ctx.global.verbose > 0);
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn print_text(checks: &[Check], failed: usize, warned: usize, id: bool, all: bool) {
    for c in checks {
        let mark = match c.status {
            Status::Ok => "ok  ",
            Status::Skip => "skip",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        if all || matches!(c.status, Status::Warn | Status::Fail) {
            println!("{mark} [{}] {}", c.id, c.message);
            if let Some(fix) = &c.fix {
                println!("     {} {fix}", if id { "perbaikan:" } else { "fix:" });
            }
        }
    }
    let n = checks.len();
    match (failed, warned, id) {
        (0, 0, false) => println!("Segel: all well ({n} checks passed)."),
        (0, 0, true) => println!("Segel: semua baik ({n} pemeriksaan lulus)."),
        (f, w, false) => println!("Segel: {f} problem(s), {w} warning(s) in {n} checks."),
        (f, w, true) => println!("Segel: {f} masalah, {w} peringatan dari {n} pemeriksaan."),
    }
}
