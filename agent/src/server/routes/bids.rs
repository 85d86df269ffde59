//! Sealed bids over the API, with bodies streamed (no base64 of whole bids):
//!
//! - `POST /v1/files?name=NAME` (application/octet-stream): hold a file → `{id, name, bytes, sha256}`
//! - `GET /v1/files/{id}`: the file, streamed; `DELETE /v1/files/{id}`
//! - `POST /v1/seal` `{file, certificate, recipients: [base64 DER], pin?, file_rules?}` →
//!   the sealed `.p7m` as a new held file, plus the seal report
//! - `POST /v1/open` `{files: [id], certificate, pin?}` → 202 `{job}`; `GET /v1/jobs/{id}` has the
//!   progress and, when done, the opening report with a download id per opened bid.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::certificates::percent_decode;
use crate::bids::{NoProgress, OpenOptions, OpeningRun, SealPlan, TokenKey, open_many, seal_many};
use crate::pin::PinSource;
use crate::protocol::ErrorCode;
use crate::server::app::App;
use crate::server::body::{RespBody, error_response, json_response, read_json, unb64};
use crate::server::error::ApiError;
use crate::server::gate::Caller;
use crate::server::pin::{ApiPin, RequestPin};
use crate::server::store::safe_name;
use crate::token::CertSelector;

/// Receive a streamed upload into a held file.
pub async fn upload(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.eq_ignore_ascii_case("application/octet-stream") {
        return Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "upload the file as Content-Type: application/octet-stream",
        ));
    }
    let name = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .find_map(|p| p.strip_prefix("name="))
        .ok_or_else(|| ApiError::bad_request("give the file name: /v1/files?name=NAME"))
        .and_then(percent_decode)
        .and_then(|n| safe_name(&n))?;
    let limit = app.limits.max_upload;
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the file is larger than {limit} bytes"),
        ));
    }
    let (id, dir) = app.store.new_slot()?;
    let path = dir.join(&name);
    let result = async {
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(|e| ApiError::internal(format!("cannot create the upload: {e}")))?;
        let mut body = req.into_body();
        let mut hasher = sha2::Sha256::new();
        let mut bytes: u64 = 0;
        // The body timeout applies to each pause, not the whole upload (bids can be large).
        loop {
            let frame = tokio::time::timeout(app.limits.timeout, body.frame())
                .await
                .map_err(|_| ApiError::new(ErrorCode::RequestTimeout, "the upload stalled"))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| ApiError::bad_request(format!("upload broken: {e}")))?;
            if let Ok(data) = frame.into_data() {
                bytes += data.len() as u64;
                if bytes > limit {
                    return Err(ApiError::new(
                        ErrorCode::PayloadTooLarge,
                        format!("the file is larger than {limit} bytes"),
                    ));
                }
                hasher.update(&data);
                file.write_all(&data)
                    .await
                    .map_err(|e| ApiError::internal(format!("writing the upload: {e}")))?;
            }
        }
        file.sync_all()
            .await
            .map_err(|e| ApiError::internal(format!("writing the upload: {e}")))?;
        Ok((bytes, hex::encode(hasher.finalize())))
    }
    .await;
    match result {
        Ok((bytes, sha256)) => {
            app.store.insert(&id, path, &caller.describe());
            let mut resp = json_response(
                StatusCode::CREATED,
                &json!({"id": id, "name": name, "bytes": bytes, "sha256": sha256}),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("/v1/files/{id}")) {
                resp.headers_mut().insert("location", v);
            }
            Ok(resp)
        }
        Err(e) => {
            app.store.discard(&dir);
            Err(e)
        }
    }
}

/// Stream a held file out.
pub async fn download(
    app: &Arc<App>,
    caller: &Caller,
    id: &str,
) -> Result<Response<RespBody>, ApiError> {
    let stored = app.store.get(id, &caller.describe())?;
    let file = tokio::fs::File::open(&stored.path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot read file {id}: {e}")))?;
    let len = file.metadata().await.map(|m| m.len()).ok();
    let name = stored
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut resp = Response::new(FileBody { file, done: false }.boxed());
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Some(len) = len {
        h.insert("content-length", HeaderValue::from(len));
    }
    // RFC 6266 filename*, percent-encoded UTF-8.
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename*=UTF-8''{encoded}")) {
        h.insert("content-disposition", v);
    }
    Ok(resp)
}

pub fn delete(app: &Arc<App>, caller: &Caller, id: &str) -> Result<Response<RespBody>, ApiError> {
    app.store.remove(id, &caller.describe())?;
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "deleted": true}),
    ))
}

/// A file as a response body, read in 64 KiB pieces.
struct FileBody {
    file: tokio::fs::File,
    done: bool,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::zeroed(64 * 1024);
        let mut rb = ReadBuf::new(&mut buf);
        match Pin::new(&mut self.file).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    self.done = true;
                    return Poll::Ready(None);
                }
                buf.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SealBody {
    file: String,
    certificate: String,
    recipients: Vec<String>,
    pin: Option<ApiPin>,
    #[serde(default)]
    final_try: bool,
    /// Apply the procurement file rules (name length, characters) — on by default.
    #[serde(default = "default_true")]
    file_rules: bool,
}

pub async fn seal(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: SealBody = read_json(req, &app.limits).await?;
    let owner = caller.describe();
    let input = app.store.get(&body.file, &owner)?;
    let recipients = body
        .recipients
        .iter()
        .map(|r| unb64("recipients", r))
        .collect::<Result<Vec<_>, _>>()?;
    let selector: CertSelector = body.certificate.parse()?;
    let cert = app.certs.find(&app.service, &selector).await?;
    let pin: Arc<dyn PinSource> = Arc::new(RequestPin::new(body.pin, body.final_try));
    let chain = crate::bids::trust::chain_for(&cert.info.der, &app.trust.anchors);
    let key = TokenKey::new(app.service.clone(), cert, chain, pin);
    let (id, dir) = app.store.new_slot()?;
    let file_rules = body.file_rules;
    let out_dir = dir.clone();
    let line = tokio::task::spawn_blocking(move || {
        let plan = SealPlan::new(
            std::slice::from_ref(&input.path),
            &recipients,
            &out_dir,
            file_rules,
        )
        .map_err(|e| ApiError::new(e.code(), e.to_string()))?;
        let out = plan.files()[0].1.clone();
        let mut lines = seal_many(&key, &plan, &Default::default(), 1, &NoProgress);
        Ok::<_, ApiError>((lines.pop(), out))
    })
    .await
    .map_err(|e| ApiError::internal(format!("sealing task failed: {e}")))?;
    app.token_used().await;
    let (line, out) = match line {
        Ok((Some(line), out)) => (line, out),
        Ok((None, _)) => {
            app.store.discard(&dir);
            return Err(ApiError::internal("sealing produced no result"));
        }
        Err(e) => {
            app.store.discard(&dir);
            return Err(e);
        }
    };
    if let (Some(message), Some(code)) = (&line.error, &line.error_code) {
        app.store.discard(&dir);
        // The CMS layer's stable code, as a whole-request failure.
        let mut resp = error_response(&ApiError::new(ErrorCode::BadRequest, message.clone()));
        *resp.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
        *resp.body_mut() =
            crate::server::body::full(json!({"code": code, "message": message}).to_string());
        return Ok(resp);
    }
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    app.store.insert(&id, out, &owner);
    Ok(json_response(
        StatusCode::OK,
        &json!({"id": id, "name": name, "bytes": bytes, "report": line.sealed}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenBody {
    files: Vec<String>,
    certificate: String,
    pin: Option<ApiPin>,
    #[serde(default)]
    final_try: bool,
}

pub async fn open(
    app: &Arc<App>,
    caller: &Caller,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, ApiError> {
    let body: OpenBody = read_json(req, &app.limits).await?;
    let owner = caller.describe();
    if body.files.is_empty() {
        return Err(ApiError::bad_request("files: give at least one file id"));
    }
    let inputs = body
        .files
        .iter()
        .map(|id| app.store.get(id, &owner).map(|s| s.path))
        .collect::<Result<Vec<_>, _>>()?;
    let selector: CertSelector = body.certificate.parse()?;
    let cert = app.certs.find(&app.service, &selector).await?;
    let pin: Arc<dyn PinSource> = Arc::new(RequestPin::new(body.pin, body.final_try));
    let key = TokenKey::new(app.service.clone(), cert, Vec::new(), pin);
    let (_, out_dir) = app.store.new_slot()?;
    let job = app.jobs.create(&owner);
    let job_id = job.id().to_owned();
    let opts = OpenOptions {
        verify: app.trust.verify_options(Vec::new()),
        threads: crate::bids::default_threads(inputs.len()),
    };
    let app2 = Arc::clone(app);
    tokio::task::spawn_blocking(move || {
        // One login for the whole opening; a wrong PIN fails the job before any bid.
        if let Err(e) = key.login() {
            job.finish(Err(json!({"code": e.code(), "message": e.to_string()})));
            return;
        }
        let bids = open_many(&key, &inputs, &out_dir, &opts, job.as_ref());
        let mut run = serde_json::to_value(OpeningRun::new(
            key.certificate().info.subject.clone(),
            key.certificate().token_label.clone(),
            bids.clone(),
        ))
        .unwrap_or_default();
        // Each opened bid becomes a held file of its own (download id in the report).
        if let Some(lines) = run.get_mut("bids").and_then(|b| b.as_array_mut()) {
            for (line, bid) in lines.iter_mut().zip(&bids) {
                if let Some(output) = &bid.output
                    && let Ok((id, dir)) = app2.store.new_slot()
                {
                    let src = std::path::PathBuf::from(output);
                    let dst = dir.join(src.file_name().unwrap_or_default());
                    if std::fs::rename(&src, &dst).is_ok() {
                        app2.store.insert(&id, dst, &owner);
                        line["download"] = json!(id);
                    }
                }
                line.as_object_mut().map(|o| o.remove("output"));
            }
        }
        let _ = std::fs::remove_dir_all(&out_dir);
        job.finish(Ok(run));
    });
    app.token_used().await;
    Ok(json_response(StatusCode::ACCEPTED, &json!({"job": job_id})))
}

pub fn job(app: &Arc<App>, caller: &Caller, id: &str) -> Result<Response<RespBody>, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        &app.jobs.view(id, &caller.describe())?,
    ))
}
