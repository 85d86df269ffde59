//! The C ABI: every `C_*` entry point of PKCS#11 v2.40 and `C_GetFunctionList`. This is the only
//! place with `unsafe`; each block says why it is sound. Every export runs its body through
//! [`guard`], which turns a panic into `CKR_GENERAL_ERROR` instead of unwinding into the host
//! program (a browser or `pkcs11-tool` must never be taken down by this module).
//!
//! Split by spec chapter (v2.40 §5): [`general`] (§5.4), [`slot_token`] (§5.5), [`session`]
//! (§5.6), [`objects`] (§5.7), [`crypto`] (§5.9–5.13, 5.15), [`unsupported`] (the rest).
#![allow(unsafe_code)]
// The safety contract of every export is the PKCS#11 specification itself; a `# Safety` section
// on each of ~70 functions would only repeat "pointers as the spec says".
#![allow(clippy::missing_safety_doc)]

pub mod crypto;
pub mod general;
pub mod objects;
pub mod session;
pub mod slot_token;
pub mod unsupported;

use crate::error::{Error, Result};
use crate::mechanism::{self, DecryptMechanism, Ecdh1Params, Mechanism, SignMechanism};
use crate::module::Output;
use cryptoki_sys::*;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Runs an export's body: `Ok` → `CKR_OK`, `Err(e)` → `e.rv()`, panic → `CKR_GENERAL_ERROR`.
pub fn guard(f: impl FnOnce() -> Result<()>) -> CK_RV {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => CKR_OK,
        Ok(Err(e)) => e.rv(),
        Err(_) => {
            tracing::error!("panic caught at the PKCS#11 boundary");
            CKR_GENERAL_ERROR
        }
    }
}

/// A `CK_ULONG` length as `usize`.
fn len(n: CK_ULONG) -> Result<usize> {
    usize::try_from(n).map_err(|_| Error::ArgumentsBad)
}

/// The bytes at `ptr`; a NULL pointer is allowed only with length 0.
///
/// # Safety
/// If `ptr` is non-NULL it must be valid for reads of `n` bytes for `'a`.
unsafe fn bytes_in<'a>(ptr: *const CK_BYTE, n: CK_ULONG) -> Result<&'a [u8]> {
    let n = len(n)?;
    if ptr.is_null() {
        return if n == 0 {
            Ok(&[])
        } else {
            Err(Error::ArgumentsBad)
        };
    }
    // SAFETY: non-NULL, and the caller guarantees `n` readable bytes (PKCS#11 buffer contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
}

/// A PIN argument as a secret string. A NULL PIN would mean a protected authentication path,
/// which key files do not have.
///
/// # Safety
/// If `ptr` is non-NULL it must be valid for reads of `n` bytes.
unsafe fn pin_in(ptr: *const CK_UTF8CHAR, n: CK_ULONG) -> Result<secrecy::SecretString> {
    // SAFETY: forwarded contract (NULL is allowed only with length 0 inside `bytes_in`).
    let pin = unsafe { bytes_in(ptr, n) }?;
    let pin = std::str::from_utf8(pin).map_err(|_| Error::PinInvalid)?;
    Ok(secrecy::SecretString::from(pin.to_owned()))
}

/// A mutable reference to a caller-provided output location.
///
/// # Safety
/// If `ptr` is non-NULL it must point to a valid, aligned, writable `T` for `'a`.
unsafe fn out<'a, T>(ptr: *mut T) -> Result<&'a mut T> {
    // SAFETY: `as_mut` checks NULL; validity and alignment are the caller's PKCS#11 contract.
    unsafe { ptr.as_mut() }.ok_or(Error::ArgumentsBad)
}

/// The capacity of an output buffer: `None` when the caller only asks for the size.
///
/// # Safety
/// `len_ptr` must be NULL or point to a readable `CK_ULONG`.
unsafe fn capacity(buf: *const CK_BYTE, len_ptr: *mut CK_ULONG) -> Result<Option<usize>> {
    // SAFETY: forwarded contract of this function.
    let l = unsafe { out(len_ptr) }?;
    if buf.is_null() {
        Ok(None)
    } else {
        len(*l).map(Some)
    }
}

/// Delivers an [`Output`] with the two-call size rule (v2.40 §5.2).
///
/// # Safety
/// `len_ptr` must point to a writable `CK_ULONG`; if `buf` is non-NULL it must be writable for
/// the capacity the caller stated in `*len_ptr` (checked against the data length here).
unsafe fn deliver(buf: *mut CK_BYTE, len_ptr: *mut CK_ULONG, output: Output) -> Result<()> {
    // SAFETY: forwarded contract.
    let l = unsafe { out(len_ptr) }?;
    match output {
        Output::Size(n) => {
            *l = n as CK_ULONG;
            Ok(())
        }
        Output::TooSmall(n) => {
            *l = n as CK_ULONG;
            Err(Error::BufferTooSmall)
        }
        Output::Data(d) => {
            if buf.is_null() {
                *l = d.len() as CK_ULONG;
                return Ok(());
            }
            if len(*l)? < d.len() {
                *l = d.len() as CK_ULONG;
                return Err(Error::BufferTooSmall);
            }
            // SAFETY: `buf` is non-NULL and the caller stated at least `*l >= d.len()` writable
            // bytes; source and destination can not overlap (ours is a fresh Vec).
            unsafe { std::ptr::copy_nonoverlapping(d.as_ptr(), buf, d.len()) };
            *l = d.len() as CK_ULONG;
            Ok(())
        }
    }
}

/// Copies a template's types and values.
///
/// # Safety
/// If `ptr` is non-NULL it must point to `count` `CK_ATTRIBUTE`s whose `pValue` are NULL or
/// valid for `ulValueLen` bytes.
unsafe fn template_in(
    ptr: *const CK_ATTRIBUTE,
    count: CK_ULONG,
) -> Result<Vec<(CK_ATTRIBUTE_TYPE, Vec<u8>)>> {
    let count = len(count)?;
    if count == 0 {
        return Ok(Vec::new());
    }
    if ptr.is_null() {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: non-NULL, and the caller guarantees `count` attributes.
    let attrs = unsafe { std::slice::from_raw_parts(ptr, count) };
    attrs
        .iter()
        .map(|a| {
            // SAFETY: each pValue is valid for ulValueLen bytes (caller's contract).
            let v = unsafe { bytes_in(a.pValue as *const CK_BYTE, a.ulValueLen) }?;
            Ok((a.type_, v.to_vec()))
        })
        .collect()
}

/// Reads a `CK_MECHANISM` and its parameter structure into a [`Mechanism`].
///
/// # Safety
/// `ptr` must be NULL or point to a `CK_MECHANISM` whose `pParameter` is NULL or valid for
/// `ulParameterLen` bytes.
unsafe fn mechanism_in(ptr: *const CK_MECHANISM) -> Result<Mechanism> {
    // SAFETY: `as_ref` checks NULL; the caller guarantees a valid CK_MECHANISM otherwise.
    let m = unsafe { ptr.as_ref() }.ok_or(Error::ArgumentsBad)?;
    let param_len = len(m.ulParameterLen)?;
    match m.mechanism {
        CKM_RSA_PKCS_PSS
        | CKM_SHA256_RSA_PKCS_PSS
        | CKM_SHA384_RSA_PKCS_PSS
        | CKM_SHA512_RSA_PKCS_PSS => {
            // SAFETY: length checked to be the struct's size; pointer validity per contract.
            let p = unsafe { param::<CK_RSA_PKCS_PSS_PARAMS>(m.pParameter, param_len) }?;
            let mech_hash = mechanism::pss_mechanism_hash(m.mechanism);
            let pss = mechanism::pss_params(mech_hash, p.hashAlg, p.mgf, p.sLen)?;
            Ok(Mechanism::Sign(match mech_hash {
                Some(_) => SignMechanism::HashRsaPss(pss),
                None => SignMechanism::RsaPss(pss),
            }))
        }
        CKM_RSA_PKCS_OAEP => {
            // SAFETY: as above.
            let p = unsafe { param::<CK_RSA_PKCS_OAEP_PARAMS>(m.pParameter, param_len) }?;
            let label = match p.source {
                0 => None,
                CKZ_DATA_SPECIFIED => {
                    // SAFETY: pSourceData is valid for ulSourceDataLen bytes (caller's contract).
                    let l =
                        unsafe { bytes_in(p.pSourceData as *const CK_BYTE, p.ulSourceDataLen) }?;
                    (!l.is_empty()).then(|| l.to_vec())
                }
                _ => return Err(Error::MechanismParamInvalid),
            };
            Ok(Mechanism::Decrypt(DecryptMechanism::RsaOaep {
                hash: mechanism::HashAlg::from_ckm(p.hashAlg)?,
                mgf: mechanism::HashAlg::from_mgf(p.mgf)?,
                label,
            }))
        }
        CKM_ECDH1_DERIVE => {
            // SAFETY: as above.
            let p = unsafe { param::<CK_ECDH1_DERIVE_PARAMS>(m.pParameter, param_len) }?;
            if p.kdf != CKD_NULL || p.ulSharedDataLen != 0 {
                return Err(Error::MechanismParamInvalid);
            }
            // SAFETY: pPublicData is valid for ulPublicDataLen bytes (caller's contract).
            let public = unsafe { bytes_in(p.pPublicData, p.ulPublicDataLen) }?;
            if public.is_empty() {
                return Err(Error::MechanismParamInvalid);
            }
            Ok(Mechanism::Ecdh1Derive(Ecdh1Params {
                public_data: public.to_vec(),
            }))
        }
        other => mechanism::simple(other),
    }
}

/// A mechanism parameter structure, checked for presence and size.
///
/// # Safety
/// If `p` is non-NULL it must be valid for `n` bytes.
unsafe fn param<'a, T>(p: *const std::ffi::c_void, n: usize) -> Result<&'a T> {
    if p.is_null() || n != std::mem::size_of::<T>() {
        return Err(Error::MechanismParamInvalid);
    }
    if !(p as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::ArgumentsBad);
    }
    // SAFETY: non-NULL, aligned, and `n == size_of::<T>()` bytes are readable (caller's
    // contract); T is a plain C struct for which any bit pattern of its integer fields is valid.
    Ok(unsafe { &*(p as *const T) })
}

/// A fixed-width, blank-padded PKCS#11 string field (not NUL-terminated), cut at a char boundary.
pub fn padded<const N: usize>(s: &str) -> [CK_UTF8CHAR; N] {
    let mut out = [b' '; N];
    let cut = crate::token::truncate(s, N);
    out[..cut.len()].copy_from_slice(cut.as_bytes());
    out
}

/// The function table returned by `C_GetFunctionList`.
pub static FUNCTION_LIST: CK_FUNCTION_LIST = CK_FUNCTION_LIST {
    version: CK_VERSION {
        major: 2,
        minor: 40,
    },
    C_Initialize: Some(general::C_Initialize),
    C_Finalize: Some(general::C_Finalize),
    C_GetInfo: Some(general::C_GetInfo),
    C_GetFunctionList: Some(general::C_GetFunctionList),
    C_GetSlotList: Some(slot_token::C_GetSlotList),
    C_GetSlotInfo: Some(slot_token::C_GetSlotInfo),
    C_GetTokenInfo: Some(slot_token::C_GetTokenInfo),
    C_GetMechanismList: Some(slot_token::C_GetMechanismList),
    C_GetMechanismInfo: Some(slot_token::C_GetMechanismInfo),
    C_InitToken: Some(slot_token::C_InitToken),
    C_InitPIN: Some(slot_token::C_InitPIN),
    C_SetPIN: Some(slot_token::C_SetPIN),
    C_OpenSession: Some(session::C_OpenSession),
    C_CloseSession: Some(session::C_CloseSession),
    C_CloseAllSessions: Some(session::C_CloseAllSessions),
    C_GetSessionInfo: Some(session::C_GetSessionInfo),
    C_GetOperationState: Some(unsupported::C_GetOperationState),
    C_SetOperationState: Some(unsupported::C_SetOperationState),
    C_Login: Some(session::C_Login),
    C_Logout: Some(session::C_Logout),
    C_CreateObject: Some(objects::C_CreateObject),
    C_CopyObject: Some(unsupported::C_CopyObject),
    C_DestroyObject: Some(objects::C_DestroyObject),
    C_GetObjectSize: Some(unsupported::C_GetObjectSize),
    C_GetAttributeValue: Some(objects::C_GetAttributeValue),
    C_SetAttributeValue: Some(unsupported::C_SetAttributeValue),
    C_FindObjectsInit: Some(objects::C_FindObjectsInit),
    C_FindObjects: Some(objects::C_FindObjects),
    C_FindObjectsFinal: Some(objects::C_FindObjectsFinal),
    C_EncryptInit: Some(unsupported::C_EncryptInit),
    C_Encrypt: Some(unsupported::C_Encrypt),
    C_EncryptUpdate: Some(unsupported::C_EncryptUpdate),
    C_EncryptFinal: Some(unsupported::C_EncryptFinal),
    C_DecryptInit: Some(crypto::C_DecryptInit),
    C_Decrypt: Some(crypto::C_Decrypt),
    C_DecryptUpdate: Some(unsupported::C_DecryptUpdate),
    C_DecryptFinal: Some(unsupported::C_DecryptFinal),
    C_DigestInit: Some(unsupported::C_DigestInit),
    C_Digest: Some(unsupported::C_Digest),
    C_DigestUpdate: Some(unsupported::C_DigestUpdate),
    C_DigestKey: Some(unsupported::C_DigestKey),
    C_DigestFinal: Some(unsupported::C_DigestFinal),
    C_SignInit: Some(crypto::C_SignInit),
    C_Sign: Some(crypto::C_Sign),
    C_SignUpdate: Some(crypto::C_SignUpdate),
    C_SignFinal: Some(crypto::C_SignFinal),
    C_SignRecoverInit: Some(unsupported::C_SignRecoverInit),
    C_SignRecover: Some(unsupported::C_SignRecover),
    C_VerifyInit: Some(unsupported::C_VerifyInit),
    C_Verify: Some(unsupported::C_Verify),
    C_VerifyUpdate: Some(unsupported::C_VerifyUpdate),
    C_VerifyFinal: Some(unsupported::C_VerifyFinal),
    C_VerifyRecoverInit: Some(unsupported::C_VerifyRecoverInit),
    C_VerifyRecover: Some(unsupported::C_VerifyRecover),
    C_DigestEncryptUpdate: Some(unsupported::C_DigestEncryptUpdate),
    C_DecryptDigestUpdate: Some(unsupported::C_DecryptDigestUpdate),
    C_SignEncryptUpdate: Some(unsupported::C_SignEncryptUpdate),
    C_DecryptVerifyUpdate: Some(unsupported::C_DecryptVerifyUpdate),
    C_GenerateKey: Some(unsupported::C_GenerateKey),
    C_GenerateKeyPair: Some(crypto::C_GenerateKeyPair),
    C_WrapKey: Some(unsupported::C_WrapKey),
    C_UnwrapKey: Some(unsupported::C_UnwrapKey),
    C_DeriveKey: Some(crypto::C_DeriveKey),
    C_SeedRandom: Some(crypto::C_SeedRandom),
    C_GenerateRandom: Some(crypto::C_GenerateRandom),
    C_GetFunctionStatus: Some(unsupported::C_GetFunctionStatus),
    C_CancelFunction: Some(unsupported::C_CancelFunction),
    C_WaitForSlotEvent: Some(unsupported::C_WaitForSlotEvent),
};

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_general_error() {
        let rv = guard(|| panic!("boom"));
        assert_eq!(rv, CKR_GENERAL_ERROR);
        assert_eq!(guard(|| Ok(())), CKR_OK);
        assert_eq!(guard(|| Err(Error::PinIncorrect)), CKR_PIN_INCORRECT);
    }

    #[test]
    fn padded_fields_are_blank_filled_and_cut_on_char_boundaries() {
        assert_eq!(&padded::<6>("ab"), b"ab    ");
        assert_eq!(&padded::<3>("aé"), b"a\xc3\xa9");
        assert_eq!(&padded::<2>("aé"), b"a ");
    }

    #[test]
    fn deliver_follows_the_two_call_size_rule() {
        let mut l: CK_ULONG = 0;
        let data = || Output::Data(zeroize::Zeroizing::new(vec![1, 2, 3]));
        // SAFETY: test pointers to locals.
        let r = unsafe { deliver(std::ptr::null_mut(), &mut l, data()) };
        assert_eq!((r, l), (Ok(()), 3));
        let mut buf = [0u8; 2];
        l = 2;
        // SAFETY: `buf` holds 2 bytes as stated.
        let r = unsafe { deliver(buf.as_mut_ptr(), &mut l, data()) };
        assert_eq!((r, l), (Err(Error::BufferTooSmall), 3));
        let mut buf = [0u8; 4];
        l = 4;
        // SAFETY: `buf` holds 4 bytes as stated.
        let r = unsafe { deliver(buf.as_mut_ptr(), &mut l, data()) };
        assert_eq!((r, l, buf), (Ok(()), 3, [1, 2, 3, 0]));
        // SAFETY: NULL length pointer is the misuse under test.
        let r = unsafe { deliver(buf.as_mut_ptr(), std::ptr::null_mut(), data()) };
        assert_eq!(r, Err(Error::ArgumentsBad));
    }
}
