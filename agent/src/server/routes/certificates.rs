//! `GET /v1/tokens` and `GET /v1/certificates?purpose=sign|decrypt&valid_now=true&token=LABEL&all=true`.

use std::sync::Arc;
use std::time::SystemTime;

use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::certinfo::Usage;
use crate::protocol::CertRow;
use crate::server::app::App;
use crate::server::body::{RespBody, b64, json_response};
use crate::server::error::ApiError;
use crate::token::CertificateEntry;

pub async fn tokens(app: &Arc<App>) -> Result<Response<RespBody>, ApiError> {
    let tokens = app.service.tokens().await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "tokens": tokens }),
    ))
}

/// One certificate in the API: the CLI's row, whether it is valid now, and the certificate.
#[derive(Debug, Serialize)]
pub struct CertificateView {
    #[serde(flatten)]
    pub row: CertRow,
    pub valid_now: bool,
    /// The certificate, DER in base64.
    pub certificate: String,
}

impl CertificateView {
    fn from_entry(c: &CertificateEntry, now: SystemTime) -> Self {
        CertificateView {
            row: CertRow::from_entry(c, now),
            valid_now: c.info.check_validity(now).is_ok(),
            certificate: b64(&c.info.der),
        }
    }
}

#[derive(Debug, Default)]
struct Filter {
    purpose: Option<Usage>,
    valid_now: bool,
    token: Option<String>,
    all: bool,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, ApiError> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be true or false"
        ))),
    }
}

/// `%XX` and `+` decoding of one query component.
pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad_request("bad %-escape in the query"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("the query is not UTF-8"))
}

fn parse_filter(query: Option<&str>) -> Result<Filter, ApiError> {
    let mut f = Filter::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "purpose" => {
                f.purpose = Some(match v.as_str() {
                    "sign" => Usage::Sign,
                    "decrypt" => Usage::Decrypt,
                    _ => return Err(ApiError::bad_request("purpose must be sign or decrypt")),
                })
            }
            "valid_now" => f.valid_now = parse_bool(k, &v)?,
            "all" => f.all = parse_bool(k, &v)?,
            "token" => f.token = Some(v),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {:?} (purpose, valid_now, token, all)",
                    percent_decode(other).unwrap_or_default()
                )));
            }
        }
    }
    Ok(f)
}

pub async fn list(app: &Arc<App>, query: Option<&str>) -> Result<Response<RespBody>, ApiError> {
    let filter = parse_filter(query)?;
    let now = SystemTime::now();
    let certs: Vec<CertificateView> = app
        .service
        .certificates()
        .await?
        .iter()
        .filter(|c| filter.all || c.key_evidence.is_some())
        .filter(|c| filter.token.as_ref().is_none_or(|t| &c.token_label == t))
        .filter(|c| filter.purpose.is_none_or(|p| c.usage.contains(&p)))
        .filter(|c| !filter.valid_now || c.info.check_validity(now).is_ok())
        .map(|c| CertificateView::from_entry(c, now))
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "certificates": certs }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_filter_parses_known_parameters_and_refuses_others() {
        let f = parse_filter(Some("purpose=sign&valid_now=true&token=My+Token%21")).unwrap();
        assert_eq!(f.purpose, Some(Usage::Sign));
        assert!(f.valid_now);
        assert_eq!(f.token.as_deref(), Some("My Token!"));
        assert!(parse_filter(Some("purpose=encrypt")).is_err());
        assert!(parse_filter(Some("valid_now=yes")).is_err());
        assert!(parse_filter(Some("x=1")).is_err());
        assert!(parse_filter(Some("token=%zz")).is_err());
    }
}
