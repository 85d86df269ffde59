//! The per-install local CA and the daemon's server certificate (rcgen), and the rustls
//! server configuration.
//!
//! The CA carries critical name constraints (RFC 5280 §4.2.1.10) permitting only
//! `127.0.0.1/32`, `::1/128` and `localhost`: even if it is trusted by the user's browsers, it
//! can never vouch for another name. Its private key lives in memory just long enough to
//! sign the server certificate and is never written: nobody can issue anything else under it.
//! When the server certificate is missing, unreadable or expires within the renewal window, a
//! new CA and server certificate are made (the installer re-registers the new CA).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CidrSubnet, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::files::{DaemonFiles, write_private};

/// Validity of a new server certificate (and of its CA).
pub const CERT_VALIDITY_DAYS: u64 = 397;
/// Default renewal window: renew when the server certificate expires within this many days.
pub const DEFAULT_RENEW_DAYS: u64 = 30;

/// Problems making or loading the TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot make the local CA or server certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn days(n: u64) -> Duration {
    Duration::from_secs(n * 86_400)
}

fn random_serial() -> SerialNumber {
    let mut b = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    b[0] &= 0x7f; // positive INTEGER
    SerialNumber::from_slice(&b)
}

/// The shape of Segel's local CA: a CA for no one but the loopback names. Public so tests can
/// build a CA of the same shape whose key they keep.
pub fn ca_params(now: SystemTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Segel");
    dn.push(
        DnType::CommonName,
        format!("Segel local CA {}", time::OffsetDateTime::from(now).date()),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![
            GeneralSubtree::IpAddress(CidrSubnet::from_v4_prefix(Ipv4Addr::LOCALHOST.octets(), 32)),
            GeneralSubtree::IpAddress(CidrSubnet::from_v6_prefix(
                Ipv6Addr::LOCALHOST.octets(),
                128,
            )),
            GeneralSubtree::DnsName("localhost".to_owned()),
        ],
        excluded_subtrees: Vec::new(),
    });
    p.not_before = (now - Duration::from_secs(3600)).into();
    p.not_after = (now + days(CERT_VALIDITY_DAYS + 1)).into();
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    p
}

/// The server certificate's shape: loopback names only, TLS server authentication.
pub fn server_params(now: SystemTime, names: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Segel");
    dn.push(DnType::CommonName, "Segel local server");
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = (now - Duration::from_secs(3600)).into();
    p.not_after = (now + days(CERT_VALIDITY_DAYS)).into();
    p.serial_number = Some(random_serial());
    p.use_authority_key_identifier_extension = true;
    Ok(p)
}

/// The names the daemon's certificate is for.
pub const SERVER_NAMES: [&str; 3] = ["127.0.0.1", "::1", "localhost"];

/// A new CA and server certificate; the CA key is dropped before this returns.
/// Returns (CA certificate PEM, server certificate PEM, server key PEM).
pub fn issue(now: SystemTime) -> Result<(String, String, zeroize::Zeroizing<String>), TlsError> {
    let server_key = KeyPair::generate()?;
    let server = server_params(now, &SERVER_NAMES)?;
    let (ca_pem, server_pem) = {
        let ca_key = KeyPair::generate()?;
        let ca = ca_params(now);
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        let leaf = server.signed_by(&server_key, &issuer)?;
        // `issuer` (holding the CA key) is dropped here and never serialised.
        (ca_cert.pem(), leaf.pem())
    };
    Ok((
        ca_pem,
        server_pem,
        zeroize::Zeroizing::new(server_key.serialize_pem()),
    ))
}

/// When a certificate (PEM file, first certificate) expires; `None` if unreadable.
pub fn not_after(path: &Path) -> Option<SystemTime> {
    use der::Decode;
    let der = CertificateDer::from_pem_file(path).ok()?;
    let cert = x509_cert::Certificate::from_der(der.as_ref()).ok()?;
    Some(cert.tbs_certificate.validity.not_after.to_system_time())
}

/// Load the server certificate and key, making a new CA and certificate first when they are
/// missing, unreadable or expire within `renew_days`. Returns the certificate chain, the key,
/// and whether a new CA was made.
pub fn ensure(
    files: &DaemonFiles,
    renew_days: u64,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>, bool), TlsError> {
    let now = SystemTime::now();
    let fresh = not_after(&files.server_cert()).is_some_and(|t| t > now + days(renew_days))
        && files.ca_cert().is_file();
    if fresh && let Ok(loaded) = load(files) {
        return Ok((loaded.0, loaded.1, false));
    }
    tracing::info!(dir = %files.tls_dir().display(), "making a new local CA and server certificate");
    let (ca_pem, server_pem, key_pem) = issue(now)?;
    let write = |path: std::path::PathBuf, bytes: &[u8], mode| {
        write_private(&path, bytes, mode).map_err(|source| TlsError::Write {
            path: path.display().to_string(),
            source,
        })
    };
    write(files.server_key(), key_pem.as_bytes(), 0o600)?;
    write(files.server_cert(), server_pem.as_bytes(), 0o644)?;
    write(files.ca_cert(), ca_pem.as_bytes(), 0o644)?;
    let (chain, key) = load(files).map_err(|e| TlsError::Write {
        path: files.server_cert().display().to_string(),
        source: std::io::Error::other(e),
    })?;
    Ok((chain, key, true))
}

fn load(
    files: &DaemonFiles,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), rustls::pki_types::pem::Error> {
    let chain =
        CertificateDer::pem_file_iter(files.server_cert())?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(files.server_key())?;
    Ok((chain, key))
}

/// The ring crypto provider (the one provider built into this binary).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// rustls server configuration: HTTP/1.1 only (ALPN), no client certificates.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// rustls client configuration trusting only the CA in `ca_pem` (native host, tests, bench).
pub fn client_config(ca_pem: &[u8]) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        let cert = cert.map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
        roots.add(cert)?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_material_is_written_with_private_key_owner_only_and_no_ca_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let files = DaemonFiles::in_dir(dir.path().to_path_buf());
        files.ensure_dirs().unwrap();
        let (_, _, made) = ensure(&files, DEFAULT_RENEW_DAYS).unwrap();
        assert!(made);
        let mode = std::fs::metadata(files.server_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Only three files: no CA key anywhere.
        let mut names: Vec<String> = std::fs::read_dir(files.tls_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["ca.pem", "server.key", "server.pem"]);
        let ca = std::fs::read_to_string(files.ca_cert()).unwrap();
        assert!(!ca.contains("PRIVATE KEY"));
        // A second start reuses the material; a renewal window past its expiry renews it.
        let (_, _, made) = ensure(&files, DEFAULT_RENEW_DAYS).unwrap();
        assert!(!made);
        let before = std::fs::read(files.ca_cert()).unwrap();
        let (_, _, made) = ensure(&files, CERT_VALIDITY_DAYS + 1).unwrap();
        assert!(made);
        assert_ne!(before, std::fs::read(files.ca_cert()).unwrap());
    }
}
