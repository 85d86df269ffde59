//! `GET /v1/status`: the daemon is up; who the caller is. Touches no token.

use std::sync::Arc;

use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::server::app::App;
use crate::server::body::{RespBody, json_response};
use crate::server::error::ApiError;
use crate::server::gate::Caller;

#[derive(Serialize)]
struct Status<'a> {
    service: &'static str,
    version: &'static str,
    url: &'a str,
    uptime_seconds: u64,
    caller: String,
    modules: Vec<String>,
    allowed_origins: Vec<String>,
    admin_policy: Option<String>,
}

pub fn get(app: &Arc<App>, caller: &Caller) -> Result<Response<RespBody>, ApiError> {
    let policy = app.gate.policy();
    Ok(json_response(
        StatusCode::OK,
        &Status {
            service: "segel",
            version: env!("CARGO_PKG_VERSION"),
            url: &app.url,
            uptime_seconds: app.started.elapsed().as_secs(),
            caller: caller.describe(),
            modules: app
                .service
                .modules()
                .iter()
                .map(|m| m.path.display().to_string())
                .collect(),
            allowed_origins: policy
                .allowed_origins
                .iter()
                .map(|p| p.to_string())
                .collect(),
            admin_policy: policy.admin_file.as_ref().map(|p| p.display().to_string()),
        },
    ))
}
