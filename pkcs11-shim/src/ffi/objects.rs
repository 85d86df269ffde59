//! Object management (PKCS#11 v2.40 §5.7).

use super::{guard, len, out, template_in};
use crate::error::Error;
use crate::module::{self, AttrResult};
use cryptoki_sys::*;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DestroyObject(
    h_session: CK_SESSION_HANDLE,
    h_object: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| module::with(|m| m.destroy_object(h_session, h_object)))
}

/// `C_GetAttributeValue` (v2.40 §5.7): every attribute is processed; sensitive and unknown ones
/// get `CK_UNAVAILABLE_INFORMATION` as length, NULL `pValue` gets the length, too-small buffers
/// get `CK_UNAVAILABLE_INFORMATION`; the first such condition is the return value.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetAttributeValue(
    h_session: CK_SESSION_HANDLE,
    h_object: CK_OBJECT_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        let count = len(ul_count)?;
        if p_template.is_null() && count != 0 {
            return Err(Error::ArgumentsBad);
        }
        let attrs: &mut [CK_ATTRIBUTE] = if count == 0 {
            &mut []
        } else {
            // SAFETY: non-NULL, and the caller passes `ul_count` attributes (spec contract).
            unsafe { std::slice::from_raw_parts_mut(p_template, count) }
        };
        let types: Vec<CK_ATTRIBUTE_TYPE> = attrs.iter().map(|a| a.type_).collect();
        let values = module::with(|m| m.attributes(h_session, h_object, &types))?;
        let mut result = Ok(());
        for (attr, value) in attrs.iter_mut().zip(values) {
            let status = match value {
                AttrResult::Sensitive => Err(Error::AttributeSensitive),
                AttrResult::Invalid => Err(Error::AttributeTypeInvalid),
                AttrResult::Value(v) if attr.pValue.is_null() => {
                    attr.ulValueLen = v.len() as CK_ULONG;
                    Ok(())
                }
                AttrResult::Value(v) if len(attr.ulValueLen)? < v.len() => {
                    Err(Error::BufferTooSmall)
                }
                AttrResult::Value(v) => {
                    // SAFETY: pValue is non-NULL and the caller stated `ulValueLen >= v.len()`
                    // writable bytes; our Vec can not overlap it.
                    unsafe {
                        std::ptr::copy_nonoverlapping(v.as_ptr(), attr.pValue as *mut u8, v.len())
                    };
                    attr.ulValueLen = v.len() as CK_ULONG;
                    Ok(())
                }
            };
            if let Err(e) = status {
                attr.ulValueLen = CK_UNAVAILABLE_INFORMATION;
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsInit(
    h_session: CK_SESSION_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: the template is valid for `ul_count` attributes per the spec (NULL only with 0).
        let template = unsafe { template_in(p_template, ul_count) }?;
        module::with(|m| m.find_init(h_session, &template))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjects(
    h_session: CK_SESSION_HANDLE,
    ph_object: CK_OBJECT_HANDLE_PTR,
    ul_max_object_count: CK_ULONG,
    pul_object_count: CK_ULONG_PTR,
) -> CK_RV {
    guard(|| {
        if ph_object.is_null() || pul_object_count.is_null() {
            return Err(Error::ArgumentsBad);
        }
        let max = len(ul_max_object_count)?;
        let found = module::with(|m| m.find_next(h_session, max))?;
        // SAFETY: `ph_object` is non-NULL and writable for `ul_max_object_count` handles, and
        // `found.len() <= max`.
        unsafe { std::ptr::copy_nonoverlapping(found.as_ptr(), ph_object, found.len()) };
        // SAFETY: non-NULL checked above; a writable CK_ULONG per the spec.
        *unsafe { out(pul_object_count) }? = found.len() as CK_ULONG;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_FindObjectsFinal(h_session: CK_SESSION_HANDLE) -> CK_RV {
    guard(|| module::with(|m| m.find_final(h_session)))
}

/// `C_CreateObject` (v2.40 §5.7): imports an X.509 certificate into the key file.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_CreateObject(
    h_session: CK_SESSION_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_count: CK_ULONG,
    ph_object: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard(|| {
        if ph_object.is_null() {
            return Err(Error::ArgumentsBad);
        }
        // SAFETY: the template is valid for `ul_count` attributes per the spec (NULL only with 0).
        let template = unsafe { template_in(p_template, ul_count) }?;
        let h = module::with(|m| m.create_object(h_session, &template))?;
        // SAFETY: non-NULL checked above; a writable handle per the spec.
        *unsafe { out(ph_object) }? = h;
        Ok(())
    })
}
