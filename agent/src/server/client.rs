//! A small HTTPS client for the daemon (used by `segel native-host` to relay the extension's
//! calls): trusts only the daemon's local CA, sends the credential.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::gate::SITE_ORIGIN_HEADER;
use super::tls;

/// Problems reaching the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the daemon URL {0:?} is not https://127.0.0.1:PORT")]
    Url(String),
    #[error("cannot connect to the daemon: {0}")]
    Connect(String),
    #[error("the daemon's answer is larger than {0} bytes")]
    TooLarge(usize),
}

/// A client for one daemon.
pub struct DaemonClient {
    addr: SocketAddr,
    credential: String,
    connector: TlsConnector,
}

impl std::fmt::Debug for DaemonClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonClient")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl DaemonClient {
    pub fn new(url: &str, ca_pem: &[u8], credential: &str) -> Result<Self, ClientError> {
        let addr: SocketAddr = url
            .strip_prefix("https://")
            .and_then(|a| a.parse().ok())
            .filter(|a: &SocketAddr| a.ip().is_loopback())
            .ok_or_else(|| ClientError::Url(url.to_owned()))?;
        let config = tls::client_config(ca_pem).map_err(|e| ClientError::Connect(e.to_string()))?;
        Ok(DaemonClient {
            addr,
            credential: credential.to_owned(),
            connector: TlsConnector::from(config),
        })
    }

    /// Send one request; returns status and body (at most `max_body` bytes).
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        site_origin: Option<&str>,
        json_body: Option<Vec<u8>>,
        max_body: usize,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let connect = |e: &dyn std::fmt::Display| ClientError::Connect(e.to_string());
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| connect(&e))?;
        let name = ServerName::IpAddress(self.addr.ip().into());
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| connect(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| connect(&e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.credential));
        if let Some(site) = site_origin {
            req = req.header(SITE_ORIGIN_HEADER, site);
        }
        let has_body = json_body.is_some();
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(json_body.unwrap_or_default())))
            .map_err(|e| connect(&e))?;
        let resp = sender.send_request(req).await.map_err(|e| connect(&e))?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), max_body)
            .collect()
            .await
            .map_err(|_| ClientError::TooLarge(max_body))?
            .to_bytes();
        Ok((status, body))
    }
}
