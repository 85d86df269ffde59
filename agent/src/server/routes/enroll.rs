//! `POST /v1/enroll` (a key pair made on the token + its PKCS#10 request and printable summary)
//! and `POST /v1/certificates/import` (the issued certificate and its chain onto the token).
//!
//! ```json
//! {"token": "LABEL", "key": "rsa2048|rsa3072|rsa4096|p256|p384", "purpose": "sign|encrypt",
//!  "profile": "modern|legacy", "label": "key label",
//!  "applicant": {"name", "email", "org", "unit", "city", "province", "npwp", "nik"},
//!  "pin": "<secret>", "final_try": false}
//! ```
//! The applicant's data is checked before the token is touched; every problem is reported at
//! once in `fields` (`{field, code, message}`), with the code `BAD_REQUEST`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::enroll::{Applicant, Profile, enrol};
use crate::protocol::ErrorCode;
use crate::server::app::App;
use crate::server::body::{RespBody, json_response, read_json, unb64};
use crate::server::error::ApiError;
use crate::server::gate::Caller;
use crate::server::pin::{ApiPin, RequestPin};
use crate::token::{KeyPurpose, KeySpec, TokenError};

#[derive(Debug, Clone, Copy, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Purpose {
    #[default]
    Sign,
    Encrypt,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicantBody {
    name: String,
    email: String,
    org: String,
    unit: String,
    city: String,
    province: String,
    npwp: Option<String>,
    nik: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollBody {
    token: String,
    key: String,
    #[serde(default)]
    purpose: Purpose,
    profile: Option<Profile>,
    label: Option<String>,
    applicant: ApplicantBody,
    pin: Option<ApiPin>,
    #[serde(default)]
    final_try: bool,
}

#[derive(Debug, Serialize)]
struct EnrollResponse {
    token: String,
    key_id: String,
    key_label: String,
    public_key_sha256: String,
    /// The PKCS#10 request, PEM.
    request: String,
    /// The printable summary for the registration authority.
    summary: String,
    applicant: Applicant,
}

#[derive(Debug, Serialize)]
struct FieldProblem {
    field: &'static str,
    code: &'static str,
    message: String,
}

/// The token must exist before anything else is looked at (an unknown token is 404 whatever
/// else the request holds); an empty label is a bad request (SoftHSM's free slot has one).
pub(super) async fn require_token(app: &Arc<App>, label: &str) -> Result<(), ApiError> {
    if label.is_empty() {
        return Err(ApiError::bad_request(
            "token: give the token's label (see /v1/tokens)",
        ));
    }
    let service = app.service.clone();
    let label = label.to_owned();
    blocking(move || service.admin(&label).map(drop).map_err(ApiError::from)).await
}

/// Blocking token work on a worker thread.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("token task failed: {e}")))?
}

pub async fn enroll(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: EnrollBody = read_json(req, &app.limits).await?;
    require_token(app, &body.token).await?;
    let a = body.applicant;
    let applicant = match (Applicant {
        name: a.name,
        email: a.email,
        org: a.org,
        unit: a.unit,
        city: a.city,
        province: a.province,
        npwp: a.npwp,
        nik: a.nik,
    })
    .validate()
    {
        Ok(v) => v,
        Err(problems) => {
            let fields: Vec<FieldProblem> = problems
                .iter()
                .map(|p| FieldProblem {
                    field: p.name(),
                    code: p.code(),
                    message: format!("{}: {}", p.name(), p.problem),
                })
                .collect();
            let message = format!(
                "the request data needs fixing: {}",
                fields
                    .iter()
                    .map(|f| f.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            return Ok(json_response(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"code": ErrorCode::BadRequest, "message": message, "fields": fields}),
            ));
        }
    };
    let spec = KeySpec::parse(&body.key)?;
    let purpose = match body.purpose {
        Purpose::Sign => KeyPurpose::Sign,
        Purpose::Encrypt => KeyPurpose::Encrypt,
    };
    let config = app.admin.enrollment.with_profile(body.profile);
    let label = body.label.unwrap_or_else(|| applicant.name.clone());
    if label.trim().is_empty() || label.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "label must not be empty or contain control characters",
        ));
    }
    let token = body.token;
    let pin = RequestPin::new(body.pin, body.final_try);
    let service = app.service.clone();
    let describe = caller.describe();
    let response = blocking(move || {
        let mut admin = service.admin(&token)?;
        let made = enrol(&mut admin, &pin, &applicant, &config, spec, purpose, &label)
            .map_err(|e| ApiError::new(e.code, e.message))?;
        Ok(EnrollResponse {
            summary: made.summary,
            public_key_sha256: crate::certinfo::sha256_hex(&made.spki_der),
            key_id: hex::encode(&made.key_id),
            key_label: label,
            request: made.request_pem,
            token,
            applicant,
        })
    })
    .await?;
    app.certs.clear();
    tracing::info!(caller = %describe, token = %response.token, key_id = %response.key_id, "enrolled a key");
    Ok(json_response(StatusCode::OK, &response))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportBody {
    token: String,
    /// PEM text (certificates or a PKCS#7 chain), or base64 of DER (a certificate or PKCS#7).
    certificate: String,
    pin: Option<ApiPin>,
    #[serde(default)]
    final_try: bool,
}

#[derive(Debug, Serialize)]
struct ImportResponse {
    token: String,
    certificate: String,
    subject: String,
    key_id: String,
    label: String,
    intermediates: Vec<String>,
}

pub async fn import(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    use crate::cli::import_cert::{certificates_in, is_ca};
    let body: ImportBody = read_json(req, &app.limits).await?;
    require_token(app, &body.token).await?;
    let bytes = if body.certificate.contains("-----BEGIN") {
        body.certificate.as_bytes().to_vec()
    } else {
        unb64("certificate", body.certificate.trim())?
    };
    let certs = certificates_in(&bytes)
        .map_err(|e| ApiError::new(ErrorCode::MalformedInput, format!("certificate: {e}")))?;
    let (leaves, cas): (Vec<Vec<u8>>, Vec<Vec<u8>>) = certs.into_iter().partition(|c| !is_ca(c));
    if leaves.is_empty() {
        return Err(ApiError::bad_request(
            "no end-entity certificate given (only CA certificates, or none); import the certificate issued for your key",
        ));
    }
    let token = body.token;
    let pin = RequestPin::new(body.pin, body.final_try);
    let service = app.service.clone();
    let describe = caller.describe();
    let response = blocking(move || {
        let mut admin = service.admin(&token)?;
        admin.login(&pin)?;
        let mut last_err: Option<TokenError> = None;
        for leaf in &leaves {
            match admin.import_certificate(leaf, &cas) {
                Ok(outcome) => {
                    let info = crate::certinfo::CertInfo::from_der(leaf)
                        .map_err(|e| ApiError::new(ErrorCode::MalformedInput, e.to_string()))?;
                    return Ok(ImportResponse {
                        token,
                        certificate: info.fingerprint_sha256,
                        subject: info.subject,
                        key_id: hex::encode(&outcome.id),
                        label: outcome.label,
                        intermediates: outcome.intermediates,
                    });
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.map_or_else(
            || ApiError::bad_request("no certificate to import"),
            ApiError::from,
        ))
    })
    .await?;
    app.certs.clear();
    tracing::info!(caller = %describe, token = %response.token, certificate = %response.certificate, "imported a certificate");
    Ok(json_response(StatusCode::OK, &response))
}
