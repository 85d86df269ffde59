//! PKCS#11 3.0 interface discovery (§5.4 `C_GetInterfaceList`, `C_GetInterface`).
//!
//! The module offers one interface: `"PKCS 11"` version 2.40, whose function list is the 2.40
//! `CK_FUNCTION_LIST` that `C_GetFunctionList` returns. A 3.0 consumer that asks for version 3.0
//! gets `CKR_ARGUMENTS_BAD` and falls back, as the specification intends.

use super::{FUNCTION_LIST, guard, out};
use crate::error::Error;
use cryptoki_sys::*;

const NAME: &[u8] = b"PKCS 11\0";

/// `CK_INTERFACE` holds raw pointers, which are not `Sync`; these point to immutable statics.
struct Interface(CK_INTERFACE);

// SAFETY: both pointers refer to immutable `'static` data (a byte string literal and
// `FUNCTION_LIST`), which callers only read; sharing them between threads is sound.
unsafe impl Sync for Interface {}

static INTERFACE: Interface = Interface(CK_INTERFACE {
    pInterfaceName: NAME.as_ptr() as *mut CK_UTF8CHAR,
    pFunctionList: &FUNCTION_LIST as *const CK_FUNCTION_LIST as *mut std::ffi::c_void,
    flags: 0,
});

/// `C_GetInterfaceList`: one interface, with the two-call size rule.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterfaceList(
    p_interfaces_list: CK_INTERFACE_PTR,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard(|| {
        // SAFETY: NULL is checked; otherwise a writable CK_ULONG per the spec.
        let count = unsafe { out(pul_count) }?;
        if p_interfaces_list.is_null() {
            *count = 1;
            return Ok(());
        }
        if *count < 1 {
            *count = 1;
            return Err(Error::BufferTooSmall);
        }
        // SAFETY: non-NULL and the caller stated room for at least one CK_INTERFACE.
        unsafe { p_interfaces_list.write(INTERFACE.0) };
        *count = 1;
        Ok(())
    })
}

/// `C_GetInterface`: the interface by name (NULL = the default) and version (NULL = any).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetInterface(
    p_interface_name: CK_UTF8CHAR_PTR,
    p_version: CK_VERSION_PTR,
    pp_interface: CK_INTERFACE_PTR_PTR,
    flags: CK_FLAGS,
) -> CK_RV {
    guard(|| {
        // SAFETY: NULL is checked; otherwise a writable pointer slot per the spec.
        let slot = unsafe { out(pp_interface) }?;
        if !p_interface_name.is_null() {
            // SAFETY: a NUL-terminated name per the spec (non-NULL checked).
            let name = unsafe { std::ffi::CStr::from_ptr(p_interface_name as *const _) };
            if name.to_bytes_with_nul() != NAME {
                return Err(Error::ArgumentsBad);
            }
        }
        // SAFETY: `as_ref` checks NULL; otherwise a readable CK_VERSION per the spec.
        if let Some(v) = unsafe { p_version.as_ref() }
            && (v.major, v.minor) != (2, 40)
        {
            return Err(Error::ArgumentsBad);
        }
        // No interface flags (e.g. CKF_INTERFACE_FORK_SAFE) are offered.
        if flags != 0 {
            return Err(Error::ArgumentsBad);
        }
        *slot = &INTERFACE.0 as *const CK_INTERFACE as *mut CK_INTERFACE;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::null_mut;

    #[test]
    fn interface_is_pkcs11_2_40_with_the_function_list() {
        let mut p: *mut CK_INTERFACE = null_mut();
        // SAFETY: pointers to locals / NULL as the cases say.
        unsafe {
            assert_eq!(C_GetInterface(null_mut(), null_mut(), &mut p, 0), CKR_OK);
            let i = &*p;
            assert_eq!(
                std::ffi::CStr::from_ptr(i.pInterfaceName as *const _).to_bytes(),
                b"PKCS 11"
            );
            let list = &*(i.pFunctionList as *const CK_FUNCTION_LIST);
            assert_eq!((list.version.major, list.version.minor), (2, 40));
            let mut v3 = CK_VERSION { major: 3, minor: 0 };
            assert_eq!(
                C_GetInterface(null_mut(), &mut v3, &mut p, 0),
                CKR_ARGUMENTS_BAD
            );
            let mut other = *b"Vendor\0";
            assert_eq!(
                C_GetInterface(other.as_mut_ptr(), null_mut(), &mut p, 0),
                CKR_ARGUMENTS_BAD
            );
            assert_eq!(
                C_GetInterface(null_mut(), null_mut(), null_mut(), 0),
                CKR_ARGUMENTS_BAD
            );
            let mut count: CK_ULONG = 0;
            assert_eq!(C_GetInterfaceList(null_mut(), &mut count), CKR_OK);
            assert_eq!(count, 1);
            let mut list = [std::mem::zeroed::<CK_INTERFACE>(); 1];
            count = 0;
            assert_eq!(
                C_GetInterfaceList(list.as_mut_ptr(), &mut count),
                CKR_BUFFER_TOO_SMALL
            );
            count = 1;
            assert_eq!(C_GetInterfaceList(list.as_mut_ptr(), &mut count), CKR_OK);
            assert_eq!(list[0].pFunctionList, INTERFACE.0.pFunctionList);
            assert_eq!(
                C_GetInterfaceList(null_mut(), null_mut()),
                CKR_ARGUMENTS_BAD
            );
        }
    }
}
