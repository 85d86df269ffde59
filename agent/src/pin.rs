//! Where PINs come from: a file, the `SEGEL_PIN` environment variable (for automation),
//! the reader's PIN pad, or a no-echo prompt on the terminal.
//!
//! A PIN is a `SecretString`: zeroized when dropped, never printed by `Debug`, never logged.
//! Segel asks once per operation and never retries a PIN by itself.

use std::io::IsTerminal;
use std::path::PathBuf;

use secrecy::SecretString;
use tracing::instrument;

use crate::token::{TokenDescription, TokenError};

/// The environment variable automation can use to pass a PIN.
pub const PIN_ENV: &str = "SEGEL_PIN";

/// Something that can supply a token's PIN when the token layer needs to log in.
pub trait PinSource: Send + Sync {
    /// The PIN for `token`; `None` means "use the token's protected authentication path"
    /// (PIN pad): the token collects the PIN itself.
    fn pin_for(&self, token: &TokenDescription) -> Result<Option<SecretString>, TokenError>;

    /// May the last try before the PIN blocks be used? Only on explicit user confirmation.
    fn allow_final_try(&self) -> bool {
        false
    }
}

/// A PIN already known (tests, API requests that carry one).
#[derive(Debug)]
pub struct FixedPin(pub SecretString);

impl PinSource for FixedPin {
    fn pin_for(&self, _: &TokenDescription) -> Result<Option<SecretString>, TokenError> {
        Ok(Some(self.0.clone()))
    }
}

/// The CLI's sources, in order: `--pin-file`, `SEGEL_PIN`, the PIN pad, the terminal.
#[derive(Debug, Default)]
pub struct CliPinSource {
    pub pin_file: Option<PathBuf>,
    pub final_try: bool,
}

/// Read a PIN file: the first line, without its line ending.
#[instrument(skip_all)]
pub fn read_pin_file(path: &std::path::Path) -> Result<SecretString, TokenError> {
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        TokenError::PinSource(format!("cannot read PIN file {}: {e}", path.display()))
    })?);
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(TokenError::PinSource(format!(
            "PIN file {} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(line.to_owned()))
}

impl PinSource for CliPinSource {
    #[instrument(skip_all)]
    fn pin_for(&self, token: &TokenDescription) -> Result<Option<SecretString>, TokenError> {
        if let Some(path) = &self.pin_file {
            return read_pin_file(path).map(Some);
        }
        if let Ok(pin) = std::env::var(PIN_ENV)
            && !pin.is_empty()
        {
            return Ok(Some(SecretString::from(pin)));
        }
        if token.flags.protected_authentication_path {
            eprintln!(
                "Enter the PIN for token \"{}\" on the reader's PIN pad.",
                token.label
            );
            return Ok(None);
        }
        if std::io::stdin().is_terminal() {
            let pin = rpassword::prompt_password(format!("PIN for token \"{}\": ", token.label))
                .map_err(|e| TokenError::PinSource(e.to_string()))?;
            if pin.is_empty() {
                return Err(TokenError::PinRequired);
            }
            return Ok(Some(SecretString::from(pin)));
        }
        Err(TokenError::PinRequired)
    }

    fn allow_final_try(&self) -> bool {
        self.final_try
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn pin_file_first_line_without_newline_is_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "123456\r\nignored\n").unwrap();
        // "\r" stays part of a line for `lines()` only if not followed by "\n".
        assert_eq!(read_pin_file(&p).unwrap().expose_secret(), "123456");
    }

    #[test]
    fn empty_or_missing_pin_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pin");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_pin_file(&p).unwrap_err().to_string().contains("empty"));
        assert!(
            read_pin_file(&dir.path().join("nope"))
                .unwrap_err()
                .to_string()
                .contains("cannot read PIN file")
        );
    }

    #[test]
    fn secret_pin_is_not_shown_by_debug() {
        let pin = FixedPin(SecretString::from("987654".to_owned()));
        assert!(!format!("{pin:?}").contains("987654"));
    }
}
