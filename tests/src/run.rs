//! Running external tools (softhsm2-util, pkcs11-tool, openssl, …) with a clear error on failure.

use std::ffi::OsString;
use std::process::{Command, Output};

use anyhow::{Context, Result, bail};

/// Environment variables for a child process: name and value.
pub type Envs = Vec<(String, OsString)>;

/// Runs `cmd` to completion with `envs` added; fails with the command line, exit status, stdout
/// and stderr when it cannot start or exits non-zero. Returns stdout (lossy UTF-8).
pub fn run(cmd: &mut Command, envs: &[(String, OsString)]) -> Result<String> {
    let output = run_output(cmd, envs)?;
    if !output.status.success() {
        bail!("{}", describe_failure(cmd, &output));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Like [`run`] but returns the [`Output`] whatever the exit status (for expected failures).
pub fn run_output(cmd: &mut Command, envs: &[(String, OsString)]) -> Result<Output> {
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    cmd.output()
        .with_context(|| format!("cannot start {}", command_line(cmd)))
}

/// `program arg arg …` for error messages.
pub fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

fn describe_failure(cmd: &Command, output: &Output) -> String {
    format!(
        "`{}` failed ({}):\n--- stdout\n{}--- stderr\n{}",
        command_line(cmd),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
