//! PKCS#11 objects (v2.40 §4): certificates, public keys and private keys from a key file, and
//! secret keys derived in a session. Attribute values are kept in their C encoding (CK_ULONG in
//! native byte order, CK_BBOOL as one byte) so `C_GetAttributeValue` and template matching are
//! plain byte copies and comparisons.

use crate::keys::{PrivateKey, PublicKey};
use cryptoki_sys::*;
use der::{Decode, Encode};
use sha1::Digest;
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// One attribute value, or the marker that it exists but is never revealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    Bytes(Zeroizing<Vec<u8>>),
    Sensitive,
}

/// What `C_GetAttributeValue` reports for one requested attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrLookup<'a> {
    Value(&'a [u8]),
    Sensitive,
    Invalid,
}

/// Who may see an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Token object visible without login.
    Public,
    /// Token object visible only while the user is logged in (`CKA_PRIVATE` true).
    Private,
    /// Session object, destroyed with its session.
    Session(CK_SESSION_HANDLE),
}

/// A PKCS#11 object.
#[derive(Debug)]
pub struct Object {
    pub visibility: Visibility,
    attrs: BTreeMap<CK_ATTRIBUTE_TYPE, AttrValue>,
    /// The key behind a private-key object.
    pub key: Option<Arc<PrivateKey>>,
}

pub fn ulong(v: CK_ULONG) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

pub fn bool_attr(v: bool) -> Vec<u8> {
    vec![if v { CK_TRUE } else { CK_FALSE }]
}

impl Object {
    fn new(visibility: Visibility) -> Self {
        Self {
            visibility,
            attrs: BTreeMap::new(),
            key: None,
        }
    }

    fn set(&mut self, t: CK_ATTRIBUTE_TYPE, v: Vec<u8>) -> &mut Self {
        self.attrs.insert(t, AttrValue::Bytes(Zeroizing::new(v)));
        self
    }

    fn sensitive(&mut self, t: CK_ATTRIBUTE_TYPE) -> &mut Self {
        self.attrs.insert(t, AttrValue::Sensitive);
        self
    }

    pub fn attr(&self, t: CK_ATTRIBUTE_TYPE) -> AttrLookup<'_> {
        match self.attrs.get(&t) {
            Some(AttrValue::Bytes(b)) => AttrLookup::Value(b),
            Some(AttrValue::Sensitive) => AttrLookup::Sensitive,
            None => AttrLookup::Invalid,
        }
    }

    pub fn class(&self) -> Option<CK_OBJECT_CLASS> {
        match self.attr(CKA_CLASS) {
            AttrLookup::Value(b) => Some(CK_ULONG::from_ne_bytes(b.try_into().ok()?)),
            _ => None,
        }
    }

    pub fn flag(&self, t: CK_ATTRIBUTE_TYPE) -> bool {
        matches!(self.attr(t), AttrLookup::Value([b]) if *b != CK_FALSE)
    }

    /// Whether every template attribute is present with exactly that value (v2.40 §5.6).
    pub fn matches(&self, template: &[(CK_ATTRIBUTE_TYPE, Vec<u8>)]) -> bool {
        template
            .iter()
            .all(|(t, v)| matches!(self.attr(*t), AttrLookup::Value(b) if b == v.as_slice()))
    }

    /// The same object, for comparing a rebuilt public object with the one already handed out.
    pub fn same_as(&self, other: &Object) -> bool {
        self.visibility == other.visibility && self.attrs == other.attrs
    }

    /// Common storage attributes (v2.40 §4.4).
    fn storage(&mut self, class: CK_OBJECT_CLASS, token: bool, private: bool, label: &str) {
        self.set(CKA_CLASS, ulong(class))
            .set(CKA_TOKEN, bool_attr(token))
            .set(CKA_PRIVATE, bool_attr(private))
            .set(CKA_MODIFIABLE, bool_attr(false))
            .set(CKA_COPYABLE, bool_attr(false))
            .set(CKA_DESTROYABLE, bool_attr(!token))
            .set(CKA_LABEL, label.as_bytes().to_vec());
    }

    /// Common key attributes (v2.40 §4.7).
    fn key_common(&mut self, key_type: CK_KEY_TYPE, id: &[u8], derive: bool) {
        self.set(CKA_KEY_TYPE, ulong(key_type))
            .set(CKA_ID, id.to_vec())
            .set(CKA_START_DATE, Vec::new())
            .set(CKA_END_DATE, Vec::new())
            .set(CKA_DERIVE, bool_attr(derive))
            .set(CKA_LOCAL, bool_attr(false))
            .set(CKA_KEY_GEN_MECHANISM, ulong(CK_UNAVAILABLE_INFORMATION));
    }

    /// A certificate object (v2.40 §4.6). `None` if the DER is not an X.509 certificate.
    pub fn certificate(der_bytes: &[u8], id: &[u8], label: &str) -> Option<Self> {
        let cert = x509_cert::Certificate::from_der(der_bytes).ok()?;
        let tbs = &cert.tbs_certificate;
        let mut o = Object::new(Visibility::Public);
        o.storage(CKO_CERTIFICATE, true, false, label);
        let check: Vec<u8> = sha1::Sha1::digest(der_bytes)[..3].to_vec();
        o.set(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509))
            .set(CKA_TRUSTED, bool_attr(false))
            .set(
                CKA_CERTIFICATE_CATEGORY,
                ulong(CK_CERTIFICATE_CATEGORY_UNSPECIFIED),
            )
            .set(CKA_CHECK_VALUE, check)
            .set(CKA_START_DATE, Vec::new())
            .set(CKA_END_DATE, Vec::new())
            .set(CKA_VALUE, der_bytes.to_vec())
            .set(CKA_ID, id.to_vec())
            .set(CKA_SUBJECT, tbs.subject.to_der().ok()?)
            .set(CKA_ISSUER, tbs.issuer.to_der().ok()?)
            // CKA_SERIAL_NUMBER is the DER encoding of the INTEGER (v2.40 §4.6.3).
            .set(CKA_SERIAL_NUMBER, tbs.serial_number.to_der().ok()?)
            .set(CKA_URL, Vec::new())
            .set(CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Vec::new())
            .set(CKA_HASH_OF_ISSUER_PUBLIC_KEY, Vec::new())
            .set(CKA_JAVA_MIDP_SECURITY_DOMAIN, ulong(0))
            .set(
                CKA_PUBLIC_KEY_INFO,
                tbs.subject_public_key_info.to_der().ok()?,
            );
        Some(o)
    }

    /// The public key of a certificate, if its algorithm is supported.
    pub fn certificate_public_key(der_bytes: &[u8]) -> Option<PublicKey> {
        let cert = x509_cert::Certificate::from_der(der_bytes).ok()?;
        let spki_der = cert.tbs_certificate.subject_public_key_info.to_der().ok()?;
        let spki = spki::SubjectPublicKeyInfoRef::from_der(&spki_der).ok()?;
        PublicKey::from_spki(&spki)
    }

    /// The subject name DER of a certificate.
    pub fn certificate_subject(der_bytes: &[u8]) -> Option<Vec<u8>> {
        let cert = x509_cert::Certificate::from_der(der_bytes).ok()?;
        cert.tbs_certificate.subject.to_der().ok()
    }

    fn key_material(&mut self, key: &PublicKey) {
        if let (Some(n), Some(e)) = (key.modulus(), key.public_exponent()) {
            self.set(CKA_MODULUS, n)
                .set(CKA_PUBLIC_EXPONENT, e)
                .set(CKA_MODULUS_BITS, ulong(key.bits() as CK_ULONG));
        }
        if let Some(curve) = key.curve() {
            self.set(CKA_EC_PARAMS, curve.ec_params());
        }
        self.set(CKA_PUBLIC_KEY_INFO, key.spki_der());
    }

    /// A public-key object (v2.40 §4.8).
    pub fn public_key(key: &PublicKey, id: &[u8], label: &str, subject: Option<&[u8]>) -> Self {
        let mut o = Object::new(Visibility::Public);
        let rsa = key.key_type() == CKK_RSA;
        o.storage(CKO_PUBLIC_KEY, true, false, label);
        o.key_common(key.key_type(), id, !rsa);
        o.key_material(key);
        o.set(CKA_SUBJECT, subject.map(<[u8]>::to_vec).unwrap_or_default())
            .set(CKA_ENCRYPT, bool_attr(rsa))
            .set(CKA_VERIFY, bool_attr(true))
            .set(CKA_VERIFY_RECOVER, bool_attr(false))
            .set(CKA_WRAP, bool_attr(false))
            .set(CKA_TRUSTED, bool_attr(false));
        if let Some(point) = key.ec_point() {
            o.set(CKA_EC_POINT, point);
        }
        o
    }

    /// A private-key object (v2.40 §4.9): sensitive, never extractable.
    pub fn private_key(
        key: Arc<PrivateKey>,
        id: &[u8],
        label: &str,
        subject: Option<&[u8]>,
    ) -> Self {
        let public = key.public();
        let rsa = public.key_type() == CKK_RSA;
        let mut o = Object::new(Visibility::Private);
        o.storage(CKO_PRIVATE_KEY, true, true, label);
        o.key_common(public.key_type(), id, !rsa);
        o.key_material(&public);
        o.set(CKA_SUBJECT, subject.map(<[u8]>::to_vec).unwrap_or_default())
            .set(CKA_SENSITIVE, bool_attr(true))
            .set(CKA_ALWAYS_SENSITIVE, bool_attr(false))
            .set(CKA_EXTRACTABLE, bool_attr(false))
            .set(CKA_NEVER_EXTRACTABLE, bool_attr(false))
            .set(CKA_DECRYPT, bool_attr(rsa))
            .set(CKA_SIGN, bool_attr(true))
            .set(CKA_SIGN_RECOVER, bool_attr(false))
            .set(CKA_UNWRAP, bool_attr(false))
            .set(CKA_WRAP_WITH_TRUSTED, bool_attr(false))
            .set(CKA_ALWAYS_AUTHENTICATE, bool_attr(false));
        if rsa {
            for t in [
                CKA_PRIVATE_EXPONENT,
                CKA_PRIME_1,
                CKA_PRIME_2,
                CKA_EXPONENT_1,
                CKA_EXPONENT_2,
                CKA_COEFFICIENT,
            ] {
                o.sensitive(t);
            }
        } else {
            o.sensitive(CKA_VALUE);
        }
        o.key = Some(key);
        o
    }

    /// A derived generic secret (v2.40 §4.10) owned by `session`. Extractable and not sensitive
    /// unless the template asked otherwise.
    pub fn derived_secret(
        session: CK_SESSION_HANDLE,
        value: Zeroizing<Vec<u8>>,
        key_type: CK_KEY_TYPE,
        sensitive: bool,
        extractable: bool,
        label: &[u8],
        id: &[u8],
    ) -> Self {
        let mut o = Object::new(Visibility::Session(session));
        o.storage(CKO_SECRET_KEY, false, false, "");
        o.key_common(key_type, id, false);
        let len = value.len() as CK_ULONG;
        o.set(CKA_LABEL, label.to_vec())
            .set(CKA_VALUE_LEN, ulong(len))
            .set(CKA_SENSITIVE, bool_attr(sensitive))
            .set(CKA_ALWAYS_SENSITIVE, bool_attr(false))
            .set(CKA_EXTRACTABLE, bool_attr(extractable))
            .set(CKA_NEVER_EXTRACTABLE, bool_attr(false))
            .set(CKA_ENCRYPT, bool_attr(false))
            .set(CKA_DECRYPT, bool_attr(false))
            .set(CKA_SIGN, bool_attr(false))
            .set(CKA_VERIFY, bool_attr(false))
            .set(CKA_WRAP, bool_attr(false))
            .set(CKA_UNWRAP, bool_attr(false));
        if sensitive || !extractable {
            o.sensitive(CKA_VALUE);
        } else {
            o.attrs.insert(CKA_VALUE, AttrValue::Bytes(value));
        }
        o
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn derived_secret_value_is_readable_unless_sensitive() {
        let open = Object::derived_secret(
            7,
            Zeroizing::new(vec![1, 2, 3]),
            CKK_GENERIC_SECRET,
            false,
            true,
            b"",
            b"",
        );
        assert_eq!(open.attr(CKA_VALUE), AttrLookup::Value(&[1, 2, 3]));
        assert_eq!(open.class(), Some(CKO_SECRET_KEY));
        let closed = Object::derived_secret(
            7,
            Zeroizing::new(vec![1, 2, 3]),
            CKK_GENERIC_SECRET,
            true,
            true,
            b"",
            b"",
        );
        assert_eq!(closed.attr(CKA_VALUE), AttrLookup::Sensitive);
        assert_eq!(closed.attr(CKA_MODULUS), AttrLookup::Invalid);
    }

    #[test]
    fn template_matching_needs_every_attribute_equal() {
        let o = Object::derived_secret(
            1,
            Zeroizing::new(vec![9]),
            CKK_GENERIC_SECRET,
            false,
            true,
            b"x",
            b"id",
        );
        assert!(o.matches(&[]));
        assert!(o.matches(&[(CKA_CLASS, ulong(CKO_SECRET_KEY)), (CKA_ID, b"id".to_vec())]));
        assert!(!o.matches(&[(CKA_CLASS, ulong(CKO_PRIVATE_KEY))]));
        assert!(!o.matches(&[(CKA_MODULUS, vec![1])]));
    }
}
