//! The PIN lifecycle: `POST /v1/pin/status`, `/v1/pin/change`, `/v1/pin/unblock`.
//!
//! ```json
//! {"token": "LABEL"}                                           status: tries-left flags, no PIN
//! {"token": "LABEL", "pin": "<secret>", "new_pin": "<secret>"}     change (C_SetPIN)
//! {"token": "LABEL", "so_pin": "<secret>", "new_pin": "<secret>"}  unblock (SO login, C_InitPIN)
//! ```
//! Status never tries a PIN, so it never burns a retry. The secrets are wiped with the request.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::protocol::ErrorCode;
use crate::server::app::App;
use crate::server::body::{RespBody, json_response, read_json};
use crate::server::error::ApiError;
use crate::server::gate::Caller;
use crate::server::pin::ApiPin;
use crate::token::TokenDescription;

use super::enroll::{blocking, require_token};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    token: String,
    pin: ApiPin,
    new_pin: ApiPin,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnblockBody {
    token: String,
    so_pin: ApiPin,
    new_pin: ApiPin,
}

/// What the token says about its PIN (the flags of C_GetTokenInfo).
#[derive(Debug, Serialize)]
struct PinStatus {
    token: String,
    serial: String,
    initialized: bool,
    locked: bool,
    final_try: bool,
    count_low: bool,
    to_be_changed: bool,
    pin_pad: bool,
    write_protected: bool,
}

impl From<&TokenDescription> for PinStatus {
    fn from(d: &TokenDescription) -> Self {
        let f = &d.flags;
        PinStatus {
            token: d.label.clone(),
            serial: d.serial.clone(),
            initialized: f.user_pin_initialized,
            locked: f.pin_locked,
            final_try: f.pin_final_try,
            count_low: f.pin_count_low,
            to_be_changed: f.pin_to_be_changed,
            pin_pad: f.protected_authentication_path,
            write_protected: f.write_protected,
        }
    }
}

/// The new PIN's form, by the config file's `[pin]` policy (as `segel pin change` checks it).
fn new_pin_ok(app: &App, new: &ApiPin) -> Result<(), ApiError> {
    use secrecy::ExposeSecret;
    app.admin
        .pin
        .check_new_pin(new.secret().expose_secret())
        .map_err(|message| ApiError::new(ErrorCode::PinInvalid, message))
}

pub async fn status(
    app: &Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: StatusBody = read_json(req, &app.limits).await?;
    require_token(app, &body.token).await?;
    let service = app.service.clone();
    let status = blocking(move || {
        let admin = service.admin(&body.token)?;
        Ok(PinStatus::from(admin.description()))
    })
    .await?;
    Ok(json_response(StatusCode::OK, &status))
}

pub async fn change(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: ChangeBody = read_json(req, &app.limits).await?;
    require_token(app, &body.token).await?;
    new_pin_ok(app, &body.new_pin)?;
    let service = app.service.clone();
    let status = blocking(move || {
        let mut admin = service.admin(&body.token)?;
        admin.change_pin(body.pin.secret(), body.new_pin.secret())?;
        Ok(PinStatus::from(admin.refresh()?))
    })
    .await?;
    tracing::info!(caller = %caller.describe(), token = %status.token, "PIN changed");
    Ok(json_response(StatusCode::OK, &status))
}

pub async fn unblock(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: UnblockBody = read_json(req, &app.limits).await?;
    require_token(app, &body.token).await?;
    new_pin_ok(app, &body.new_pin)?;
    let service = app.service.clone();
    let status = blocking(move || {
        let mut admin = service.admin(&body.token)?;
        admin.unblock_pin(body.so_pin.secret(), body.new_pin.secret())?;
        Ok(PinStatus::from(admin.refresh()?))
    })
    .await?;
    tracing::info!(caller = %caller.describe(), token = %status.token, "PIN unblocked");
    Ok(json_response(StatusCode::OK, &status))
}
