//! `POST /v1/sign`: a hash → the raw signature, or data → a raw signature or CMS SignedData.
//!
//! ```json
//! {"certificate": "<sha-256 fingerprint | label:NAME>",
//!  "digest": "<base64>" | "data": "<base64>",
//!  "hash": "sha256", "scheme": "pkcs1|pss|ecdsa", "format": "raw|cms", "detached": false,
//!  "pin": "<secret>", "final_try": false}
//! ```
//! The PIN is used for this operation and wiped with the request.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::bids::TokenKey;
use crate::cms::DigestAlgorithm;
use crate::cms::sign::SignOptions;
use crate::pin::PinSource;
use crate::protocol::ErrorCode;
use crate::server::app::App;
use crate::server::body::{RespBody, b64, json_response, read_json, unb64};
use crate::server::error::ApiError;
use crate::server::gate::Caller;
use crate::server::pin::{ApiPin, RequestPin};
use crate::token::{CertSelector, CertificateEntry, HashAlg, SignRequest, SignScheme};

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Format {
    #[default]
    Raw,
    Cms,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Scheme {
    Pkcs1,
    Pss,
    Ecdsa,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignBody {
    certificate: String,
    digest: Option<String>,
    data: Option<String>,
    hash: Option<HashAlg>,
    scheme: Option<Scheme>,
    format: Option<Format>,
    detached: Option<bool>,
    pin: Option<ApiPin>,
    #[serde(default)]
    final_try: bool,
}

#[derive(Debug, Serialize)]
struct SignResponse {
    certificate: String,
    hash: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<SignScheme>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cms: Option<String>,
}

pub async fn post(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: SignBody = read_json(req, &app.limits).await?;
    let selector: CertSelector = body.certificate.parse()?;
    let hash = body.hash.unwrap_or(HashAlg::Sha256);
    let format = body.format.unwrap_or_default();
    let input = match (&body.digest, &body.data) {
        (Some(d), None) => {
            if format == Format::Cms {
                return Err(ApiError::bad_request("format cms needs data, not a digest"));
            }
            let digest = unb64("digest", d)?;
            if digest.len() != hash.output_len() {
                return Err(ApiError::bad_request(format!(
                    "digest is {} bytes; {} needs {}",
                    digest.len(),
                    hash.name(),
                    hash.output_len()
                )));
            }
            Input::Digest(digest)
        }
        (None, Some(d)) => Input::Data(unb64("data", d)?),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of digest (base64 hash) or data (base64 document)",
            ));
        }
    };
    let scheme = body.scheme.map(|s| match s {
        Scheme::Pkcs1 => SignScheme::RsaPkcs1,
        Scheme::Pss => SignScheme::RsaPss,
        Scheme::Ecdsa => SignScheme::Ecdsa,
    });
    let pin: Arc<dyn PinSource> = Arc::new(RequestPin::new(body.pin, body.final_try));
    let request = SignRequest { scheme, hash };
    let detached = body.detached.unwrap_or(false);
    if format == Format::Cms && scheme == Some(SignScheme::RsaPss) {
        return Err(ApiError::bad_request(
            "CMS signatures use PKCS#1 v1.5 (RSA) or ECDSA; leave scheme out",
        ));
    }
    // Look the certificate up (cached); if the token or key turned out to be gone, look again
    // once — these errors come before any PIN is tried or after a successful login.
    let mut cert = app.certs.find(&app.service, &selector).await?;
    let mut result = sign_once(app, &cert, &request, &input, format, detached, &pin).await;
    if let Err(e) = &result
        && (e.code == ErrorCode::TokenAbsent || e.code == ErrorCode::KeyNotFound)
    {
        app.certs.clear();
        cert = app.certs.find(&app.service, &selector).await?;
        result = sign_once(app, &cert, &request, &input, format, detached, &pin).await;
    }
    app.token_used().await;
    tracing::debug!(caller = %caller.describe(), certificate = %cert.info.fingerprint_sha256, ?format, ok = result.is_ok(), "sign");
    let output = result?;
    let (signature, cms, scheme) = match output {
        Output::Signature(sig) => (
            Some(b64(&sig)),
            None,
            Some(scheme.unwrap_or(match cert.info.public_key {
                crate::certinfo::PublicKey::Ec { .. } => SignScheme::Ecdsa,
                _ => SignScheme::RsaPkcs1,
            })),
        ),
        Output::Cms(der) => (None, Some(b64(&der)), None),
    };
    Ok(json_response(
        StatusCode::OK,
        &SignResponse {
            certificate: cert.info.fingerprint_sha256.clone(),
            hash: hash.name(),
            scheme,
            signature,
            cms,
        },
    ))
}

enum Output {
    Signature(Vec<u8>),
    Cms(Vec<u8>),
}

async fn sign_once(
    app: &Arc<App>,
    cert: &CertificateEntry,
    request: &SignRequest,
    input: &Input,
    format: Format,
    detached: bool,
    pin: &Arc<dyn PinSource>,
) -> Result<Output, ApiError> {
    let hash = request.hash;
    match (input, format) {
        (Input::Digest(digest), _) => Ok(Output::Signature(
            app.service
                .sign_digest(cert, request, digest.clone(), Arc::clone(pin))
                .await?,
        )),
        (Input::Data(data), Format::Raw) => Ok(Output::Signature(
            app.service
                .sign_digest(cert, request, hash.digest(data), Arc::clone(pin))
                .await?,
        )),
        (Input::Data(data), Format::Cms) => {
            let key = TokenKey::new(
                app.service.clone(),
                cert.clone(),
                Vec::new(),
                Arc::clone(pin),
            );
            let opts = SignOptions {
                digest: match hash {
                    HashAlg::Sha256 => DigestAlgorithm::Sha256,
                    HashAlg::Sha384 => DigestAlgorithm::Sha384,
                    HashAlg::Sha512 => DigestAlgorithm::Sha512,
                },
                detached,
                signing_time: None,
            };
            let work_dir = app.work_dir.clone();
            let data = data.clone();
            tokio::task::spawn_blocking(move || cms_sign(&key, &data, &opts, &work_dir))
                .await
                .map_err(|e| ApiError::internal(format!("signing task failed: {e}")))?
                .map(Output::Cms)
        }
    }
}

enum Input {
    Digest(Vec<u8>),
    Data(Vec<u8>),
}

/// CMS SignedData over `data`, through temporary files in the daemon's private work folder
/// (the CMS signer streams files).
fn cms_sign(
    key: &TokenKey,
    data: &[u8],
    opts: &SignOptions,
    work_dir: &std::path::Path,
) -> Result<Vec<u8>, ApiError> {
    let dir = tempfile::Builder::new()
        .prefix("sign-")
        .tempdir_in(work_dir)
        .map_err(|e| ApiError::internal(format!("temporary folder: {e}")))?;
    let input = dir.path().join("data");
    let output = dir.path().join("data.p7s");
    std::fs::write(&input, data).map_err(|e| ApiError::internal(format!("temporary file: {e}")))?;
    crate::cms::sign::sign_file(key, &input, &output, opts)?;
    std::fs::read(&output).map_err(|e| ApiError::internal(format!("reading the signature: {e}")))
}
