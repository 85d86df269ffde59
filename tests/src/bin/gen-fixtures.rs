//! Generates the test PKI in `tests/fixtures/`, shaped like Indonesia's BSrE (see MISSION.md,
//! "certificate profile"): an RSA-4096 root, an RSA-4096 issuing CA signing with
//! sha384WithRSAEncryption, vendor signing certificates (digitalSignature + nonRepudiation only,
//! EKU Adobe Authentic Documents only, Indonesian policy OIDs) and Pokja encryption certificates.
//!
//! Run: `cargo run -p segel-tests --bin gen-fixtures -- tests/fixtures`
//!
//! Output is deterministic: every key comes from an RNG seeded with the fixture's name, RSA
//! PKCS#1 v1.5 signatures are deterministic, so regenerating rewrites identical files. These keys are
//! public test material and must never be trusted anywhere.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc3280, rfc4519, rfc5280};
use der::asn1::{GeneralizedTime, Ia5String, SetOfVec};
use der::referenced::OwnedToRef;
use der::{Any, DateTime, Encode, EncodePem, Tag, pem::LineEnding};
use pkcs8::EncodePrivateKey;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use segel_tests::fixtures::{KeyType, ManifestEntry, Role, Usage};
use sha2::{Digest, Sha256, Sha384};
use spki::{EncodePublicKey, SubjectPublicKeyInfoOwned};
use x509_cert::Certificate;
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::builder::{Builder, CertificateBuilder, Profile};
use x509_cert::ext::pkix::crl::dp::DistributionPoint;
use x509_cert::ext::pkix::name::{DistributionPointName, GeneralName};
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, AuthorityKeyIdentifier, CrlDistributionPoints,
    ExtendedKeyUsage, KeyUsage, KeyUsages, SubjectKeyIdentifier,
};
use x509_cert::ext::pkix::{CertificatePolicies, certpolicy::PolicyInformation};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::time::{Time, Validity};

/// Adobe Authentic Documents Trust: the only EKU on BSrE signing certificates.
const EKU_ADOBE_AUTHENTIC_DOCUMENTS: &str = "1.2.840.113583.1.1.5";
/// Policy OIDs seen on BSrE user certificates (Indonesian arc 2.16.360).
const BSRE_POLICIES: &[&str] = &[
    "2.16.360.1.1.1.3.11.2.1",
    "2.16.360.1.1.1.3.11",
    "2.16.360.1.1.1.7.1",
    "2.16.360.1.1.1.5.1.4.3",
];
const VALIDATION_HOST: &str = "http://validation.example.invalid";

#[derive(Clone, Copy, Debug)]
enum KeySpec {
    Rsa(usize),
    P256,
    P384,
}

/// Which certificate profile a fixture gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Root,
    Issuing,
    /// BSrE signing profile.
    Vendor,
    /// Committee encryption profile.
    Pokja,
}

#[derive(Debug)]
struct Spec {
    name: &'static str,
    kind: Kind,
    key: KeySpec,
    /// RFC 4514 order (most specific first).
    subject: &'static [(&'static str, &'static str)],
    not_before: (u16, u8, u8),
    not_after: (u16, u8, u8),
    what: &'static str,
}

const VENDOR_VALIDITY: ((u16, u8, u8), (u16, u8, u8)) = ((2025, 1, 1), (2035, 1, 1));

fn specs() -> Vec<Spec> {
    let (vnb, vna) = VENDOR_VALIDITY;
    let leaf = |name, kind, key, subject, what| Spec {
        name,
        kind,
        key,
        subject,
        not_before: vnb,
        not_after: vna,
        what,
    };
    vec![
        Spec {
            name: "root-ca",
            kind: Kind::Root,
            key: KeySpec::Rsa(4096),
            subject: &[
                ("CN", "Segel Test Root CA DS G1"),
                ("O", "Segel Test"),
                ("C", "ID"),
            ],
            not_before: (2018, 1, 1),
            not_after: (2038, 1, 1),
            what: "root CA, RSA-4096, self-signed (sha384WithRSAEncryption), like \"Root CA Indonesia DS G1\"",
        },
        Spec {
            name: "issuing-ca",
            kind: Kind::Issuing,
            key: KeySpec::Rsa(4096),
            subject: &[
                ("CN", "Segel Test CA DS G1"),
                ("O", "Segel Test"),
                ("C", "ID"),
            ],
            not_before: (2018, 1, 1),
            not_after: (2038, 1, 1),
            what: "issuing CA, RSA-4096, signed by root-ca with sha384WithRSAEncryption, pathLen 0, like \"BSRE CA DS G1\"",
        },
        leaf(
            "vendor-rsa2048",
            Kind::Vendor,
            KeySpec::Rsa(2048),
            &[
                ("CN", "Budi Santoso"),
                ("emailAddress", "budi.santoso@majujaya.example"),
                ("O", "PT Maju Jaya Konstruksi"),
                ("L", "Jakarta Selatan"),
                ("ST", "DKI Jakarta"),
                ("C", "ID"),
            ],
            "vendor signing certificate, RSA-2048 (the common BSrE case)",
        ),
        leaf(
            "vendor-rsa3072",
            Kind::Vendor,
            KeySpec::Rsa(3072),
            &[
                ("CN", "Siti Rahmawati"),
                ("emailAddress", "siti.rahmawati@sinarabadi.example"),
                ("O", "CV Sinar Abadi"),
                ("L", "Surabaya"),
                ("ST", "Jawa Timur"),
                ("C", "ID"),
            ],
            "vendor signing certificate, RSA-3072",
        ),
        leaf(
            "vendor-p256",
            Kind::Vendor,
            KeySpec::P256,
            &[
                ("CN", "Agus Wijaya"),
                ("emailAddress", "agus.wijaya@nusantarateknik.example"),
                ("O", "PT Nusantara Teknik Mandiri"),
                ("L", "Bandung"),
                ("ST", "Jawa Barat"),
                ("C", "ID"),
            ],
            "vendor signing certificate, EC P-256",
        ),
        leaf(
            "vendor-p384",
            Kind::Vendor,
            KeySpec::P384,
            &[
                ("CN", "Dewi Lestari"),
                ("emailAddress", "dewi.lestari@karyabersama.example"),
                ("O", "PT Karya Bersama Sejahtera"),
                ("L", "Medan"),
                ("ST", "Sumatera Utara"),
                ("C", "ID"),
            ],
            "vendor signing certificate, EC P-384",
        ),
        leaf(
            "pokja-rsa2048",
            Kind::Pokja,
            KeySpec::Rsa(2048),
            &[
                ("CN", "Ahmad Fauzi"),
                ("emailAddress", "ahmad.fauzi@lpse.bandung.example"),
                ("OU", "Pokja Pemilihan 3"),
                ("O", "LPSE Kota Bandung"),
                ("L", "Bandung"),
                ("ST", "Jawa Barat"),
                ("C", "ID"),
            ],
            "Pokja encryption certificate, RSA-2048 (keyEncipherment + dataEncipherment)",
        ),
        leaf(
            "pokja-rsa3072",
            Kind::Pokja,
            KeySpec::Rsa(3072),
            &[
                ("CN", "Sri Wahyuni"),
                ("emailAddress", "sri.wahyuni@lpse.bandung.example"),
                ("OU", "Pokja Pemilihan 3"),
                ("O", "LPSE Kota Bandung"),
                ("L", "Bandung"),
                ("ST", "Jawa Barat"),
                ("C", "ID"),
            ],
            "Pokja encryption certificate, RSA-3072 (keyEncipherment + dataEncipherment)",
        ),
        leaf(
            "pokja-p256",
            Kind::Pokja,
            KeySpec::P256,
            &[
                ("CN", "Yusuf Hidayat"),
                ("emailAddress", "yusuf.hidayat@lpse.bandung.example"),
                ("OU", "Pokja Pemilihan 3"),
                ("O", "LPSE Kota Bandung"),
                ("L", "Bandung"),
                ("ST", "Jawa Barat"),
                ("C", "ID"),
            ],
            "Pokja encryption certificate, EC P-256 (keyAgreement)",
        ),
        leaf(
            "pokja-p384",
            Kind::Pokja,
            KeySpec::P384,
            &[
                ("CN", "Nur Aini"),
                ("emailAddress", "nur.aini@lpse.jakarta.example"),
                ("OU", "Pokja Pemilihan 1"),
                ("O", "LPSE Provinsi DKI Jakarta"),
                ("L", "Jakarta Pusat"),
                ("ST", "DKI Jakarta"),
                ("C", "ID"),
            ],
            "Pokja encryption certificate, EC P-384 (keyAgreement)",
        ),
        Spec {
            name: "vendor-expired",
            kind: Kind::Vendor,
            key: KeySpec::Rsa(2048),
            subject: &[
                ("CN", "Hendra Gunawan"),
                ("emailAddress", "hendra.gunawan@lamajaya.example"),
                ("O", "CV Lama Jaya"),
                ("L", "Semarang"),
                ("ST", "Jawa Tengah"),
                ("C", "ID"),
            ],
            not_before: (2020, 1, 1),
            not_after: (2021, 1, 1),
            what: "vendor signing certificate, RSA-2048, EXPIRED (2020-01-01..2021-01-01)",
        },
        Spec {
            name: "vendor-notyet",
            kind: Kind::Vendor,
            key: KeySpec::P256,
            subject: &[
                ("CN", "Rina Kusuma"),
                ("emailAddress", "rina.kusuma@masadepan.example"),
                ("O", "PT Masa Depan Gemilang"),
                ("L", "Makassar"),
                ("ST", "Sulawesi Selatan"),
                ("C", "ID"),
            ],
            not_before: (2090, 1, 1),
            not_after: (2092, 1, 1),
            what: "vendor signing certificate, EC P-256, NOT YET VALID (2090-01-01..2092-01-01)",
        },
    ]
}

enum Key {
    Rsa(Box<RsaPrivateKey>),
    P256(p256::SecretKey),
    P384(p384::SecretKey),
}

impl Key {
    fn generate(spec: &KeySpec, rng: &mut StdRng) -> Result<Self> {
        Ok(match spec {
            KeySpec::Rsa(bits) => Key::Rsa(Box::new(RsaPrivateKey::new(rng, *bits)?)),
            KeySpec::P256 => Key::P256(p256::SecretKey::random(rng)),
            KeySpec::P384 => Key::P384(p384::SecretKey::random(rng)),
        })
    }

    fn spki(&self) -> Result<SubjectPublicKeyInfoOwned> {
        let der = match self {
            Key::Rsa(k) => k.to_public_key().to_public_key_der()?,
            Key::P256(k) => k.public_key().to_public_key_der()?,
            Key::P384(k) => k.public_key().to_public_key_der()?,
        };
        Ok(SubjectPublicKeyInfoOwned::try_from(der.as_bytes())?)
    }

    fn pkcs8_pem(&self) -> Result<String> {
        let pem = match self {
            Key::Rsa(k) => k.to_pkcs8_pem(LineEnding::LF)?,
            Key::P256(k) => k.to_pkcs8_pem(LineEnding::LF)?,
            Key::P384(k) => k.to_pkcs8_pem(LineEnding::LF)?,
        };
        Ok(pem.to_string())
    }

    fn rsa(&self) -> Result<&RsaPrivateKey> {
        match self {
            Key::Rsa(k) => Ok(k),
            _ => bail!("a CA key must be RSA"),
        }
    }
}

struct Issued {
    key: Key,
    cert: Certificate,
}

fn main() -> Result<()> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .context("usage: gen-fixtures <output dir>   (normally tests/fixtures)")?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let specs = specs();
    let mut manifest = Vec::new();
    let mut root: Option<Issued> = None;
    let mut issuing: Option<Issued> = None;
    for spec in &specs {
        let started = std::time::Instant::now();
        let mut rng =
            StdRng::from_seed(Sha256::digest(format!("segel-fixture:{}", spec.name)).into());
        let key = Key::generate(&spec.key, &mut rng)?;
        let (cert, issuer_name) = match spec.kind {
            Kind::Root => (build_ca(spec, &key, None)?, spec.name),
            Kind::Issuing => {
                let root = root.as_ref().context("root-ca must come first")?;
                (build_ca(spec, &key, Some(root))?, "root-ca")
            }
            Kind::Vendor | Kind::Pokja => {
                let ca = issuing
                    .as_ref()
                    .context("issuing-ca must come before leaves")?;
                (build_leaf(spec, &key, ca)?, "issuing-ca")
            }
        };
        let der = cert.to_der()?;
        write(
            &out,
            &format!("{}.key.pem", spec.name),
            key.pkcs8_pem()?.as_bytes(),
        )?;
        write(
            &out,
            &format!("{}.crt.pem", spec.name),
            cert.to_pem(LineEnding::LF)?.as_bytes(),
        )?;
        write(&out, &format!("{}.crt.der", spec.name), &der)?;
        manifest.push(manifest_entry(spec, &cert, &der, issuer_name));
        eprintln!(
            "{:<16} {:>6.1} s",
            spec.name,
            started.elapsed().as_secs_f64()
        );
        match spec.kind {
            Kind::Root => root = Some(Issued { key, cert }),
            Kind::Issuing => issuing = Some(Issued { key, cert }),
            Kind::Vendor | Kind::Pokja => {}
        }
    }

    let (Some(root), Some(issuing)) = (root, issuing) else {
        bail!("no CA generated");
    };
    let chain = format!(
        "{}{}",
        issuing.cert.to_pem(LineEnding::LF)?,
        root.cert.to_pem(LineEnding::LF)?
    );
    write(&out, "chain.pem", chain.as_bytes())?;
    let mut json = serde_json::to_string_pretty(&manifest)?;
    json.push('\n');
    write(&out, "manifest.json", json.as_bytes())?;
    write(&out, "README.md", readme(&specs).as_bytes())?;
    Ok(())
}

fn write(dir: &Path, file: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}

fn date(d: (u16, u8, u8)) -> Result<Time> {
    let dt = DateTime::new(d.0, d.1, d.2, 0, 0, 0)?;
    // The builder turns dates before 2050 into UTCTime (RFC 5280 §4.1.2.5).
    Ok(Time::GeneralTime(GeneralizedTime::from_date_time(dt)))
}

fn validity(spec: &Spec) -> Result<Validity> {
    Ok(Validity {
        not_before: date(spec.not_before)?,
        not_after: date(spec.not_after)?,
    })
}

/// Serial: 16 bytes from the name's hash, positive and without a leading zero byte.
fn serial(spec: &Spec) -> Result<SerialNumber> {
    let mut bytes: [u8; 16] = Sha256::digest(format!("segel-serial:{}", spec.name))[..16]
        .try_into()
        .context("hash too short")?;
    bytes[0] = (bytes[0] & 0x7f) | 0x10;
    Ok(SerialNumber::new(&bytes)?)
}

/// Builds a Name from RFC 4514-ordered pairs (the DER sequence is the reverse order). Country is a
/// PrintableString and emailAddress an IA5String as RFC 5280 requires; the rest UTF8String.
fn name(pairs: &[(&str, &str)]) -> Result<Name> {
    let mut rdns = Vec::new();
    for (key, value) in pairs.iter().rev() {
        let (oid, tag): (ObjectIdentifier, Tag) = match *key {
            "CN" => (rfc4519::CN, Tag::Utf8String),
            "O" => (rfc4519::O, Tag::Utf8String),
            "OU" => (rfc4519::OU, Tag::Utf8String),
            "L" => (rfc4519::L, Tag::Utf8String),
            "ST" => (rfc4519::ST, Tag::Utf8String),
            "C" => (rfc4519::C, Tag::PrintableString),
            "emailAddress" => (rfc3280::EMAIL_ADDRESS, Tag::Ia5String),
            other => bail!("unknown attribute {other}"),
        };
        let atv = AttributeTypeAndValue {
            oid,
            value: Any::new(tag, value.as_bytes())?,
        };
        rdns.push(RelativeDistinguishedName(SetOfVec::try_from(vec![atv])?));
    }
    Ok(RdnSequence(rdns))
}

fn uri(s: &str) -> Result<GeneralName> {
    Ok(GeneralName::UniformResourceIdentifier(Ia5String::new(s)?))
}

fn crl_dp(path: &str) -> Result<CrlDistributionPoints> {
    Ok(CrlDistributionPoints(vec![DistributionPoint {
        distribution_point: Some(DistributionPointName::FullName(vec![uri(&format!(
            "{VALIDATION_HOST}/{path}"
        ))?])),
        reasons: None,
        crl_issuer: None,
    }]))
}

fn aia(ca_cert: &str) -> Result<AuthorityInfoAccessSyntax> {
    Ok(AuthorityInfoAccessSyntax(vec![
        AccessDescription {
            access_method: rfc5280::ID_AD_OCSP,
            access_location: uri(&format!("{VALIDATION_HOST}/ocsp"))?,
        },
        AccessDescription {
            access_method: rfc5280::ID_AD_CA_ISSUERS,
            access_location: uri(&format!("{VALIDATION_HOST}/{ca_cert}"))?,
        },
    ]))
}

fn oid(s: &str) -> Result<ObjectIdentifier> {
    ObjectIdentifier::from_str(s).with_context(|| format!("bad OID {s}"))
}

/// Root (self-signed) or issuing CA, signed with sha384WithRSAEncryption.
fn build_ca(spec: &Spec, key: &Key, parent: Option<&Issued>) -> Result<Certificate> {
    let subject = name(spec.subject)?;
    let profile = match parent {
        None => Profile::Root,
        Some(p) => Profile::SubCA {
            issuer: p.cert.tbs_certificate.subject.clone(),
            path_len_constraint: Some(0),
        },
    };
    let signer_key = match parent {
        None => key.rsa()?.clone(),
        Some(p) => p.key.rsa()?.clone(),
    };
    let signer = SigningKey::<Sha384>::new(signer_key);
    let mut builder = CertificateBuilder::new(
        profile,
        serial(spec)?,
        validity(spec)?,
        subject,
        key.spki()?,
        &signer,
    )?;
    if parent.is_some() {
        builder.add_extension(&crl_dp("root-ca.crl")?)?;
        builder.add_extension(&aia("root-ca.crt")?)?;
    }
    Ok(builder.build::<rsa::pkcs1v15::Signature>()?)
}

/// Vendor or Pokja certificate, signed by the issuing CA with sha256WithRSAEncryption.
fn build_leaf(spec: &Spec, key: &Key, ca: &Issued) -> Result<Certificate> {
    let subject = name(spec.subject)?;
    let spki = key.spki()?;
    let signer = SigningKey::<Sha256>::new(ca.key.rsa()?.clone());
    // Manual profile: the builder's Leaf profile always sets digitalSignature + nonRepudiation,
    // which an encryption-only certificate must not have.
    let profile = Profile::Manual {
        issuer: Some(ca.cert.tbs_certificate.subject.clone()),
    };
    let mut builder = CertificateBuilder::new(
        profile,
        serial(spec)?,
        validity(spec)?,
        subject,
        spki.clone(),
        &signer,
    )?;
    builder.add_extension(&SubjectKeyIdentifier::try_from(spki.owned_to_ref())?)?;
    builder.add_extension(&AuthorityKeyIdentifier::try_from(
        ca.cert
            .tbs_certificate
            .subject_public_key_info
            .owned_to_ref(),
    )?)?;
    let (usage, eku) = match (spec.kind, spec.key) {
        (Kind::Vendor, _) => (
            KeyUsages::DigitalSignature | KeyUsages::NonRepudiation,
            oid(EKU_ADOBE_AUTHENTIC_DOCUMENTS)?,
        ),
        (Kind::Pokja, KeySpec::Rsa(_)) => (
            KeyUsages::KeyEncipherment | KeyUsages::DataEncipherment,
            rfc5280::ID_KP_EMAIL_PROTECTION,
        ),
        (Kind::Pokja, KeySpec::P256 | KeySpec::P384) => (
            KeyUsages::KeyAgreement.into(),
            rfc5280::ID_KP_EMAIL_PROTECTION,
        ),
        (Kind::Root | Kind::Issuing, _) => bail!("{} is not a leaf", spec.name),
    };
    // KeyUsage is critical (x509-cert always marks it so); ExtendedKeyUsage is critical because it
    // does not contain anyExtendedKeyUsage — exactly the BSrE profile.
    builder.add_extension(&KeyUsage(usage))?;
    builder.add_extension(&ExtendedKeyUsage(vec![eku]))?;
    let policies = BSRE_POLICIES
        .iter()
        .map(|p| {
            Ok(PolicyInformation {
                policy_identifier: oid(p)?,
                policy_qualifiers: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    builder.add_extension(&CertificatePolicies(policies))?;
    builder.add_extension(&crl_dp("issuing-ca.crl")?)?;
    builder.add_extension(&aia("issuing-ca.crt")?)?;
    Ok(builder.build::<rsa::pkcs1v15::Signature>()?)
}

fn manifest_entry(spec: &Spec, cert: &Certificate, der: &[u8], issuer: &str) -> ManifestEntry {
    let (key_type, key_bits, curve) = match spec.key {
        KeySpec::Rsa(bits) => (KeyType::Rsa, bits as u32, None),
        KeySpec::P256 => (KeyType::Ec, 256, Some("P-256".to_owned())),
        KeySpec::P384 => (KeyType::Ec, 384, Some("P-384".to_owned())),
    };
    let (role, usage) = match spec.kind {
        Kind::Root | Kind::Issuing => (Role::Ca, vec![]),
        Kind::Vendor => (Role::Vendor, vec![Usage::Sign]),
        Kind::Pokja => (Role::Pokja, vec![Usage::Decrypt]),
    };
    let validity = &cert.tbs_certificate.validity;
    ManifestEntry {
        name: spec.name.to_owned(),
        role,
        key_type,
        key_bits,
        curve,
        usage,
        subject: rfc4514(spec.subject),
        issuer: issuer.to_owned(),
        serial: hex::encode(cert.tbs_certificate.serial_number.as_bytes()),
        not_before: validity.not_before.to_date_time().to_string(),
        not_after: validity.not_after.to_date_time().to_string(),
        fingerprint_sha256: hex::encode(Sha256::digest(der)),
    }
}

/// RFC 4514 string with OpenSSL's attribute names (`openssl x509 -nameopt RFC2253` prints the
/// same); x509-cert's own Display writes `EMAIL=` for emailAddress.
fn rfc4514(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut escaped = String::new();
            let last = v.chars().count().saturating_sub(1);
            for (i, c) in v.chars().enumerate() {
                let edge = (i == 0 && (c == ' ' || c == '#')) || (i == last && c == ' ');
                if edge || matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\') {
                    escaped.push('\\');
                }
                escaped.push(c);
            }
            format!("{k}={escaped}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn readme(specs: &[Spec]) -> String {
    let mut s = String::from(
        "# Test PKI fixtures\n\n\
         Generated by `tests/src/bin/gen-fixtures.rs` — never edit by hand. Regenerate with\n\n\
         ```\ncargo run -p segel-tests --bin gen-fixtures -- tests/fixtures\n```\n\n\
         Generation is deterministic (keys come from an RNG seeded with each fixture's name), so\n\
         regenerating rewrites identical files. These private keys are public: trust them nowhere.\n\n\
         The PKI is shaped like Indonesia's BSrE: `root-ca` (RSA-4096, self-signed, 2018–2038) →\n\
         `issuing-ca` (RSA-4096, sha384WithRSAEncryption, pathLen 0) → user certificates\n\
         (sha256WithRSAEncryption, 2025-01-01..2035-01-01 unless stated).\n\n\
         - Vendor (signing) profile: keyUsage critical digitalSignature + nonRepudiation ONLY;\n\
         \x20 extendedKeyUsage critical 1.2.840.113583.1.1.5 (Adobe Authentic Documents) ONLY, so\n\
         \x20 `openssl cms -verify` needs `-purpose any`; certificatePolicies 2.16.360.1.1.1.3.11.2.1,\n\
         \x20 2.16.360.1.1.1.3.11, 2.16.360.1.1.1.7.1, 2.16.360.1.1.1.5.1.4.3; CRL distribution point\n\
         \x20 and AIA (OCSP, caIssuers) under http://validation.example.invalid/; SKI and AKI.\n\
         - Pokja (committee encryption) profile: same, but keyUsage critical keyEncipherment +\n\
         \x20 dataEncipherment (RSA) or keyAgreement (EC), extendedKeyUsage critical emailProtection.\n\n\
         ## Files\n\n\
         For each fixture NAME: `NAME.key.pem` (unencrypted PKCS#8 PEM), `NAME.crt.pem`, `NAME.crt.der`.\n\n\
         | NAME | what |\n|---|---|\n",
    );
    for spec in specs {
        let _ = writeln!(s, "| `{}` | {} |", spec.name, spec.what);
    }
    s.push_str(
        "\nAlso:\n\n\
         - `chain.pem`: `issuing-ca` then `root-ca` (PEM).\n\
         - `manifest.json`: one entry per fixture: `name`, `role` (`ca`/`vendor`/`pokja`), `key_type`\n\
         \x20 (`rsa`/`ec`), `key_bits` (RSA bits or curve size), `curve` (null, `P-256`, `P-384`),\n\
         \x20 `usage` (subset of `sign`, `decrypt`, from the key usage), `subject` (RFC 4514, as\n\
         \x20 `openssl x509 -noout -subject -nameopt RFC2253` prints it),\n\
         \x20 `issuer` (fixture name), `serial` (hex), `not_before`/`not_after` (RFC 3339),\n\
         \x20 `fingerprint_sha256` (hex of the certificate DER). Read it with\n\
         \x20 `segel_tests::fixtures::manifest()`.\n\n\
         Check: `openssl verify -CAfile root-ca.crt.pem -untrusted issuing-ca.crt.pem vendor-rsa2048.crt.pem`.\n\
         A CMS signature by a vendor key verifies with `openssl cms -verify -binary -inform DER -in S\n\
         -CAfile chain.pem -purpose any`; without `-purpose any` OpenSSL 3.0 says \"unsuitable\n\
         certificate purpose\" (and its `cms` has no `-untrusted`, hence the whole chain as CAfile).\n",
    );
    s
}
