//! Slot and token management (PKCS#11 v2.40 §5.5).

use super::{bytes_in, guard, len, out, padded, pin_in};
use crate::error::Error;
use crate::mechanism;
use crate::module;
use cryptoki_sys::*;

/// Fills a caller array with the two-call size rule.
///
/// # Safety
/// `count_ptr` must be NULL or point to a writable CK_ULONG; `list`, if non-NULL, must be
/// writable for `*count_ptr` elements.
unsafe fn deliver_list<T: Copy>(
    list: *mut T,
    count_ptr: *mut CK_ULONG,
    items: &[T],
) -> crate::Result<()> {
    // SAFETY: forwarded contract.
    let count = unsafe { out(count_ptr) }?;
    if list.is_null() {
        *count = items.len() as CK_ULONG;
        return Ok(());
    }
    if len(*count)? < items.len() {
        *count = items.len() as CK_ULONG;
        return Err(Error::BufferTooSmall);
    }
    // SAFETY: `list` is non-NULL and writable for `*count >= items.len()` elements.
    unsafe { std::ptr::copy_nonoverlapping(items.as_ptr(), list, items.len()) };
    *count = items.len() as CK_ULONG;
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotList(
    token_present: CK_BBOOL,
    p_slot_list: CK_SLOT_ID_PTR,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard(|| {
        if pul_count.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let slots = module::with(|m| Ok(m.slot_list(token_present != CK_FALSE)))?;
        // SAFETY: pointers per the spec; NULL count checked above, NULL list means size query.
        unsafe { deliver_list(p_slot_list, pul_count, &slots) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSlotInfo(slot_id: CK_SLOT_ID, p_info: CK_SLOT_INFO_PTR) -> CK_RV {
    guard(|| {
        let info = module::with(|m| m.slot_info(slot_id))?;
        // SAFETY: NULL is checked; otherwise a writable CK_SLOT_INFO per the spec.
        let p = unsafe { out(p_info) }?;
        *p = CK_SLOT_INFO {
            slotDescription: padded(&info.description),
            manufacturerID: padded("Segel"),
            flags: CKF_REMOVABLE_DEVICE
                | if info.token_present {
                    CKF_TOKEN_PRESENT
                } else {
                    0
                },
            hardwareVersion: CK_VERSION { major: 0, minor: 1 },
            firmwareVersion: CK_VERSION { major: 0, minor: 1 },
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetTokenInfo(slot_id: CK_SLOT_ID, p_info: CK_TOKEN_INFO_PTR) -> CK_RV {
    guard(|| {
        let info = module::with(|m| m.token_info(slot_id))?;
        // SAFETY: NULL is checked; otherwise a writable CK_TOKEN_INFO per the spec.
        let p = unsafe { out(p_info) }?;
        *p = CK_TOKEN_INFO {
            label: padded(&info.label),
            manufacturerID: padded("Segel"),
            model: padded("PKCS#12 file"),
            serialNumber: padded(&info.serial),
            flags: info.flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: info.session_count as CK_ULONG,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: info.rw_session_count as CK_ULONG,
            // A passphrase may be empty (some exports use none) and long; new ones have a minimum.
            ulMaxPinLen: 1024,
            ulMinPinLen: info.min_pin_len as CK_ULONG,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: CK_VERSION { major: 0, minor: 1 },
            firmwareVersion: CK_VERSION { major: 0, minor: 1 },
            utcTime: [b' '; 16],
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismList(
    slot_id: CK_SLOT_ID,
    p_mechanism_list: CK_MECHANISM_TYPE_PTR,
    pul_count: CK_ULONG_PTR,
) -> CK_RV {
    guard(|| {
        module::with(|m| m.check_token_present(slot_id))?;
        let list: Vec<CK_MECHANISM_TYPE> = mechanism::MECHANISMS.iter().map(|(m, _)| *m).collect();
        // SAFETY: pointers per the spec; NULL count is rejected by `deliver_list`.
        unsafe { deliver_list(p_mechanism_list, pul_count, &list) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetMechanismInfo(
    slot_id: CK_SLOT_ID,
    type_: CK_MECHANISM_TYPE,
    p_info: CK_MECHANISM_INFO_PTR,
) -> CK_RV {
    guard(|| {
        module::with(|m| m.check_token_present(slot_id))?;
        let info = mechanism::mechanism_info(type_)?;
        // SAFETY: NULL is checked; otherwise a writable CK_MECHANISM_INFO per the spec.
        let p = unsafe { out(p_info) }?;
        *p = CK_MECHANISM_INFO {
            ulMinKeySize: info.min_key_bits,
            ulMaxKeySize: info.max_key_bits,
            flags: info.flags,
        };
        Ok(())
    })
}

/// `C_InitToken` (v2.40 §5.5): names the key file of a blank slot (see `module::enrol`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitToken(
    slot_id: CK_SLOT_ID,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
    p_label: CK_UTF8CHAR_PTR,
) -> CK_RV {
    guard(|| {
        // SAFETY: `p_pin` is valid for `ul_pin_len` bytes per the spec (NULL only with 0).
        let so_pin = unsafe { pin_in(p_pin, ul_pin_len) }?;
        if p_label.is_null() {
            return Err(Error::ArgumentsBad);
        }
        // SAFETY: pLabel is a 32-byte blank-padded field per the spec (non-NULL checked above).
        let label = unsafe { bytes_in(p_label, 32) }?;
        let label = std::str::from_utf8(label).map_err(|_| Error::ArgumentsBad)?;
        module::with(|m| m.init_token(slot_id, &so_pin, label))
    })
}

/// `C_InitPIN` (v2.40 §5.5): the SO of a blank slot sets the passphrase and the file is written.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_InitPIN(
    h_session: CK_SESSION_HANDLE,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: `p_pin` is valid for `ul_pin_len` bytes per the spec (NULL only with 0).
        let pin = unsafe { pin_in(p_pin, ul_pin_len) }?;
        module::with(|m| m.init_pin(h_session, &pin))
    })
}

/// `C_SetPIN` (v2.40 §5.5): re-encrypts the key file under the new passphrase.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SetPIN(
    h_session: CK_SESSION_HANDLE,
    p_old_pin: CK_UTF8CHAR_PTR,
    ul_old_len: CK_ULONG,
    p_new_pin: CK_UTF8CHAR_PTR,
    ul_new_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: both PINs are valid for their lengths per the spec (NULL only with 0).
        let old = unsafe { pin_in(p_old_pin, ul_old_len) }?;
        // SAFETY: as above.
        let new = unsafe { pin_in(p_new_pin, ul_new_len) }?;
        module::with(|m| m.set_pin(h_session, &old, &new))
    })
}
