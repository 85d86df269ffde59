//! The API's error: a stable [`ErrorCode`], a message for people, and the HTTP status.
//!
//! [`status_of`] is the one exhaustive mapping from wire code to HTTP status.

use hyper::StatusCode;

use crate::cms::CmsError;
use crate::protocol::ErrorCode;
use crate::token::TokenError;

/// A refused or failed request, as the client sees it: `{"code", "message"}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// For 405: the methods the endpoint takes (sent as `Allow`, RFC 9110 §15.5.6).
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} [{}]", self.message, self.code)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl From<CmsError> for ApiError {
    fn from(e: CmsError) -> Self {
        // One mapping for the CLI and the API (a token failure keeps the token's code).
        ApiError::new(crate::bids::error_code(&e), e.to_string())
    }
}

/// HTTP status for each wire code (no catch-all: a new code must be placed here).
pub fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::HostRejected
        | ErrorCode::OriginRejected
        | ErrorCode::SiteNotAllowed
        | ErrorCode::ConsentRequired => StatusCode::FORBIDDEN,
        ErrorCode::NotFound
        | ErrorCode::TokenNotFound
        | ErrorCode::CertificateNotFound
        | ErrorCode::KeyNotFound => StatusCode::NOT_FOUND,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::CertificateAmbiguous | ErrorCode::TokenAbsent => StatusCode::CONFLICT,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::PinIncorrect
        | ErrorCode::PinLocked
        | ErrorCode::PinFinalTry
        | ErrorCode::PinRequired
        | ErrorCode::PinInvalid
        | ErrorCode::CertificateInvalid
        | ErrorCode::MechanismUnsupported
        | ErrorCode::DecryptionFailed
        | ErrorCode::MalformedInput
        | ErrorCode::UnsupportedAlgorithm
        | ErrorCode::Tampered
        | ErrorCode::NotARecipient
        | ErrorCode::RecipientCannotEncrypt
        | ErrorCode::SignatureInvalid
        | ErrorCode::FileRejected => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::DeviceError | ErrorCode::TokenError => StatusCode::BAD_GATEWAY,
        ErrorCode::NoModule | ErrorCode::ModuleLoadFailed | ErrorCode::DaemonNotRunning => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ErrorCode::Internal | ErrorCode::IoError => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
