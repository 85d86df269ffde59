//! The `segel` command line: one file per command, dispatched from here.
//!
//! Every listing has `--json`. Errors print a clear message (or, with `--json`, a JSON
//! object `{"error": {"code", "message"}}`) and exit non-zero.

mod bidkeys;
mod certs;
mod consent;
mod decrypt;
pub mod demo;
mod doctor;
mod endpoint;
mod enroll;
pub(crate) mod import_cert;
mod install;
mod native_host;
mod open;
mod output;
mod pin_cmd;
mod readers;
mod seal;
mod serve;
mod sign;
mod tokens;
mod verify;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::pin::{CliPinSource, PinSource};
use crate::protocol::ErrorCode;
use crate::token::{ModuleSpec, ServiceOptions, TokenError, TokenService, module};

pub use output::CliError;

/// Segel — hardware-token signing agent for e-procurement.
#[derive(Debug, Parser)]
#[command(name = "segel", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// PKCS#11 module to load (repeatable). When given, no other module is searched.
    #[arg(long = "module", value_name = "PATH", global = true)]
    pub modules: Vec<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/segel/config.toml).
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Read the token PIN from the first line of this file (for automation; see also SEGEL_PIN).
    #[arg(long, value_name = "PATH", global = true)]
    pub pin_file: Option<PathBuf>,
    /// Allow using the last PIN try before the token blocks the PIN.
    #[arg(long, global = true)]
    pub final_try: bool,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tokens of every PKCS#11 module.
    Tokens(tokens::Args),
    /// List certificates on the tokens, with what their keys can do.
    Certs(certs::Args),
    /// Sign a file with a token key (raw signature or CMS).
    Sign(sign::Args),
    /// Verify a CMS signature: signer, signing time, chain, validity, key usage.
    Verify(verify::Args),
    /// Sign bid files and encrypt them to the procurement committee (`.p7m`).
    Seal(seal::Args),
    /// Open sealed bids with one PIN entry and write the opening report.
    Open(open::Args),
    /// List smart card readers, their cards (ATR) and the module for each card.
    Readers(readers::Args),
    /// Decrypt one RSA-encrypted block (key transport) with a token key.
    Decrypt(decrypt::Args),
    /// Make a key pair on a token and a certificate request (PKCS#10) for the CA.
    Enroll(enroll::Args),
    /// Import the certificate issued for a key (and its chain) onto the token.
    ImportCert(import_cert::Args),
    /// Delete a key pair that has no certificate.
    DeleteKey(import_cert::DeleteArgs),
    /// PIN status, change and unblock.
    #[command(subcommand)]
    Pin(pin_cmd::PinCommand),
    /// Run Segel's main job on demo key files, with no hardware.
    Demo(demo::Args),
    /// Run the localhost daemon for the browser extension (HTTPS on 127.0.0.1).
    Serve(serve::Args),
    /// Show where the running daemon listens, its CA and the credential.
    Endpoint(endpoint::Args),
    /// List, grant or revoke the sites allowed to use Segel.
    Consent(consent::Args),
    /// Native-messaging host for Segel's browser extension (started by the browser).
    NativeHost(native_host::Args),
    /// Set Segel up for this user: daemon at login, browsers, local CA trust, p11-kit.
    Install(install::Args),
    /// Remove what `segel install` set up (--purge: also config and state).
    Uninstall(install::UninstallArgs),
    /// Find out what is wrong (daemon, certificates, browsers, modules, pcscd), with fixes.
    Doctor(doctor::Args),
}

/// What every command gets: options, config and a lazily started token service.
#[derive(Debug)]
pub struct Context {
    pub global: GlobalArgs,
    pub config: Config,
    /// Started at the first use; shut down (workers joined, sessions closed) before the
    /// process exits, so no worker thread still talks to a module while it is unloaded.
    service: std::sync::OnceLock<TokenService>,
}

impl Context {
    pub fn new(global: GlobalArgs, config: Config) -> Self {
        Context {
            global,
            config,
            service: std::sync::OnceLock::new(),
        }
    }

    /// The token service (modules loaded at the first call).
    pub fn token_service(&self) -> Result<TokenService, CliError> {
        if let Some(s) = self.service.get() {
            return Ok(s.clone());
        }
        // Cards present now may need a module found nowhere else (the ATR table names it).
        let by_atr = if self.global.modules.is_empty() && self.config.modules_by_atr {
            crate::config::Paths::for_user()
                .ok()
                .and_then(|p| crate::pcsc::AtrTable::load(&p.config_dir).ok())
                .map(|table| crate::pcsc::present::card_modules(&table))
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let specs: Vec<ModuleSpec> = module::discover_with(
            &self.global.modules,
            &self.config.modules,
            self.config.search_modules,
            &by_atr,
        );
        let service = TokenService::start(&specs, ServiceOptions::default())?;
        Ok(self.service.get_or_init(|| service).clone())
    }

    /// End the token workers and wait for them (end of a command).
    pub fn finish(self) {
        if let Some(s) = self.service.into_inner() {
            s.shutdown();
        }
    }

    /// The PIN source for this run.
    pub fn pin_source(&self) -> Arc<dyn PinSource> {
        Arc::new(CliPinSource {
            pin_file: self.global.pin_file.clone(),
            final_try: self.global.final_try,
        })
    }
}

/// The log filter from -v, the config file, or `SEGEL_LOG`.
pub fn log_filter(verbose: u8, config_level: Option<&str>) -> String {
    if let Ok(env) = std::env::var("SEGEL_LOG") {
        return env;
    }
    // cryptoki logs every mechanism number it has no name for at ERROR level: noise
    // for users, kept for -vvv.
    match verbose {
        0 => format!("{},cryptoki=off", config_level.unwrap_or("warn")),
        1 => "info,cryptoki=off".to_owned(),
        2 => "debug,cryptoki=off".to_owned(),
        _ => "trace".to_owned(),
    }
}

/// Run a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let json = cli.global.json;
    let (config, config_error) = match Config::load(cli.global.config.as_deref()) {
        Ok(c) => (c, None),
        // `doctor` reports a broken config file among its findings.
        Err(e) if matches!(cli.command, Command::Doctor(_)) => {
            (Config::default(), Some(e.to_string()))
        }
        Err(e) => return output::report_error(&CliError::from(e), json),
    };
    init_logging(&log_filter(cli.global.verbose, config.log.as_deref()));
    let ctx = Context::new(cli.global, config);
    let result = match &cli.command {
        Command::Tokens(args) => tokens::run(&ctx, args).map(|()| 0),
        Command::Certs(args) => certs::run(&ctx, args).map(|()| 0),
        Command::Sign(args) => sign::run(&ctx, args).map(|()| 0),
        Command::Verify(args) => verify::run(&ctx, args),
        Command::Seal(args) => seal::run(&ctx, args),
        Command::Open(args) => open::run(&ctx, args),
        Command::Readers(args) => readers::run(&ctx, args).map(|()| 0),
        Command::Decrypt(args) => decrypt::run(&ctx, args).map(|()| 0),
        Command::Enroll(args) => enroll::run(&ctx, args).map(|()| 0),
        Command::ImportCert(args) => import_cert::run(&ctx, args).map(|()| 0),
        Command::DeleteKey(args) => import_cert::delete(&ctx, args).map(|()| 0),
        Command::Pin(cmd) => pin_cmd::run(&ctx, cmd).map(|()| 0),
        Command::Demo(args) => demo::run(&ctx, args).map(|()| 0),
        Command::Serve(args) => serve::run(&ctx, args).map(|()| 0),
        Command::Endpoint(args) => endpoint::run(&ctx, args).map(|()| 0),
        Command::Consent(args) => consent::run(&ctx, args).map(|()| 0),
        Command::NativeHost(args) => native_host::run(&ctx, args).map(|()| 0),
        Command::Install(args) => install::run(&ctx, args).map(|()| 0),
        Command::Uninstall(args) => install::uninstall(&ctx, args).map(|()| 0),
        Command::Doctor(args) => doctor::run(&ctx, config_error, args),
    };
    ctx.finish();
    match result {
        Ok(code) => code,
        Err(e) => output::report_error(&e, json),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Plain text for journald and log files; colours only on a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::new(ErrorCode::BadRequest, e.to_string())
    }
}

impl From<TokenError> for CliError {
    fn from(e: TokenError) -> Self {
        CliError::new(e.code(), e.to_string())
    }
}
