//! Enrolment: the certificate request (PKCS#10, RFC 2986) a vendor or official takes to the
//! registration authority, with the company data of seed 000, signed by a key made on the token.
//!
//! Where NIK (the 16-digit national identity number) and NPWP (the tax number) go depends on
//! the CA, so it is a profile:
//! - `modern` (default): NIK in the subject's serialNumber (`NIK-3201…`); NPWP in the subject's
//!   organizationIdentifier as `VATID-<npwp>` (ETSI EN 319 412-1 semantics: NPWP is the
//!   taxpayer number VAT is registered under), or, when the CA defines one
//!   (`[enrollment] npwp_oid`), in a subjectAltName otherName of that type;
//! - `legacy`: the seed's layout — NPWP as a subjectAltName DNS entry, NIK ("KTP") as an extra
//!   request attribute: PKCS#9 unstructuredName `KTP-<nik>` (RFC 2985 allows it in requests),
//!   or the attribute type the CA names (`[enrollment] nik_oid`).

use const_oid::ObjectIdentifier as Oid;
use der::asn1::{Any, BitString, Ia5String, OctetString, SetOfVec};
use der::{Decode, Encode, Tag};
use serde::{Deserialize, Serialize};
use spki::{AlgorithmIdentifierOwned, SubjectPublicKeyInfoOwned};
use x509_cert::attr::{Attribute, AttributeTypeAndValue};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::name::{GeneralName, OtherName};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::request::{CertReq, CertReqInfo, Version};

use crate::token::{KeyPurpose, KeySpec};

/// Default request attribute for NIK/KTP in the legacy profile: PKCS#9 unstructuredName.
pub const DEFAULT_NIK_OID: &str = "1.2.840.113549.1.9.2";

const CN: Oid = Oid::new_unwrap("2.5.4.3");
const C: Oid = Oid::new_unwrap("2.5.4.6");
const L: Oid = Oid::new_unwrap("2.5.4.7");
const ST: Oid = Oid::new_unwrap("2.5.4.8");
const O: Oid = Oid::new_unwrap("2.5.4.10");
const OU: Oid = Oid::new_unwrap("2.5.4.11");
const SERIAL_NUMBER: Oid = Oid::new_unwrap("2.5.4.5");
const ORGANIZATION_IDENTIFIER: Oid = Oid::new_unwrap("2.5.4.97");
const EMAIL: Oid = Oid::new_unwrap("1.2.840.113549.1.9.1");
const EXTENSION_REQUEST: Oid = Oid::new_unwrap("1.2.840.113549.1.9.14");
const SUBJECT_ALT_NAME: Oid = Oid::new_unwrap("2.5.29.17");
const KEY_USAGE: Oid = Oid::new_unwrap("2.5.29.15");
const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");

/// Where NIK and NPWP go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Modern,
    Legacy,
}

/// `[enrollment]` in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollConfig {
    #[serde(default)]
    pub profile: Profile,
    /// otherName type for NPWP (modern profile); without it, organizationIdentifier.
    #[serde(default)]
    pub npwp_oid: Option<String>,
    /// Request attribute type for NIK (legacy profile).
    #[serde(default = "default_nik_oid")]
    pub nik_oid: String,
}

fn default_nik_oid() -> String {
    DEFAULT_NIK_OID.to_owned()
}

impl Default for EnrollConfig {
    fn default() -> Self {
        EnrollConfig {
            profile: Profile::default(),
            npwp_oid: None,
            nik_oid: default_nik_oid(),
        }
    }
}

/// The requester's data (seed 000: Nama, Email, Perusahaan, Bagian/Unit/Jabatan,
/// Kabupaten/Kota, Propinsi, NPWP Perusahaan, No KTP).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Applicant {
    pub name: String,
    pub email: String,
    pub org: String,
    pub unit: String,
    pub city: String,
    pub province: String,
    /// Normalised `NN.NNN.NNN.N-NNN.NNN` (15 digits) or 16 digits.
    pub npwp: Option<String>,
    /// 16 digits.
    pub nik: Option<String>,
}

/// A field the user must fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    /// The field's name without the CLI's dashes (`email`, `nik`, …), as the API names it.
    pub fn name(&self) -> &'static str {
        self.field.trim_start_matches('-')
    }

    /// A stable code for the problem, for programs (the API, the extension's messages):
    /// `empty`, `too_long`, `control_characters`, or `invalid` (a malformed email, NIK, NPWP).
    pub fn code(&self) -> &'static str {
        if self.problem == PROBLEM_EMPTY {
            "empty"
        } else if self.problem == PROBLEM_TOO_LONG {
            "too_long"
        } else if self.problem == PROBLEM_CONTROL {
            "control_characters"
        } else {
            "invalid"
        }
    }
}

const PROBLEM_EMPTY: &str = "must not be empty";
const PROBLEM_TOO_LONG: &str = "has more than 64 characters (X.520 upper bound)";
const PROBLEM_CONTROL: &str = "contains control characters";

fn field_error(field: &'static str, problem: impl Into<String>) -> FieldError {
    FieldError {
        field,
        problem: problem.into(),
    }
}

/// An email address as CAs accept it: ASCII `local@domain.tld`, no spaces.
pub fn check_email(email: &str) -> Result<(), FieldError> {
    let bad = |why: &str| {
        field_error(
            "--email",
            format!("{email:?} is not an email address ({why})"),
        )
    };
    if !email.is_ascii() {
        return Err(bad("only ASCII characters are allowed"));
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(bad("it has no @"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(bad("the part before @ is empty or too long"));
    }
    if local.contains([
        '@', ' ', '"', '(', ')', ',', ':', ';', '<', '>', '[', '\\', ']',
    ]) {
        return Err(bad("the part before @ has characters CAs refuse"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    {
        return Err(bad(
            "the domain after @ is not a domain name like perusahaan.co.id",
        ));
    }
    Ok(())
}

/// NIK: 16 digits — province/regency/district (6), birth date DDMMYY with 40 added to the day
/// for women (6), serial (4).
pub fn check_nik(nik: &str) -> Result<String, FieldError> {
    let digits: String = nik.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != 16 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(field_error(
            "--nik",
            format!("{nik:?} is not a NIK: it must be exactly 16 digits"),
        ));
    }
    let num = |r: std::ops::Range<usize>| digits[r].parse::<u32>().unwrap_or(0);
    let (day, month) = (num(6..8), num(8..10));
    let day_ok = (1..=31).contains(&day) || (41..=71).contains(&day);
    if !day_ok || !(1..=12).contains(&month) {
        return Err(field_error(
            "--nik",
            format!(
                "{nik:?} is not a valid NIK: digits 7-12 must be a birth date DDMMYY (day + 40 for women)"
            ),
        ));
    }
    if num(0..2) < 11 {
        return Err(field_error(
            "--nik",
            format!("{nik:?} is not a valid NIK: it must start with a province code (11-99)"),
        ));
    }
    Ok(digits)
}

/// NPWP: the 15-digit form `NN.NNN.NNN.N-NNN.NNN` (punctuation optional) or the 16-digit form
/// used since 2024. Returns the normalised form.
pub fn check_npwp(npwp: &str) -> Result<String, FieldError> {
    let digits: String = npwp.chars().filter(char::is_ascii_digit).collect();
    let allowed = npwp
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-' || c == ' ');
    match (allowed, digits.len()) {
        (true, 15) => Ok(format!(
            "{}.{}.{}.{}-{}.{}",
            &digits[0..2],
            &digits[2..5],
            &digits[5..8],
            &digits[8..9],
            &digits[9..12],
            &digits[12..15]
        )),
        (true, 16) => Ok(digits),
        _ => Err(field_error(
            "--npwp",
            format!(
                "{npwp:?} is not an NPWP: give 15 digits as NN.NNN.NNN.N-NNN.NNN or the 16-digit form"
            ),
        )),
    }
}

impl Applicant {
    /// Check every field; all problems at once.
    pub fn validate(mut self) -> Result<Self, Vec<FieldError>> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("--name", &self.name),
            ("--org", &self.org),
            ("--unit", &self.unit),
            ("--city", &self.city),
            ("--province", &self.province),
        ] {
            if value.trim().is_empty() {
                problems.push(field_error(field, PROBLEM_EMPTY));
            } else if value.chars().count() > 64 {
                problems.push(field_error(field, PROBLEM_TOO_LONG));
            } else if value.chars().any(char::is_control) {
                problems.push(field_error(field, PROBLEM_CONTROL));
            }
        }
        if let Err(e) = check_email(&self.email) {
            problems.push(e);
        }
        if let Some(n) = &self.nik {
            match check_nik(n) {
                Ok(v) => self.nik = Some(v),
                Err(e) => problems.push(e),
            }
        }
        if let Some(n) = &self.npwp {
            match check_npwp(n) {
                Ok(v) => self.npwp = Some(v),
                Err(e) => problems.push(e),
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(problems)
        }
    }
}

/// Why a request could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("encoding the request: {0}")]
    Der(#[from] der::Error),
    #[error("bad OID {0:?} in the [enrollment] config")]
    Oid(String),
    #[error("the token could not sign the request: {0}")]
    Sign(#[from] crate::token::TokenError),
}

fn any(tag: Tag, value: &str) -> Result<Any, der::Error> {
    Any::new(tag, value.as_bytes())
}

fn rdn(oid: Oid, value: Any) -> Result<RelativeDistinguishedName, der::Error> {
    let mut set = SetOfVec::new();
    set.insert(AttributeTypeAndValue { oid, value })?;
    Ok(RelativeDistinguishedName(set))
}

fn oid(text: &str) -> Result<Oid, EnrollError> {
    Oid::new(text).map_err(|_| EnrollError::Oid(text.to_owned()))
}

/// The request's subject: C, ST, L, O, OU, CN, emailAddress; in the modern profile also
/// serialNumber = NIK and (without an NPWP otherName type) organizationIdentifier = NPWP.
pub fn subject(a: &Applicant, config: &EnrollConfig) -> Result<Name, EnrollError> {
    let profile = config.profile;
    let mut rdns = vec![
        rdn(C, any(Tag::PrintableString, "ID")?)?,
        rdn(ST, any(Tag::Utf8String, &a.province)?)?,
        rdn(L, any(Tag::Utf8String, &a.city)?)?,
        rdn(O, any(Tag::Utf8String, &a.org)?)?,
        rdn(OU, any(Tag::Utf8String, &a.unit)?)?,
        rdn(CN, any(Tag::Utf8String, &a.name)?)?,
        rdn(EMAIL, any(Tag::Ia5String, &a.email)?)?,
    ];
    if let (Profile::Modern, Some(nik)) = (profile, &a.nik) {
        rdns.push(rdn(
            SERIAL_NUMBER,
            any(Tag::PrintableString, &format!("NIK-{nik}"))?,
        )?);
    }
    if let (Profile::Modern, Some(npwp), None) = (profile, &a.npwp, &config.npwp_oid) {
        rdns.push(rdn(
            ORGANIZATION_IDENTIFIER,
            any(Tag::Utf8String, &format!("VATID-{npwp}"))?,
        )?);
    }
    Ok(RdnSequence(rdns))
}

fn extension(id: Oid, value: &impl Encode) -> Result<Extension, der::Error> {
    Ok(Extension {
        extn_id: id,
        critical: false,
        extn_value: OctetString::new(value.to_der()?)?,
    })
}

/// Build the request and have `sign` sign the DER CertificationRequestInfo's digest.
pub fn build_request(
    a: &Applicant,
    config: &EnrollConfig,
    spec: KeySpec,
    purpose: KeyPurpose,
    spki_der: &[u8],
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, crate::token::TokenError>,
) -> Result<Vec<u8>, EnrollError> {
    let mut names = vec![GeneralName::Rfc822Name(Ia5String::new(&a.email)?)];
    let mut attributes = SetOfVec::new();
    match config.profile {
        Profile::Modern => {
            if let (Some(npwp), Some(type_id)) = (&a.npwp, &config.npwp_oid) {
                names.push(GeneralName::OtherName(OtherName {
                    type_id: oid(type_id)?,
                    value: any(Tag::Utf8String, npwp)?,
                }));
            }
        }
        Profile::Legacy => {
            if let Some(npwp) = &a.npwp {
                names.push(GeneralName::DnsName(Ia5String::new(npwp)?));
            }
            if let Some(nik) = &a.nik {
                let mut values = SetOfVec::new();
                values.insert(any(Tag::Utf8String, &format!("KTP-{nik}"))?)?;
                attributes.insert(Attribute {
                    oid: oid(&config.nik_oid)?,
                    values,
                })?;
            }
        }
    }
    // keyUsage the key is meant for (the CA decides; BSrE-style usage split).
    let bits: &[u8] = match (purpose, spec) {
        (KeyPurpose::Sign, _) => &[0x06, 0xC0], // digitalSignature, nonRepudiation
        (KeyPurpose::Encrypt, KeySpec::Rsa(_)) => &[0x05, 0x20], // keyEncipherment
        (KeyPurpose::Encrypt, _) => &[0x03, 0x08], // keyAgreement
    };
    let key_usage = BitString::new(bits[0], &bits[1..])?;
    let extensions = vec![
        extension(
            SUBJECT_ALT_NAME,
            &x509_cert::ext::pkix::SubjectAltName(names),
        )?,
        Extension {
            extn_id: KEY_USAGE,
            critical: true,
            extn_value: OctetString::new(key_usage.to_der()?)?,
        },
    ];
    let mut values = SetOfVec::new();
    values.insert(Any::encode_from(&extensions)?)?;
    attributes.insert(Attribute {
        oid: EXTENSION_REQUEST,
        values,
    })?;
    let info = CertReqInfo {
        version: Version::V1,
        subject: subject(a, config)?,
        public_key: SubjectPublicKeyInfoOwned::from_der(spki_der)?,
        attributes,
    };
    let (_, hash) = spec.signature();
    let digest = hash.digest(&info.to_der()?);
    let signature = sign(&digest)?;
    let algorithm = match spec {
        KeySpec::Rsa(_) => AlgorithmIdentifierOwned {
            oid: SHA256_WITH_RSA,
            parameters: Some(Any::null()),
        },
        KeySpec::P256 => AlgorithmIdentifierOwned {
            oid: ECDSA_SHA256,
            parameters: None,
        },
        KeySpec::P384 => AlgorithmIdentifierOwned {
            oid: ECDSA_SHA384,
            parameters: None,
        },
    };
    let req = CertReq {
        info,
        algorithm,
        signature: BitString::from_bytes(&signature)?,
    };
    Ok(req.to_der()?)
}

impl EnrollConfig {
    /// These settings with the profile a caller chose, if any (the config file's otherwise).
    pub fn with_profile(&self, profile: Option<Profile>) -> Self {
        let mut config = self.clone();
        if let Some(p) = profile {
            config.profile = p;
        }
        config
    }

    /// Refuse OIDs that do not parse, before a key is made for a request that cannot be built.
    pub fn check(&self) -> Result<(), EnrollError> {
        for text in self.npwp_oid.iter().chain([&self.nik_oid]) {
            oid(text)?;
        }
        Ok(())
    }
}

/// A key pair made on the token for an applicant, with its signed request.
#[derive(Debug)]
pub struct Enrolled {
    /// CKA_ID of the new key pair.
    pub key_id: Vec<u8>,
    /// The public key, DER SubjectPublicKeyInfo.
    pub spki_der: Vec<u8>,
    /// The PKCS#10 request, PEM.
    pub request_pem: String,
    /// The printable summary for the registration authority.
    pub summary: String,
}

/// Why [`enrol`] failed, with the wire code the CLI and the API both report.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct EnrolFailure {
    pub code: crate::protocol::ErrorCode,
    pub message: String,
}

impl From<crate::token::TokenError> for EnrolFailure {
    fn from(e: crate::token::TokenError) -> Self {
        EnrolFailure {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// What `segel enroll` and `POST /v1/enroll` do on the token: check that it can make `spec`
/// keys, log in with `pin` (checked by the token), make the key pair labelled `label`, and have
/// it sign its request built with `config`.
pub fn enrol(
    admin: &mut crate::token::TokenAdmin,
    pin: &dyn crate::pin::PinSource,
    applicant: &Applicant,
    config: &EnrollConfig,
    spec: KeySpec,
    purpose: KeyPurpose,
    label: &str,
) -> Result<Enrolled, EnrolFailure> {
    use crate::protocol::ErrorCode;
    let fail = |code, message: String| EnrolFailure { code, message };
    config
        .check()
        .map_err(|e| fail(ErrorCode::BadRequest, e.to_string()))?;
    let token = admin.description().label.clone();
    if !admin.can_generate(spec)? {
        return Err(fail(
            ErrorCode::MechanismUnsupported,
            format!("token {token:?} cannot generate {spec} keys; use another key type or token"),
        ));
    }
    admin.login(pin)?;
    let key = admin.generate_key_pair(spec, purpose, label)?;
    let made = |e: &dyn std::fmt::Display| {
        fail(
            ErrorCode::Internal,
            format!(
                "{e} (a key pair with id {} was made on the token)",
                hex::encode(&key.id)
            ),
        )
    };
    let request = build_request(applicant, config, spec, purpose, &key.spki_der, |digest| {
        admin.sign_with(&key, digest)
    })
    .map_err(|e| made(&e))?;
    let request_pem =
        der::pem::encode_string("CERTIFICATE REQUEST", der::pem::LineEnding::LF, &request)
            .map_err(|e| made(&e))?;
    Ok(Enrolled {
        summary: summary(applicant, spec, &token, &key.spki_der),
        key_id: key.id.clone(),
        spki_der: key.spki_der.clone(),
        request_pem,
    })
}

/// The printable summary to take to the registration authority.
pub fn summary(a: &Applicant, spec: KeySpec, token: &str, spki_der: &[u8]) -> String {
    let key = match spec {
        KeySpec::Rsa(bits) => format!("RSA {bits}"),
        KeySpec::P256 => "EC P-256".to_owned(),
        KeySpec::P384 => "EC P-384".to_owned(),
    };
    let mut s = String::from("PERMINTAAN SERTIFIKAT / CERTIFICATE REQUEST (PKCS#10)\n\n");
    for (label, value) in [
        ("Nama / Name", a.name.as_str()),
        ("Email", a.email.as_str()),
        ("Perusahaan / Organisation", a.org.as_str()),
        ("Bagian / Unit / Jabatan", a.unit.as_str()),
        ("Kabupaten / Kota", a.city.as_str()),
        ("Propinsi / Province", a.province.as_str()),
        ("NPWP", a.npwp.as_deref().unwrap_or("-")),
        ("NIK (No KTP)", a.nik.as_deref().unwrap_or("-")),
        ("Kunci / Key", key.as_str()),
        ("Token", token),
    ] {
        s.push_str(&format!("{label:<28}{value}\n"));
    }
    s.push_str(&format!(
        "{:<28}{}\n",
        "SHA-256 kunci publik",
        crate::certinfo::sha256_hex(spki_der)
    ));
    s.push_str(
        "\nBawa cetakan ini dan dokumen persyaratan ke Registration Authority.\n\
         Take this print-out and the required documents to the registration authority.\n",
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_with_a_reason() {
        assert!(check_email("budi@majujaya.co.id").is_ok());
        for bad in [
            "budi",
            "budi@",
            "@x.id",
            "budi@localhost",
            "bu di@x.id",
            "budi@x..id",
            "búdi@x.id",
        ] {
            let e = check_email(bad).unwrap_err();
            assert_eq!(e.field, "--email", "{bad}");
        }
    }

    #[test]
    fn nik_must_be_16_digits_with_a_birth_date() {
        assert_eq!(
            check_nik("3273 0112 0389 0003").unwrap(),
            "3273011203890003"
        );
        // a woman's NIK: day + 40
        assert!(check_nik("3273015505900002").is_ok());
        assert!(check_nik("344454545").is_err()); // the seed's 9-digit KTP
        assert!(check_nik("3273013201890003").is_err()); // day 32
        assert!(check_nik("3273011213010003").is_err()); // month 13
        assert!(check_nik("0273011203890003").is_err()); // no province 02
    }

    #[test]
    fn npwp_accepts_both_forms_and_normalises() {
        assert_eq!(
            check_npwp("22.222.222.2-222.222").unwrap(),
            "22.222.222.2-222.222"
        );
        assert_eq!(
            check_npwp("222222222222222").unwrap(),
            "22.222.222.2-222.222"
        );
        assert_eq!(check_npwp("3273011203890003").unwrap(), "3273011203890003");
        assert!(check_npwp("22.222.222.2-222.22").is_err());
        assert!(check_npwp("22/222/222/2").is_err());
    }

    #[test]
    fn applicant_reports_every_problem_at_once() {
        let a = Applicant {
            name: String::new(),
            email: "nope".into(),
            org: "PT X".into(),
            unit: "Direktur".into(),
            city: "Balikpapan".into(),
            province: "Kalimantan Timur".into(),
            npwp: Some("1".into()),
            nik: Some("2".into()),
        };
        let e = a.validate().unwrap_err();
        let fields: Vec<&str> = e.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["--name", "--email", "--nik", "--npwp"]);
        let coded: Vec<(&str, &str)> = e.iter().map(|e| (e.name(), e.code())).collect();
        assert_eq!(
            coded,
            [
                ("name", "empty"),
                ("email", "invalid"),
                ("nik", "invalid"),
                ("npwp", "invalid")
            ]
        );
    }

    #[test]
    fn long_and_control_character_fields_have_their_codes() {
        let a = Applicant {
            name: "N".repeat(65),
            email: "budi@majujaya.co.id".into(),
            org: "PT\u{7}X".into(),
            unit: "Direktur".into(),
            city: "Balikpapan".into(),
            province: "Kalimantan Timur".into(),
            npwp: None,
            nik: None,
        };
        let e = a.validate().unwrap_err();
        let coded: Vec<(&str, &str)> = e.iter().map(|e| (e.name(), e.code())).collect();
        assert_eq!(coded, [("name", "too_long"), ("org", "control_characters")]);
    }

    #[test]
    fn a_callers_profile_wins_and_bad_oids_are_refused_before_a_key_is_made() {
        let config = EnrollConfig {
            profile: Profile::Legacy,
            npwp_oid: Some("1.3.6.1.4.1.99999.1".to_owned()),
            ..EnrollConfig::default()
        };
        assert_eq!(config.with_profile(None).profile, Profile::Legacy);
        let modern = config.with_profile(Some(Profile::Modern));
        assert_eq!(modern.profile, Profile::Modern);
        assert_eq!(modern.npwp_oid, config.npwp_oid);
        assert!(config.check().is_ok());
        let bad = EnrollConfig {
            nik_oid: "not an oid".to_owned(),
            ..EnrollConfig::default()
        };
        assert!(bad.check().unwrap_err().to_string().contains("not an oid"));
    }

    #[test]
    fn default_oid_parses() {
        assert!(Oid::new(DEFAULT_NIK_OID).is_ok());
    }
}
