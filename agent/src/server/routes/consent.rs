//! `GET /v1/consent`, `POST /v1/consent` (grant), `POST /v1/consent/revoke`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

use crate::protocol::ErrorCode;
use crate::server::app::App;
use crate::server::body::{RespBody, json_response, read_json};
use crate::server::error::ApiError;
use crate::server::policy::Origin;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OriginBody {
    origin: String,
}

fn store_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

fn parse_origin(text: &str) -> Result<Origin, ApiError> {
    Origin::parse(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "{text:?} is not an origin (scheme://host[:port], https)"
        ))
    })
}

pub fn list(app: &Arc<App>) -> Result<Response<RespBody>, ApiError> {
    let grants = app.gate.consent().list().map_err(store_error)?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "grants": grants }),
    ))
}

pub async fn grant(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<RespBody>, ApiError> {
    let body: OriginBody = read_json(req, &app.limits).await?;
    let origin = parse_origin(&body.origin)?;
    if !app.gate.policy().allows(&origin) {
        return Err(ApiError::new(
            ErrorCode::SiteNotAllowed,
            format!(
                "{origin} is not an allowed procurement site (policy); consent cannot be granted"
            ),
        ));
    }
    let grant = app.gate.consent().grant(&origin).map_err(store_error)?;
    tracing::info!(origin = %grant.origin, "consent granted");
    Ok(json_response(StatusCode::OK, &grant))
}

pub async fn revoke(
    app: &Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: OriginBody = read_json(req, &app.limits).await?;
    let origin = parse_origin(&body.origin)?;
    let revoked = app.gate.consent().revoke(&origin).map_err(store_error)?;
    tracing::info!(%origin, revoked, "consent revoked");
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "origin": origin.to_string(), "revoked": revoked }),
    ))
}
