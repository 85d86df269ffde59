//! General-purpose functions (PKCS#11 v2.40 §5.4).

use super::{FUNCTION_LIST, guard, out, padded};
use crate::error::Error;
use crate::module;
use cryptoki_sys::*;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Initialize(p_init_args: CK_VOID_PTR) -> CK_RV {
    guard(|| {
        let args = p_init_args as *const CK_C_INITIALIZE_ARGS;
        // SAFETY: NULL is allowed (no arguments); otherwise the caller passes a
        // CK_C_INITIALIZE_ARGS as the spec requires.
        if let Some(args) = unsafe { args.as_ref() } {
            let supplied = [
                args.CreateMutex.is_some(),
                args.DestroyMutex.is_some(),
                args.LockMutex.is_some(),
                args.UnlockMutex.is_some(),
            ];
            let all = supplied.iter().all(|s| *s);
            if !all && supplied.iter().any(|s| *s) {
                return Err(Error::ArgumentsBad);
            }
            // Only OS locking is used. If the application supplies mutex functions without
            // allowing OS locking, the spec requires using them or failing (v2.40 §5.4).
            if all && args.flags & CKF_OS_LOCKING_OK == 0 {
                return Err(Error::CantLock);
            }
            // pReserved must be NULL per the spec, but NSS passes its module parameters there:
            // it is ignored rather than rejected.
        }
        module::initialize()
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Finalize(p_reserved: CK_VOID_PTR) -> CK_RV {
    guard(|| {
        if !p_reserved.is_null() {
            return Err(Error::ArgumentsBad);
        }
        module::finalize()
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInfo(p_info: *mut CK_INFO) -> CK_RV {
    guard(|| {
        module::with(|_| Ok(()))?;
        // SAFETY: NULL is checked; otherwise a writable CK_INFO per the spec.
        let info = unsafe { out(p_info) }?;
        *info = CK_INFO {
            cryptokiVersion: CK_VERSION {
                major: 2,
                minor: 40,
            },
            manufacturerID: padded("Segel"),
            flags: 0,
            libraryDescription: padded("Segel PKCS#12 key files"),
            libraryVersion: CK_VERSION { major: 0, minor: 1 },
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(pp_function_list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    guard(|| {
        // SAFETY: NULL is checked; otherwise a writable pointer slot per the spec.
        let slot = unsafe { out(pp_function_list) }?;
        // The table is immutable; the C signature lacks `const`, and callers only read it.
        *slot = &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut CK_FUNCTION_LIST;
        Ok(())
    })
}
