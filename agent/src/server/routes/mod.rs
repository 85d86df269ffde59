//! The `/v1` API: the gate first, then one handler per endpoint, dispatched from here.

mod bids;
mod certificates;
mod consent;
mod enroll;
mod openapi;
mod pins;
mod sign;
mod status;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::app::App;
use super::body::{RespBody, error_response, typed_response};
use super::error::ApiError;
use super::gate::Caller;
use crate::protocol::ErrorCode;

/// Handle one request: gate, route, and map every error to `{code, message}`.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<RespBody> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let caller = match app.gate.check(req.uri(), req.headers()) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(%method, %path, code = %e.code, "refused");
            return error_response(&e);
        }
    };
    let response = match route(&app, &caller, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    };
    tracing::debug!(%method, %path, caller = %caller.describe(), status = response.status().as_u16(), "request");
    response
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no endpoint {path}"))
}

fn method_not_allowed(method: &Method, path: &str, allow: &'static str) -> ApiError {
    let mut e = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{path} does not take {method} (only {allow})"),
    );
    e.allow = Some(allow);
    e
}

/// Refuse management calls from sites: only the user (a local caller: the CLI, Segel's own
/// window and pages) manages consent, keys and PINs. A site that could reach the PIN calls
/// could spend the token's PIN tries and block it.
fn local_only(caller: &Caller, what: &str) -> Result<(), ApiError> {
    match caller {
        Caller::Local => Ok(()),
        Caller::Site(site) => Err(ApiError::new(
            ErrorCode::SiteNotAllowed,
            format!("{site} may not {what}; only the user can, in Segel's own pages"),
        )),
    }
}

async fn route(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match path.as_str() {
        "/v1/status" => match method {
            Method::GET => status::get(app, caller),
            m => Err(method_not_allowed(&m, &path, "GET")),
        },
        "/v1/tokens" => match method {
            Method::GET => certificates::tokens(app).await,
            m => Err(method_not_allowed(&m, &path, "GET")),
        },
        "/v1/certificates" => match method {
            Method::GET => certificates::list(app, req.uri().query()).await,
            m => Err(method_not_allowed(&m, &path, "GET")),
        },
        "/v1/sign" => match method {
            Method::POST => sign::post(app, caller, req).await,
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/enroll" => match method {
            Method::POST => {
                local_only(caller, "make keys")?;
                enroll::enroll(app, caller, req).await
            }
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/certificates/import" => match method {
            Method::POST => {
                local_only(caller, "import certificates")?;
                enroll::import(app, caller, req).await
            }
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/pin/status" => match method {
            Method::POST => {
                local_only(caller, "manage PINs")?;
                pins::status(app, req).await
            }
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/pin/change" => match method {
            Method::POST => {
                local_only(caller, "manage PINs")?;
                pins::change(app, caller, req).await
            }
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/pin/unblock" => match method {
            Method::POST => {
                local_only(caller, "manage PINs")?;
                pins::unblock(app, caller, req).await
            }
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/consent" => match method {
            Method::GET => consent::list(app),
            Method::POST => {
                local_only(caller, "manage consent")?;
                consent::grant(app, req).await
            }
            m => Err(method_not_allowed(&m, &path, "GET, POST")),
        },
        "/v1/consent/revoke" => match method {
            Method::POST => {
                local_only(caller, "manage consent")?;
                consent::revoke(app, req).await
            }
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/events" => match method {
            Method::GET => {
                let mut resp = typed_response(
                    "text/event-stream",
                    http_body_util::BodyExt::boxed(app.events.subscribe(&app.service)),
                );
                *resp.status_mut() = StatusCode::OK;
                Ok(resp)
            }
            m => Err(method_not_allowed(&m, &path, "GET")),
        },
        "/v1/openapi" => match method {
            Method::GET => Ok(openapi::get()),
            m => Err(method_not_allowed(&m, &path, "GET")),
        },
        "/v1/files" => match method {
            Method::POST => bids::upload(app, caller, req).await,
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/seal" => match method {
            Method::POST => bids::seal(app, caller, req).await,
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        "/v1/open" => match method {
            Method::POST => bids::open(app, caller, req).await,
            m => Err(method_not_allowed(&m, &path, "POST")),
        },
        p if p.starts_with("/v1/files/") => {
            let id = &p["/v1/files/".len()..];
            match method {
                Method::GET => bids::download(app, caller, id).await,
                Method::DELETE => bids::delete(app, caller, id),
                m => Err(method_not_allowed(&m, &path, "GET, DELETE")),
            }
        }
        p if p.starts_with("/v1/jobs/") => match method {
            Method::GET => bids::job(app, caller, &p["/v1/jobs/".len()..]),
            m => Err(method_not_allowed(&m, &path, "GET")),
        },
        _ => Err(not_found(&path)),
    }
}

/// The OpenAPI document served at `/v1/openapi`.
pub fn openapi_yaml() -> &'static str {
    openapi::OPENAPI_YAML
}
