//! The shim's error type and its one mapping to `CK_RV` (PKCS#11 v2.40 §11.1 / §5.1).

use cryptoki_sys::*;

/// Why a PKCS#11 call failed. Each variant maps to exactly one `CK_RV` in [`Error::rv`].
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    #[error("bad arguments")]
    ArgumentsBad,
    #[error("library not initialised")]
    NotInitialized,
    #[error("library already initialised")]
    AlreadyInitialized,
    #[error("application-supplied locking can not be used")]
    CantLock,
    #[error("no such slot")]
    SlotIdInvalid,
    #[error("the key file is not present")]
    TokenNotPresent,
    #[error("the key file was removed or replaced")]
    DeviceRemoved,
    #[error("the key file could not be read")]
    DeviceError,
    #[error("no such session")]
    SessionHandleInvalid,
    #[error("sessions must be serial")]
    SessionParallelNotSupported,
    #[error("user type not supported")]
    UserTypeInvalid,
    #[error("already logged in")]
    UserAlreadyLoggedIn,
    #[error("not logged in")]
    UserNotLoggedIn,
    #[error("wrong passphrase")]
    PinIncorrect,
    #[error("passphrase is not valid UTF-8")]
    PinInvalid,
    #[error("another operation is active")]
    OperationActive,
    #[error("no operation initialised")]
    OperationNotInitialized,
    #[error("no such object")]
    ObjectHandleInvalid,
    #[error("no such key")]
    KeyHandleInvalid,
    #[error("key type does not fit the mechanism")]
    KeyTypeInconsistent,
    #[error("key may not be used for this")]
    KeyFunctionNotPermitted,
    #[error("key size not supported by the mechanism")]
    KeySizeRange,
    #[error("mechanism not supported")]
    MechanismInvalid,
    #[error("mechanism parameters not supported")]
    MechanismParamInvalid,
    #[error("input length out of range")]
    DataLenRange,
    #[error("input invalid")]
    DataInvalid,
    #[error("ciphertext invalid")]
    EncryptedDataInvalid,
    #[error("ciphertext length out of range")]
    EncryptedDataLenRange,
    #[error("output buffer too small")]
    BufferTooSmall,
    #[error("attribute type invalid")]
    AttributeTypeInvalid,
    #[error("attribute value invalid")]
    AttributeValueInvalid,
    #[error("attribute is sensitive")]
    AttributeSensitive,
    #[error("template inconsistent")]
    TemplateInconsistent,
    #[error("function not supported")]
    FunctionNotSupported,
    #[error("the operation failed")]
    FunctionFailed,
    #[error("seeding the generator is not supported")]
    RandomSeedNotSupported,
    #[error("the session is read-only")]
    SessionReadOnly,
    #[error("close the token's sessions first")]
    SessionExists,
    #[error("the user passphrase is not set yet")]
    UserPinNotInitialized,
    #[error("another user type is logged in")]
    UserAnotherAlreadyLoggedIn,
    #[error("passphrase length out of range")]
    PinLenRange,
    #[error("template incomplete")]
    TemplateIncomplete,
    #[error("a key file with that name already exists")]
    KeyFileExists,
    #[error("the key file could not be written")]
    WriteFailed,
    #[error("internal error")]
    GeneralError,
}

/// Result of the shim's safe core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The PKCS#11 return value for this error. Exhaustive on purpose: a new variant must be mapped.
    pub fn rv(&self) -> CK_RV {
        match self {
            Error::ArgumentsBad => CKR_ARGUMENTS_BAD,
            Error::NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            Error::AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            Error::CantLock => CKR_CANT_LOCK,
            Error::SlotIdInvalid => CKR_SLOT_ID_INVALID,
            Error::TokenNotPresent => CKR_TOKEN_NOT_PRESENT,
            Error::DeviceRemoved => CKR_DEVICE_REMOVED,
            Error::DeviceError => CKR_DEVICE_ERROR,
            Error::SessionHandleInvalid => CKR_SESSION_HANDLE_INVALID,
            Error::SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            Error::UserTypeInvalid => CKR_USER_TYPE_INVALID,
            Error::UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            Error::UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            Error::PinIncorrect => CKR_PIN_INCORRECT,
            Error::PinInvalid => CKR_PIN_INVALID,
            Error::OperationActive => CKR_OPERATION_ACTIVE,
            Error::OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            Error::ObjectHandleInvalid => CKR_OBJECT_HANDLE_INVALID,
            Error::KeyHandleInvalid => CKR_KEY_HANDLE_INVALID,
            Error::KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
            Error::KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
            Error::KeySizeRange => CKR_KEY_SIZE_RANGE,
            Error::MechanismInvalid => CKR_MECHANISM_INVALID,
            Error::MechanismParamInvalid => CKR_MECHANISM_PARAM_INVALID,
            Error::DataLenRange => CKR_DATA_LEN_RANGE,
            Error::DataInvalid => CKR_DATA_INVALID,
            Error::EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
            Error::EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
            Error::BufferTooSmall => CKR_BUFFER_TOO_SMALL,
            Error::AttributeTypeInvalid => CKR_ATTRIBUTE_TYPE_INVALID,
            Error::AttributeValueInvalid => CKR_ATTRIBUTE_VALUE_INVALID,
            Error::AttributeSensitive => CKR_ATTRIBUTE_SENSITIVE,
            Error::TemplateInconsistent => CKR_TEMPLATE_INCONSISTENT,
            Error::FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
            Error::FunctionFailed => CKR_FUNCTION_FAILED,
            Error::RandomSeedNotSupported => CKR_RANDOM_SEED_NOT_SUPPORTED,
            Error::SessionReadOnly => CKR_SESSION_READ_ONLY,
            Error::SessionExists => CKR_SESSION_EXISTS,
            Error::UserPinNotInitialized => CKR_USER_PIN_NOT_INITIALIZED,
            Error::UserAnotherAlreadyLoggedIn => CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
            Error::PinLenRange => CKR_PIN_LEN_RANGE,
            Error::TemplateIncomplete => CKR_TEMPLATE_INCOMPLETE,
            // C_InitToken has no better code for "that label names an existing file".
            Error::KeyFileExists => CKR_FUNCTION_FAILED,
            // The medium refused the write (full, read-only, pulled out): a device fault.
            Error::WriteFailed => CKR_DEVICE_ERROR,
            Error::GeneralError => CKR_GENERAL_ERROR,
        }
    }
}

impl From<crate::pkcs12::Pkcs12Error> for Error {
    fn from(e: crate::pkcs12::Pkcs12Error) -> Self {
        use crate::pkcs12::Pkcs12Error;
        match e {
            Pkcs12Error::WrongPassphrase => Error::PinIncorrect,
            // A file that decodes before login but not after is damaged: report a device fault.
            Pkcs12Error::Malformed(_) => Error::DeviceError,
            Pkcs12Error::Unsupported(_) => Error::FunctionFailed,
            Pkcs12Error::TooLarge => Error::DeviceError,
        }
    }
}
