//! `segel native-host`: the browsers' native-messaging host (Chrome and Firefox: each message
//! is a 4-byte length in native byte order — little-endian on the platforms Segel ships for —
//! then UTF-8 JSON; at most 1 MB per message either way).
//!
//! The browser starts it for Segel's extension only (the host manifest's allowed origins); the
//! caller's origin, passed as an argument, is checked against the configured extension
//! origins too. Messages:
//!
//! - `{"type": "endpoint"}` → `{"type": "endpoint", "url", "credential", "ca_cert_pem"}`
//! - `{"type": "request", "id", "method", "path", "site_origin"?, "body"?}` →
//!   `{"type": "response", "id", "status", "body"}`: the same API call, relayed to the daemon
//!   (for browsers where the extension cannot reach the loopback port).
//! - anything wrong → `{"type": "error", "id"?, "code", "message"}`.

use std::io::{Read, Write};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CliError, Context};
use crate::protocol::ErrorCode;
use crate::server::client::DaemonClient;
use crate::server::credential::Credential;
use crate::server::endpoint;
use crate::server::files::DaemonFiles;
use crate::server::policy::{Policy, load_admin_policy};

/// Largest message either way (Chrome's limit for host → browser).
pub const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// What the browser passes: the caller's origin (Chrome: chrome-extension://ID/) or the
    /// manifest path and add-on ID (Firefox).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub browser_args: Vec<String>,
}

/// Read one message; `Ok(None)` at a clean end of input.
pub fn read_message(r: &mut impl Read) -> Result<Option<Vec<u8>>, String> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(format!("reading a message length: {e}")),
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_MESSAGE {
        return Err(format!(
            "message of {n} bytes is over the {MAX_MESSAGE}-byte limit"
        ));
    }
    let mut buf = vec![0u8; n];
    r.read_exact(&mut buf)
        .map_err(|e| format!("reading a {n}-byte message: {e}"))?;
    Ok(Some(buf))
}

/// Write one message (refuses one over the limit, as the browser would).
pub fn write_message(w: &mut impl Write, value: &Value) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    if bytes.len() > MAX_MESSAGE {
        return write_message(
            w,
            &json!({"type": "error", "code": ErrorCode::PayloadTooLarge,
                    "message": format!("the answer is over the {MAX_MESSAGE}-byte native-messaging limit")}),
        );
    }
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(&bytes)?;
    w.flush()
}

fn error(id: &Value, code: ErrorCode, message: impl Into<String>) -> Value {
    json!({"type": "error", "id": id, "code": code, "message": message.into()})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelayRequest {
    #[serde(rename = "type")]
    _type: String,
    /// Echoed from the message (read before parsing into this struct).
    #[serde(default, rename = "id")]
    _id: Value,
    method: String,
    path: String,
    #[serde(default)]
    site_origin: Option<String>,
    #[serde(default)]
    body: Option<Value>,
}

/// The caller's extension origin from the browser's arguments, if any.
fn caller_origin(args: &[String]) -> Option<String> {
    args.iter().find_map(|a| {
        ["chrome-extension://", "moz-extension://"]
            .iter()
            .any(|p| a.starts_with(p))
            .then(|| a.trim_end_matches('/').to_owned())
    })
}

pub fn run(ctx: &Context, args: &Args) -> Result<(), CliError> {
    let (admin, admin_file) =
        load_admin_policy(None).map_err(|e| CliError::bad_request(e.to_string()))?;
    let policy = Policy::effective(&ctx.config.daemon, &admin, admin_file)
        .map_err(|e| CliError::bad_request(e.to_string()))?;
    let files = DaemonFiles::for_user()?;
    let mut stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    let io_err = |e: std::io::Error| CliError::new(ErrorCode::Internal, format!("stdout: {e}"));
    // Chrome names the calling extension; refuse one that is not Segel's.
    if let Some(origin) = caller_origin(&args.browser_args)
        && !policy.extension_origins.contains(&origin)
    {
        write_message(
            &mut stdout,
            &error(
                &Value::Null,
                ErrorCode::OriginRejected,
                format!("{origin} is not Segel's extension"),
            ),
        )
        .map_err(io_err)?;
        return Err(CliError::new(
            ErrorCode::OriginRejected,
            format!("{origin} is not Segel's extension"),
        ));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ErrorCode::Internal, e.to_string()))?;
    loop {
        let msg = match read_message(&mut stdin) {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(e) => {
                // The stream is out of step: answer once and stop.
                write_message(
                    &mut stdout,
                    &error(&Value::Null, ErrorCode::BadRequest, e.clone()),
                )
                .map_err(io_err)?;
                return Err(CliError::bad_request(e));
            }
        };
        let reply = handle(&runtime, &files, &msg);
        write_message(&mut stdout, &reply).map_err(io_err)?;
    }
}

fn handle(runtime: &tokio::runtime::Runtime, files: &DaemonFiles, msg: &[u8]) -> Value {
    let value: Value = match serde_json::from_slice(msg) {
        Ok(v) => v,
        Err(e) => {
            return error(
                &Value::Null,
                ErrorCode::BadRequest,
                format!("malformed JSON: {e}"),
            );
        }
    };
    let id = value.get("id").cloned().unwrap_or(Value::Null);
    let Some(ep) = endpoint::read(files) else {
        return error(
            &id,
            ErrorCode::DaemonNotRunning,
            "the Segel daemon is not running; start it with `segel serve`",
        );
    };
    let credential = match Credential::load(&files.credential()) {
        Ok(c) => c,
        Err(e) => return error(&id, ErrorCode::Internal, e.to_string()),
    };
    let ca_pem = match std::fs::read(files.ca_cert()) {
        Ok(p) => p,
        Err(e) => {
            return error(
                &id,
                ErrorCode::Internal,
                format!("cannot read the daemon CA: {e}"),
            );
        }
    };
    match value.get("type").and_then(Value::as_str) {
        Some("endpoint") => json!({
            "type": "endpoint",
            "id": id,
            "url": ep.url,
            "credential": credential.expose(),
            "ca_cert_pem": String::from_utf8_lossy(&ca_pem),
        }),
        Some("request") => {
            let req: RelayRequest = match serde_json::from_value(value) {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        &id,
                        ErrorCode::BadRequest,
                        format!("bad request message: {e}"),
                    );
                }
            };
            if !matches!(req.method.as_str(), "GET" | "POST") {
                return error(
                    &id,
                    ErrorCode::MethodNotAllowed,
                    "only GET and POST are relayed",
                );
            }
            if !req.path.starts_with("/v1/")
                || req.path.starts_with("/v1/events")
                || req.path.contains("://")
            {
                return error(
                    &id,
                    ErrorCode::BadRequest,
                    "path must be an API path under /v1/ (events are not relayed)",
                );
            }
            let client = match DaemonClient::new(&ep.url, &ca_pem, credential.expose()) {
                Ok(c) => c,
                Err(e) => return error(&id, ErrorCode::DaemonNotRunning, e.to_string()),
            };
            let body = req.body.map(|b| b.to_string().into_bytes());
            let sent = runtime.block_on(client.send(
                &req.method,
                &req.path,
                req.site_origin.as_deref(),
                body,
                MAX_MESSAGE - 1024,
            ));
            match sent {
                Ok((status, bytes)) => {
                    let body = serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&bytes).into_owned())
                    });
                    json!({"type": "response", "id": id, "status": status.as_u16(), "body": body})
                }
                Err(e) => error(&id, ErrorCode::DaemonNotRunning, e.to_string()),
            }
        }
        _ => error(
            &id,
            ErrorCode::BadRequest,
            "unknown message type (endpoint, request)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_oversized_lengths_are_refused() {
        let mut buf = Vec::new();
        write_message(&mut buf, &json!({"type": "endpoint"})).unwrap();
        assert_eq!(&buf[..4], &(buf.len() as u32 - 4).to_le_bytes());
        let mut r = std::io::Cursor::new(buf);
        let m = read_message(&mut r).unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&m).unwrap()["type"],
            "endpoint"
        );
        assert!(read_message(&mut r).unwrap().is_none());
        let mut big = std::io::Cursor::new(((MAX_MESSAGE + 1) as u32).to_le_bytes().to_vec());
        assert!(read_message(&mut big).unwrap_err().contains("limit"));
        let mut short = std::io::Cursor::new(vec![10, 0, 0, 0, b'{']);
        assert!(read_message(&mut short).is_err());
    }

    #[test]
    fn caller_origin_is_taken_from_chrome_or_firefox_arguments() {
        assert_eq!(
            caller_origin(&["chrome-extension://abc/".into()]).as_deref(),
            Some("chrome-extension://abc")
        );
        assert_eq!(
            caller_origin(&["/path/manifest.json".into(), "segel@example".into()]),
            None
        );
    }
}
