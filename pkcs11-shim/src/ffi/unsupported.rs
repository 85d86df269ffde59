//! Functions this module does not offer: each returns `CKR_FUNCTION_NOT_SUPPORTED` (or what the
//! spec prescribes for legacy parallel functions), still through [`guard`].

use super::guard;
use crate::error::Error;
use cryptoki_sys::*;

macro_rules! unsupported {
    ($($name:ident($($ty:ty),*) => $err:expr;)*) => {$(
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name($(_: $ty),*) -> CK_RV {
            guard(|| Err($err))
        }
    )*};
}

unsupported! {
    C_GetOperationState(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_SetOperationState(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE) => Error::FunctionNotSupported;
    C_CopyObject(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR) => Error::FunctionNotSupported;
    C_GetObjectSize(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_SetAttributeValue(CK_SESSION_HANDLE, CK_OBJECT_HANDLE, CK_ATTRIBUTE_PTR, CK_ULONG) => Error::FunctionNotSupported;
    C_EncryptInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) => Error::FunctionNotSupported;
    C_Encrypt(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_EncryptUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_EncryptFinal(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DecryptUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DecryptFinal(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DigestInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR) => Error::FunctionNotSupported;
    C_Digest(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DigestUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG) => Error::FunctionNotSupported;
    C_DigestKey(CK_SESSION_HANDLE, CK_OBJECT_HANDLE) => Error::FunctionNotSupported;
    C_DigestFinal(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_SignRecoverInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) => Error::FunctionNotSupported;
    C_SignRecover(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_VerifyInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) => Error::FunctionNotSupported;
    C_Verify(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG) => Error::FunctionNotSupported;
    C_VerifyUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG) => Error::FunctionNotSupported;
    C_VerifyFinal(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG) => Error::FunctionNotSupported;
    C_VerifyRecoverInit(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) => Error::FunctionNotSupported;
    C_VerifyRecover(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DigestEncryptUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DecryptDigestUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_SignEncryptUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_DecryptVerifyUpdate(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_GenerateKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR) => Error::FunctionNotSupported;
    C_WrapKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_OBJECT_HANDLE, CK_BYTE_PTR, CK_ULONG_PTR) => Error::FunctionNotSupported;
    C_UnwrapKey(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_ATTRIBUTE_PTR, CK_ULONG, CK_OBJECT_HANDLE_PTR) => Error::FunctionNotSupported;
    C_WaitForSlotEvent(CK_FLAGS, CK_SLOT_ID_PTR, CK_VOID_PTR) => Error::FunctionNotSupported;
}

// Legacy parallel-function management (v2.40 §5.16): always CKR_FUNCTION_NOT_PARALLEL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionStatus(_: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CancelFunction(_: CK_SESSION_HANDLE) -> CK_RV {
    CKR_FUNCTION_NOT_PARALLEL
}
