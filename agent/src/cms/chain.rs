//! Certificate path validation for signers (RFC 5280 §6, reduced to what bid opening needs):
//! build a path from the signer to a configured trust anchor through the SignedData's and the
//! given intermediates, check each signature, validity at the signing time, CA constraints,
//! and the signer's key usage / extended key usage under Segel's document-signing policy.
//!
//! EKU policy: a signer certificate without EKU is accepted; with EKU it must list one of
//! document signing purposes — Adobe Authentic Documents (1.2.840.113583.1.1.5, the only EKU on
//! BSrE certificates), id-kp-documentSigning, Microsoft Document Signing, emailProtection or
//! anyExtendedKeyUsage. Unlike OpenSSL's default S/MIME purpose, emailProtection is not required.
//! Revocation (CRL/OCSP) is not checked here.

use std::time::SystemTime;

use der::Encode;
use serde::Serialize;
use x509_cert::Certificate;
use x509_cert::ext::pkix::BasicConstraints;

use super::cert::{self, KU_DIGITAL_SIGNATURE, KU_KEY_CERT_SIGN, KU_NON_REPUDIATION, PublicKey};
use super::oids;

/// Outcome of path building.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainStatus {
    /// A valid path to a trust anchor exists.
    Trusted,
    /// No path to any trust anchor (issuer missing or unknown).
    Untrusted,
    /// A path exists but a certificate on it is invalid (signature, validity, constraints).
    Invalid,
}

/// The signer certificate's validity at the time that matters (the signing time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// Within notBefore..notAfter.
    Valid,
    /// After notAfter.
    Expired,
    /// Before notBefore.
    NotYetValid,
}

/// Everything the opening report says about a signer's certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    /// Path status.
    pub status: ChainStatus,
    /// Subjects from the signer up to the anchor.
    pub path: Vec<String>,
    /// Signer certificate validity at the checked time.
    pub validity: Validity,
    /// Key usage allows signing (digitalSignature or nonRepudiation, or no extension).
    pub key_usage_ok: bool,
    /// Extended key usage allowed by the document-signing policy.
    pub eku_ok: bool,
    /// Human-readable problems found.
    pub problems: Vec<String>,
}

impl ChainReport {
    /// Trusted, valid and usable.
    pub fn ok(&self) -> bool {
        self.status == ChainStatus::Trusted
            && self.validity == Validity::Valid
            && self.key_usage_ok
            && self.eku_ok
    }
}

const ALLOWED_EKU: [const_oid::ObjectIdentifier; 5] = [
    oids::EKU_ADOBE_AUTHENTIC_DOCUMENTS,
    oids::EKU_DOCUMENT_SIGNING,
    oids::EKU_MS_DOCUMENT_SIGNING,
    oids::EKU_EMAIL_PROTECTION,
    oids::EKU_ANY,
];

fn validity(c: &Certificate, at: SystemTime) -> Validity {
    let v = &c.tbs_certificate.validity;
    if at < v.not_before.to_system_time() {
        Validity::NotYetValid
    } else if at > v.not_after.to_system_time() {
        Validity::Expired
    } else {
        Validity::Valid
    }
}

fn signed_by(child: &Certificate, issuer: &Certificate) -> Result<(), String> {
    if child.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Err("issuer name mismatch".into());
    }
    let key = PublicKey::from_cert(issuer).map_err(|e| e.to_string())?;
    let tbs = child.tbs_certificate.to_der().map_err(|e| e.to_string())?;
    let sig = child
        .signature
        .as_bytes()
        .ok_or_else(|| "signature has unused bits".to_string())?;
    cert::verify_signature(&key, &child.signature_algorithm, None, &tbs, sig)
}

fn is_ca(c: &Certificate) -> bool {
    let bc_ok = matches!(c.tbs_certificate.get::<BasicConstraints>(), Ok(Some((_, bc))) if bc.ca);
    let ku_ok = cert::key_usage(c).is_none_or(|ku| ku & KU_KEY_CERT_SIGN != 0);
    bc_ok && ku_ok
}

/// Validate `leaf` at time `at` against `anchors`, using `pool` as intermediates.
pub fn validate(
    leaf: &Certificate,
    pool: &[Certificate],
    anchors: &[Certificate],
    at: SystemTime,
) -> ChainReport {
    let mut problems = Vec::new();
    let validity_leaf = validity(leaf, at);
    match validity_leaf {
        Validity::Valid => {}
        Validity::Expired => problems.push(format!(
            "signer certificate expired on {}",
            leaf.tbs_certificate.validity.not_after
        )),
        Validity::NotYetValid => problems.push(format!(
            "signer certificate not valid before {}",
            leaf.tbs_certificate.validity.not_before
        )),
    }
    let key_usage_ok = match cert::key_usage(leaf) {
        None => true,
        Some(ku) => {
            let ok = ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION) != 0;
            if !ok {
                problems.push(format!(
                    "signer key usage {} does not allow signing",
                    cert::key_usage_names(ku)
                ));
            }
            ok
        }
    };
    let eku_ok = match cert::extended_key_usage(leaf) {
        None => true,
        Some(list) => {
            let ok = list.iter().any(|o| ALLOWED_EKU.contains(o));
            if !ok {
                let names: Vec<String> = list.iter().map(|o| o.to_string()).collect();
                problems.push(format!(
                    "signer extended key usage [{}] is not a document-signing purpose",
                    names.join(", ")
                ));
            }
            ok
        }
    };

    let mut path = vec![cert::subject(leaf)];
    let mut current = leaf.clone();
    let mut status = ChainStatus::Untrusted;
    let mut invalid = false;
    for _depth in 0..8 {
        if anchors.iter().any(|a| a == &current) {
            status = ChainStatus::Trusted;
            break;
        }
        // An anchor that signed the current certificate ends the path.
        if let Some(a) = anchors.iter().find(|a| signed_by(&current, a).is_ok()) {
            path.push(cert::subject(a));
            if validity(a, at) != Validity::Valid {
                problems.push(format!(
                    "trust anchor {} not valid at that time",
                    cert::subject(a)
                ));
                invalid = true;
            }
            status = ChainStatus::Trusted;
            break;
        }
        let next = pool.iter().find(|c| {
            *c != &current
                && c.tbs_certificate.subject == current.tbs_certificate.issuer
                && !path.contains(&cert::subject(c))
        });
        let Some(next) = next else {
            problems.push(format!(
                "no trusted issuer found for {} (issuer {})",
                cert::subject(&current),
                current.tbs_certificate.issuer
            ));
            break;
        };
        if let Err(e) = signed_by(&current, next) {
            problems.push(format!(
                "signature on {} by {} invalid: {e}",
                cert::subject(&current),
                cert::subject(next)
            ));
            invalid = true;
            break;
        }
        if !is_ca(next) {
            problems.push(format!("{} is not a CA certificate", cert::subject(next)));
            invalid = true;
        }
        if validity(next, at) != Validity::Valid {
            problems.push(format!(
                "intermediate {} not valid at that time",
                cert::subject(next)
            ));
            invalid = true;
        }
        path.push(cert::subject(next));
        current = next.clone();
    }
    if invalid {
        status = ChainStatus::Invalid;
    }
    ChainReport {
        status,
        path,
        validity: validity_leaf,
        key_usage_ok,
        eku_ok,
        problems,
    }
}
