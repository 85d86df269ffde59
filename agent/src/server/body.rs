//! Request bodies (size limit, read timeout, JSON) and responses (JSON, errors).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::error::ApiError;
use crate::protocol::ErrorCode;

/// The response body type of every handler.
pub type RespBody = BoxBody<Bytes, std::io::Error>;

/// Limits on request bodies.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    /// Largest JSON body accepted.
    pub max_json: usize,
    /// Time allowed to receive a whole JSON body (for uploads: the longest pause).
    pub timeout: Duration,
    /// Largest uploaded file.
    pub max_upload: u64,
}

/// A full response body.
pub fn full(bytes: impl Into<Bytes>) -> RespBody {
    Full::new(bytes.into())
        .map_err(|e: Infallible| match e {})
        .boxed()
}

fn with_common_headers(mut resp: Response<RespBody>) -> Response<RespBody> {
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response<RespBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut resp = Response::new(full(bytes));
            *resp.status_mut() = status;
            resp.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            with_common_headers(resp)
        }
        Err(e) => error_response(&ApiError::internal(format!("encoding the response: {e}"))),
    }
}

/// A plain response with a content type.
pub fn typed_response(content_type: &'static str, body: RespBody) -> Response<RespBody> {
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    with_common_headers(resp)
}

/// `{"code", "message"}` with the code's status.
pub fn error_response(err: &ApiError) -> Response<RespBody> {
    let body = serde_json::json!({"code": err.code, "message": err.message});
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = err.status();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if err.code == ErrorCode::Unauthorized {
        h.insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    if let Some(allow) = err.allow {
        h.insert("allow", HeaderValue::from_static(allow));
    }
    with_common_headers(resp)
}

/// Refuse a body whose media type is not JSON.
pub fn require_json(req: &Request<Incoming>) -> Result<(), ApiError> {
    let ok = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON (Content-Type: application/json)",
        ))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is larger than {limit} bytes"),
    )
}

/// Read the whole body (at most `limit` bytes, within the body timeout). The buffer is wiped
/// when dropped: bodies may carry a PIN.
pub async fn read_limited(
    req: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let body = Limited::new(req.into_body(), limit);
    let collected = tokio::time::timeout(timeout, body.collect())
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the body did not arrive within {} s", timeout.as_secs()),
            )
        })?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                too_large(limit)
            } else {
                ApiError::bad_request(format!("cannot read the body: {e}"))
            }
        })?;
    Ok(Zeroizing::new(collected.to_bytes().to_vec()))
}

/// Read and parse a JSON body.
pub async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    limits: &BodyLimits,
) -> Result<T, ApiError> {
    require_json(&req)?;
    let bytes = read_limited(req, limits.max_json, limits.timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON body: {e}")))
}

/// Base64 (standard alphabet, padded) in and out of JSON.
pub fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn unb64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| ApiError::bad_request(format!("{field} is not valid base64: {e}")))
}
