//! Session management (PKCS#11 v2.40 §5.6).

use super::{guard, out, pin_in};
use crate::error::Error;
use crate::module;
use cryptoki_sys::*;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_OpenSession(
    slot_id: CK_SLOT_ID,
    flags: CK_FLAGS,
    _p_application: CK_VOID_PTR,
    _notify: CK_NOTIFY,
    ph_session: CK_SESSION_HANDLE_PTR,
) -> CK_RV {
    guard(|| {
        if ph_session.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let h = module::with(|m| m.open_session(slot_id, flags))?;
        // SAFETY: non-NULL checked above; a writable handle slot per the spec.
        *unsafe { out(ph_session) }? = h;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseSession(h_session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::with(|m| m.close_session(h_session)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CloseAllSessions(slot_id: CK_SLOT_ID) -> CK_RV {
    guard(|| module::with(|m| m.close_all_sessions(slot_id)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetSessionInfo(
    h_session: CK_SESSION_HANDLE,
    p_info: CK_SESSION_INFO_PTR,
) -> CK_RV {
    guard(|| {
        let info = module::with(|m| m.session_info(h_session))?;
        // SAFETY: NULL is checked; otherwise a writable CK_SESSION_INFO per the spec.
        let p = unsafe { out(p_info) }?;
        *p = CK_SESSION_INFO {
            slotID: info.slot,
            state: info.state,
            flags: info.flags,
            ulDeviceError: 0,
        };
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Login(
    h_session: CK_SESSION_HANDLE,
    user_type: CK_USER_TYPE,
    p_pin: CK_UTF8CHAR_PTR,
    ul_pin_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: `p_pin` is valid for `ul_pin_len` bytes per the spec (NULL only with 0).
        let pin = unsafe { pin_in(p_pin, ul_pin_len) }?;
        module::with(|m| m.login(h_session, user_type, &pin))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Logout(h_session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::with(|m| m.logout(h_session)))
}
