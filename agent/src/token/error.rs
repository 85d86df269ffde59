//! The token layer's error type: each variant names a cause a user can act on.

use std::path::PathBuf;

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

use crate::protocol::ErrorCode;

/// Everything that can go wrong talking to a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error(
        "no PKCS#11 module found: pass --module PATH, list modules in the config file, or install a token driver (e.g. opensc-pkcs11)"
    )]
    NoModule,
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad { path: PathBuf, reason: String },
    #[error("no token found{}", match .0 { Some(l) => format!(" with label {l:?}"), None => String::new() })]
    TokenNotFound(Option<String>),
    #[error("the token was removed or is not present; insert it and try again")]
    TokenAbsent,
    #[error("the token reported a device error in {function}; re-insert it and try again")]
    Device { function: String },
    #[error("{}", pin_incorrect_message(*.retries_left, *.count_low))]
    PinIncorrect {
        /// Tries left, when the token says (PKCS#11 tells "final try" only).
        retries_left: Option<u32>,
        /// The token reports a low retry count.
        count_low: bool,
    },
    #[error("the PIN is blocked; unblock it with the SO PIN / PUK (segel pin unblock)")]
    PinLocked,
    #[error(
        "only one PIN try is left on this token; Segel will not use it without confirmation (--final-try)"
    )]
    PinFinalTry,
    #[error(
        "a PIN is needed: give --pin-file, set SEGEL_PIN for automation, or run on a terminal to be asked"
    )]
    PinRequired,
    #[error("the token does not accept this PIN's form (length or characters)")]
    PinInvalid,
    #[error("cannot read the PIN: {0}")]
    PinSource(String),
    #[error("the token does not support {0}")]
    MechanismUnsupported(String),
    #[error("no certificate matches {0:?} (see `segel certs`)")]
    CertificateNotFound(String),
    #[error("{selector:?} matches {count} certificates; use the SHA-256 fingerprint")]
    CertificateAmbiguous { selector: String, count: usize },
    #[error("certificate {subject} is {problem}")]
    CertificateInvalid { subject: String, problem: String },
    #[error("certificate {0} has no private key on the token")]
    KeyNotFound(String),
    #[error("decryption failed")]
    DecryptionFailed,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{function} failed: {rv}")]
    Pkcs11 { function: String, rv: String },
    #[error("the token worker stopped unexpectedly")]
    WorkerGone,
}

fn pin_incorrect_message(retries_left: Option<u32>, count_low: bool) -> String {
    match (retries_left, count_low) {
        (Some(1), _) => "wrong PIN; one try is left before the PIN is blocked".to_owned(),
        (Some(n), _) => format!("wrong PIN; {n} tries left"),
        (None, true) => "wrong PIN; few tries are left before the PIN is blocked".to_owned(),
        (None, false) => "wrong PIN".to_owned(),
    }
}

impl TokenError {
    /// The stable wire code (one exhaustive mapping, no catch-all).
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::NoModule => ErrorCode::NoModule,
            TokenError::ModuleLoad { .. } => ErrorCode::ModuleLoadFailed,
            TokenError::TokenNotFound(_) => ErrorCode::TokenNotFound,
            TokenError::TokenAbsent => ErrorCode::TokenAbsent,
            TokenError::Device { .. } => ErrorCode::DeviceError,
            TokenError::PinIncorrect { .. } => ErrorCode::PinIncorrect,
            TokenError::PinLocked => ErrorCode::PinLocked,
            TokenError::PinFinalTry => ErrorCode::PinFinalTry,
            TokenError::PinRequired | TokenError::PinSource(_) => ErrorCode::PinRequired,
            TokenError::PinInvalid => ErrorCode::PinInvalid,
            TokenError::MechanismUnsupported(_) => ErrorCode::MechanismUnsupported,
            TokenError::CertificateNotFound(_) => ErrorCode::CertificateNotFound,
            TokenError::CertificateAmbiguous { .. } => ErrorCode::CertificateAmbiguous,
            TokenError::CertificateInvalid { .. } => ErrorCode::CertificateInvalid,
            TokenError::KeyNotFound(_) => ErrorCode::KeyNotFound,
            TokenError::DecryptionFailed => ErrorCode::DecryptionFailed,
            TokenError::BadRequest(_) => ErrorCode::BadRequest,
            TokenError::Pkcs11 { .. } => ErrorCode::TokenError,
            TokenError::WorkerGone => ErrorCode::Internal,
        }
    }

    /// True when the session or module must be reopened before the token can be used again.
    pub(crate) fn is_connection_lost(&self) -> bool {
        matches!(self, TokenError::TokenAbsent | TokenError::Device { .. })
    }
}

/// Map a cryptoki error into a cause. Login-specific codes are refined by the caller,
/// which knows the token's flags.
impl From<CkError> for TokenError {
    fn from(err: CkError) -> Self {
        match err {
            CkError::Pkcs11(rv, function) => from_rv(rv, function),
            CkError::LibraryLoading(e) => TokenError::ModuleLoad {
                path: PathBuf::new(),
                reason: e.to_string(),
            },
            other => TokenError::Pkcs11 {
                function: "cryptoki".to_owned(),
                rv: other.to_string(),
            },
        }
    }
}

fn from_rv(rv: RvError, function: Function) -> TokenError {
    let function_name = function.to_string();
    match rv {
        RvError::TokenNotPresent
        | RvError::DeviceRemoved
        | RvError::SlotIdInvalid
        | RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::CryptokiNotInitialized => TokenError::TokenAbsent,
        RvError::DeviceError | RvError::DeviceMemory | RvError::GeneralError => {
            TokenError::Device {
                function: function_name,
            }
        }
        RvError::PinIncorrect => TokenError::PinIncorrect {
            retries_left: None,
            count_low: false,
        },
        RvError::PinLocked => TokenError::PinLocked,
        RvError::PinLenRange | RvError::PinInvalid => TokenError::PinInvalid,
        RvError::MechanismInvalid | RvError::MechanismParamInvalid => {
            TokenError::MechanismUnsupported(format!("this mechanism ({function_name})"))
        }
        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => {
            TokenError::DecryptionFailed
        }
        other => TokenError::Pkcs11 {
            function: function_name,
            rv: format!("{other:?}"),
        },
    }
}

/// True when a cryptoki error means the token or the connection to it is gone (the same
/// classification as `TokenError::is_connection_lost`).
pub(crate) fn is_connection_lost(err: &CkError) -> bool {
    matches!(err, CkError::Pkcs11(rv, function) if from_rv(*rv, *function).is_connection_lost())
}

/// True for return values that mean "this mechanism or key function is refused", so a
/// caller may fall back to another mechanism.
pub(crate) fn is_refusal(err: &CkError) -> bool {
    matches!(
        err,
        CkError::Pkcs11(
            RvError::MechanismInvalid
                | RvError::MechanismParamInvalid
                | RvError::KeyFunctionNotPermitted
                | RvError::KeyTypeInconsistent
                | RvError::FunctionNotSupported
                | RvError::ArgumentsBad,
            _
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_removed_maps_to_token_absent() {
        let e = TokenError::from(CkError::Pkcs11(RvError::DeviceRemoved, Function::Sign));
        assert_eq!(e.code(), ErrorCode::TokenAbsent);
        assert!(e.is_connection_lost());
    }

    #[test]
    fn pin_incorrect_message_names_the_last_try() {
        let e = TokenError::PinIncorrect {
            retries_left: Some(1),
            count_low: true,
        };
        assert!(e.to_string().contains("one try is left"));
        assert_eq!(e.code(), ErrorCode::PinIncorrect);
    }
}
