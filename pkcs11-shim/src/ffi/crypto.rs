//! Signing (§5.11), decryption (§5.9), key derivation (§5.13) and random numbers (§5.15) of
//! PKCS#11 v2.40. Size queries are answered under the module lock; the signature or plaintext
//! itself is computed after it is released.

use super::{bytes_in, capacity, deliver, guard, len, mechanism_in, out, template_in};
use crate::error::{Error, Result};
use crate::mechanism::Mechanism;
use crate::module::{self, Output};
use cryptoki_sys::*;
use rand_core::RngCore;
use zeroize::Zeroizing;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignInit(
    h_session: CK_SESSION_HANDLE,
    p_mechanism: CK_MECHANISM_PTR,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        module::with(|m| m.check_session(h_session))?;
        // SAFETY: a CK_MECHANISM per the spec; NULL is rejected inside.
        let mech = unsafe { mechanism_in(p_mechanism) }?;
        module::with(|m| m.sign_init(h_session, mech, h_key))
    })
}

/// The end of `C_Sign` and `C_SignFinal`.
///
/// # Safety
/// `p_signature` / `pul_len` as in `C_Sign`.
unsafe fn finish_sign(
    h_session: CK_SESSION_HANDLE,
    single: Option<&[u8]>,
    p_signature: CK_BYTE_PTR,
    pul_len: CK_ULONG_PTR,
) -> Result<()> {
    // SAFETY: forwarded contract.
    let cap = unsafe { capacity(p_signature, pul_len) }?;
    let output = match module::with(|m| m.sign_take(h_session, single, cap))? {
        Err(output) => output,
        Ok(op) => Output::Data(Zeroizing::new(op.finish()?)),
    };
    // SAFETY: forwarded contract.
    unsafe { deliver(p_signature, pul_len, output) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Sign(
    h_session: CK_SESSION_HANDLE,
    p_data: CK_BYTE_PTR,
    ul_data_len: CK_ULONG,
    p_signature: CK_BYTE_PTR,
    pul_signature_len: CK_ULONG_PTR,
) -> CK_RV {
    guard(|| {
        // SAFETY: `p_data` is valid for `ul_data_len` bytes per the spec (NULL only with 0).
        let data = unsafe { bytes_in(p_data, ul_data_len) }?;
        // SAFETY: output pointers per the spec, checked inside.
        unsafe { finish_sign(h_session, Some(data), p_signature, pul_signature_len) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignUpdate(
    h_session: CK_SESSION_HANDLE,
    p_part: CK_BYTE_PTR,
    ul_part_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        // SAFETY: `p_part` is valid for `ul_part_len` bytes per the spec (NULL only with 0).
        let part = unsafe { bytes_in(p_part, ul_part_len) }?;
        module::with(|m| m.sign_update(h_session, part))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SignFinal(
    h_session: CK_SESSION_HANDLE,
    p_signature: CK_BYTE_PTR,
    pul_signature_len: CK_ULONG_PTR,
) -> CK_RV {
    // SAFETY: output pointers per the spec, checked inside.
    guard(|| unsafe { finish_sign(h_session, None, p_signature, pul_signature_len) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DecryptInit(
    h_session: CK_SESSION_HANDLE,
    p_mechanism: CK_MECHANISM_PTR,
    h_key: CK_OBJECT_HANDLE,
) -> CK_RV {
    guard(|| {
        module::with(|m| m.check_session(h_session))?;
        // SAFETY: a CK_MECHANISM per the spec; NULL is rejected inside.
        let mech = unsafe { mechanism_in(p_mechanism) }?;
        module::with(|m| m.decrypt_init(h_session, mech, h_key))
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_Decrypt(
    h_session: CK_SESSION_HANDLE,
    p_encrypted_data: CK_BYTE_PTR,
    ul_encrypted_data_len: CK_ULONG,
    p_data: CK_BYTE_PTR,
    pul_data_len: CK_ULONG_PTR,
) -> CK_RV {
    guard(|| {
        // SAFETY: input valid for its length per the spec (NULL only with 0).
        let ct = unsafe { bytes_in(p_encrypted_data, ul_encrypted_data_len) }?;
        // SAFETY: output pointers per the spec, checked inside.
        let cap = unsafe { capacity(p_data, pul_data_len) }?;
        let output = match module::with(|m| m.decrypt_take(h_session, cap))? {
            Err(output) => output,
            Ok(op) => {
                let plain = op.key.decrypt(&op.mech, ct)?;
                if cap.is_some_and(|c| c < plain.len()) {
                    module::with(|m| {
                        m.decrypt_restore(h_session, op);
                        Ok(())
                    })?;
                    Output::TooSmall(plain.len())
                } else {
                    Output::Data(plain)
                }
            }
        };
        // SAFETY: output pointers per the spec.
        unsafe { deliver(p_data, pul_data_len, output) }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_DeriveKey(
    h_session: CK_SESSION_HANDLE,
    p_mechanism: CK_MECHANISM_PTR,
    h_base_key: CK_OBJECT_HANDLE,
    p_template: CK_ATTRIBUTE_PTR,
    ul_attribute_count: CK_ULONG,
    ph_key: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard(|| {
        if ph_key.is_null() {
            return Err(Error::ArgumentsBad);
        }
        module::with(|m| m.check_session(h_session))?;
        // SAFETY: a CK_MECHANISM per the spec; NULL is rejected inside.
        let Mechanism::Ecdh1Derive(params) = unsafe { mechanism_in(p_mechanism) }? else {
            return Err(Error::MechanismInvalid);
        };
        // SAFETY: the template is valid for `ul_attribute_count` attributes per the spec.
        let template = unsafe { template_in(p_template, ul_attribute_count) }?;
        let h = module::with(|m| m.derive(h_session, &params, h_base_key, &template))?;
        // SAFETY: non-NULL checked above; a writable handle per the spec.
        *unsafe { out(ph_key) }? = h;
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_SeedRandom(
    h_session: CK_SESSION_HANDLE,
    _p_seed: CK_BYTE_PTR,
    _ul_seed_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        module::with(|m| m.check_session(h_session))?;
        // The OS generator is used directly; it takes no application seed.
        Err(Error::RandomSeedNotSupported)
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateRandom(
    h_session: CK_SESSION_HANDLE,
    random_data: CK_BYTE_PTR,
    ul_random_len: CK_ULONG,
) -> CK_RV {
    guard(|| {
        module::with(|m| m.check_session(h_session))?;
        let n = len(ul_random_len)?;
        if n == 0 {
            return Ok(());
        }
        if random_data.is_null() {
            return Err(Error::ArgumentsBad);
        }
        // SAFETY: non-NULL and writable for `ul_random_len` bytes per the spec.
        let buf = unsafe { std::slice::from_raw_parts_mut(random_data, n) };
        rand_core::OsRng
            .try_fill_bytes(buf)
            .map_err(|_| Error::FunctionFailed)
    })
}

/// `C_GenerateKeyPair` (v2.40 §5.14): RSA or EC key added to the key file. The key is generated
/// without the module lock (RSA takes seconds); the session is checked before and after.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GenerateKeyPair(
    h_session: CK_SESSION_HANDLE,
    p_mechanism: CK_MECHANISM_PTR,
    p_public_template: CK_ATTRIBUTE_PTR,
    ul_public_count: CK_ULONG,
    p_private_template: CK_ATTRIBUTE_PTR,
    ul_private_count: CK_ULONG,
    ph_public_key: CK_OBJECT_HANDLE_PTR,
    ph_private_key: CK_OBJECT_HANDLE_PTR,
) -> CK_RV {
    guard(|| {
        if ph_public_key.is_null() || ph_private_key.is_null() {
            return Err(Error::ArgumentsBad);
        }
        // SAFETY: `as_ref` checks NULL; otherwise a valid CK_MECHANISM per the spec.
        let mech = unsafe { p_mechanism.as_ref() }.ok_or(Error::ArgumentsBad)?;
        // SAFETY: templates valid for their counts per the spec (NULL only with 0).
        let public = unsafe { template_in(p_public_template, ul_public_count) }?;
        // SAFETY: as above.
        let private = unsafe { template_in(p_private_template, ul_private_count) }?;
        let spec = module::KeyPairSpec::parse(mech.mechanism, &public, &private)?;
        module::with(|m| m.check_key_pair(h_session))?;
        let key = spec.kind.generate()?;
        let (pub_h, priv_h) = module::with(|m| m.store_key_pair(h_session, key, &spec))?;
        // SAFETY: both non-NULL checked above; writable handles per the spec.
        *unsafe { out(ph_public_key) }? = pub_h;
        // SAFETY: as above.
        *unsafe { out(ph_private_key) }? = priv_h;
        Ok(())
    })
}
