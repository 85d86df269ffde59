//! The `segel` binary.

use clap::Parser;

fn main() {
    let cli = segel_agent::cli::Cli::parse();
    std::process::exit(segel_agent::cli::run(cli));
}
