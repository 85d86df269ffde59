//! Trust anchors and certificate chains for signing and verifying bids.
//!
//! Anchors come from the config file (`trust_anchors = [PATH, ...]`, files or folders), the
//! folder `$XDG_CONFIG_HOME/segel/trust/`, and `--ca FILE` on the command line. A file may be
//! PEM (one or more certificates) or DER.

use std::path::{Path, PathBuf};

use der::Decode;
use x509_cert::Certificate;

use crate::cms::cert::pem_certificates;
use crate::cms::verify::VerifyOptions;

/// Why a trust file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot use certificate file {path}: {reason}")]
pub struct TrustError {
    pub path: PathBuf,
    pub reason: String,
}

/// Certificates (DER) read from a PEM or DER file, or from every `*.pem`, `*.crt`, `*.cer`
/// and `*.der` file of a folder (sorted by name, so the order is stable).
pub fn load_certificates(path: &Path) -> Result<Vec<Vec<u8>>, TrustError> {
    let err = |reason: String| TrustError {
        path: path.to_path_buf(),
        reason,
    };
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| ["pem", "crt", "cer", "der"].contains(&e))
            })
            .collect();
        files.sort();
        let mut all = Vec::new();
        for f in files {
            all.extend(load_certificates(&f)?);
        }
        return Ok(all);
    }
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if bytes.first() == Some(&0x30) {
        Certificate::from_der(&bytes).map_err(|e| err(format!("not a DER certificate: {e}")))?;
        return Ok(vec![bytes]);
    }
    let certs = pem_certificates(&bytes).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The trust anchors of one run.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    pub anchors: Vec<Vec<u8>>,
}

impl TrustStore {
    /// Anchors from `sources` (config entries, the trust folder, `--ca` files). A folder that
    /// does not exist is skipped only when `optional_dir` names it (the default folder).
    pub fn load(sources: &[PathBuf], optional_dir: Option<&Path>) -> Result<Self, TrustError> {
        let mut anchors = Vec::new();
        if let Some(dir) = optional_dir
            && dir.is_dir()
        {
            anchors.extend(load_certificates(dir)?);
        }
        for s in sources {
            anchors.extend(load_certificates(s)?);
        }
        anchors.sort();
        anchors.dedup();
        Ok(TrustStore { anchors })
    }

    /// Verification options: these anchors, plus extra intermediates (e.g. CA certificates
    /// found on the token).
    pub fn verify_options(&self, intermediates: Vec<Vec<u8>>) -> VerifyOptions {
        VerifyOptions {
            anchors: self.anchors.clone(),
            intermediates,
            at: None,
        }
    }
}

/// The intermediates to send with a signature: starting at `leaf`'s issuer, follow issuer
/// names through `candidates` up to a self-signed root (left out: the verifier must hold its
/// own roots). Stops on a loop or after 8 steps.
pub fn chain_for(leaf: &[u8], candidates: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let parsed: Vec<(Certificate, &Vec<u8>)> = candidates
        .iter()
        .filter_map(|d| Certificate::from_der(d).ok().map(|c| (c, d)))
        .collect();
    let Ok(mut current) = Certificate::from_der(leaf) else {
        return Vec::new();
    };
    let mut chain: Vec<Vec<u8>> = Vec::new();
    for _ in 0..8 {
        let issuer = &current.tbs_certificate.issuer;
        if issuer == &current.tbs_certificate.subject {
            break;
        }
        let Some((next, der)) = parsed
            .iter()
            .find(|(c, _)| &c.tbs_certificate.subject == issuer)
        else {
            break;
        };
        if next.tbs_certificate.subject == next.tbs_certificate.issuer
            || chain.contains(der)
            || der.as_slice() == leaf
        {
            break;
        }
        chain.push((*der).clone());
        current = next.clone();
    }
    chain
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
        std::fs::read(dir.join(format!("{name}.crt.der"))).unwrap()
    }

    #[test]
    fn chain_goes_up_to_the_root_and_leaves_it_out() {
        let leaf = fixture("vendor-rsa2048");
        let issuing = fixture("issuing-ca");
        let root = fixture("root-ca");
        let chain = chain_for(&leaf, &[root.clone(), leaf.clone(), issuing.clone()]);
        assert_eq!(chain, vec![issuing]);
        assert!(chain_for(&leaf, &[root]).is_empty());
    }

    #[test]
    fn unreadable_trust_file_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a certificate").unwrap();
        let e = load_certificates(&f).unwrap_err();
        assert!(e.to_string().contains("ca.pem"), "{e}");
        let missing = TrustStore::load(&[dir.path().join("nope.pem")], None).unwrap_err();
        assert!(missing.to_string().contains("nope.pem"));
    }

    #[test]
    fn folder_of_pem_and_der_files_loads_all() {
        let dir = tempfile::tempdir().unwrap();
        let root = fixture("root-ca");
        std::fs::write(dir.path().join("root.der"), &root).unwrap();
        let pem = der::pem::encode_string(
            "CERTIFICATE",
            der::pem::LineEnding::LF,
            &fixture("issuing-ca"),
        )
        .unwrap();
        std::fs::write(dir.path().join("issuing.pem"), pem).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let store = TrustStore::load(&[], Some(dir.path())).unwrap();
        assert_eq!(store.anchors.len(), 2);
    }
}
