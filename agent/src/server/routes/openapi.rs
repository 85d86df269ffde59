//! `GET /v1/openapi`: the API's OpenAPI document (docs/openapi.yaml, built in).

use hyper::Response;

use crate::server::body::{RespBody, full, typed_response};

/// The document, as checked in.
pub const OPENAPI_YAML: &str = include_str!("../../../../docs/openapi.yaml");

pub fn get() -> Response<RespBody> {
    typed_response("application/yaml", full(OPENAPI_YAML))
}
