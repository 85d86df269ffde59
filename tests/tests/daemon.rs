//! `segel serve` against real components: the daemon runs as a child process with a private
//! HOME/XDG and a SoftHSM2 token (through OpenSC's pkcs11-spy where a test must prove the token
//! was not touched); the client is hyper over rustls trusting only the daemon's local CA.
//!
//! Run: `cargo nextest run -p segel-tests --test daemon`.

use std::io::{Read, Write};
use std::net::TcpStream as StdTcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use segel_tests::daemon::{Client, DaemonProcess, b64, expect, runtime};
use segel_tests::fixtures::fixture;
use segel_tests::segel::segel_cmd;
use segel_tests::softhsm::SoftHsm;
use segel_tests::spy::Spy;
use serde_json::{Value, json};

const PIN: &str = "123456";
const SO_PIN: &str = "87654321";
const SITE: &str = "https://spse.lkpp.go.id";

/// A token "vendor" with a P-256 and an RSA signing key and an RSA decryption key.
fn token() -> Result<SoftHsm> {
    let hsm = SoftHsm::new()?;
    hsm.init_token("vendor", SO_PIN, PIN)?;
    hsm.import_fixture("vendor", PIN, "vendor-p256", "01", "vendor-p256")?;
    hsm.import_fixture("vendor", PIN, "vendor-rsa2048", "02", "vendor-rsa2048")?;
    hsm.import_fixture("vendor", PIN, "pokja-rsa2048", "03", "pokja-rsa2048")?;
    Ok(hsm)
}

fn fp(name: &str) -> Result<String> {
    Ok(fixture(name)?.entry.fingerprint_sha256)
}

fn sign_body(digest_byte: u8) -> Result<Value> {
    Ok(json!({
        "certificate": fp("vendor-p256")?,
        "digest": b64(&[digest_byte; 32]),
        "pin": PIN,
    }))
}

fn b64d(v: &Value) -> Result<Vec<u8>> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD
        .decode(v.as_str().context("base64 string expected")?)?)
}

/// Number of PKCS#11 calls the daemon made so far (pkcs11-spy log).
fn token_calls(spy: &Spy) -> Result<usize> {
    Ok(spy.calls()?.len())
}

#[test]
fn hostile_requests_are_refused_before_the_token_is_touched() -> Result<()> {
    let hsm = token()?;
    let spy = Spy::new(SoftHsm::MODULE)?;
    let mut envs = hsm.envs();
    envs.extend(spy.envs());
    let d = DaemonProcess::start(&envs, &spy.module_path(), &["--max-body", "4096"])?;
    let c = d.client()?;
    let body = sign_body(1)?;
    runtime().block_on(async {
        let before = token_calls(&spy)?;
        let port = c.addr.port();
        let sign = |b: hyper::http::request::Builder| -> Result<hyper::Request<Full<Bytes>>> {
            Ok(b.header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))?)
        };
        let post = || c.req(Method::POST, "/v1/sign");
        let unauth = || {
            hyper::Request::builder()
                .method(Method::POST)
                .uri("/v1/sign")
                .header("host", c.addr.to_string())
        };
        let cases: Vec<(&str, hyper::Request<Full<Bytes>>, u16, &str)> = vec![
            (
                "DNS rebinding: Host evil.example:PORT",
                sign(
                    unauth()
                        .header("host", format!("evil.example:{port}"))
                        .header("authorization", format!("Bearer {}", c.credential)),
                )?,
                403,
                "HOST_REJECTED",
            ),
            (
                "Host with another port",
                sign(
                    hyper::Request::builder()
                        .method(Method::POST)
                        .uri("/v1/sign")
                        .header("host", format!("127.0.0.1:{}", port.wrapping_add(1)))
                        .header("authorization", format!("Bearer {}", c.credential)),
                )?,
                403,
                "HOST_REJECTED",
            ),
            (
                "absolute URI naming another host",
                sign(
                    hyper::Request::builder()
                        .method(Method::POST)
                        .uri(format!("https://evil.example:{port}/v1/sign"))
                        .header("host", c.addr.to_string())
                        .header("authorization", format!("Bearer {}", c.credential)),
                )?,
                403,
                "HOST_REJECTED",
            ),
            (
                "web page Origin",
                sign(post().header("origin", "https://evil.example"))?,
                403,
                "ORIGIN_REJECTED",
            ),
            (
                "allowed site's own Origin (a page, not the extension)",
                sign(post().header("origin", SITE))?,
                403,
                "ORIGIN_REJECTED",
            ),
            (
                "Origin null",
                sign(post().header("origin", "null"))?,
                403,
                "ORIGIN_REJECTED",
            ),
            ("no credential", sign(unauth())?, 401, "UNAUTHORIZED"),
            (
                "wrong credential",
                sign(unauth().header("authorization", format!("Bearer {}", "0".repeat(64))))?,
                401,
                "UNAUTHORIZED",
            ),
            (
                "credential in another scheme",
                sign(unauth().header("authorization", format!("Basic {}", c.credential)))?,
                401,
                "UNAUTHORIZED",
            ),
            (
                "oversized body",
                post()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(format!(
                        "{{\"certificate\":\"{}\",\"pad\":\"{}\"}}",
                        fp("vendor-p256")?,
                        "x".repeat(8192)
                    ))))?,
                413,
                "PAYLOAD_TOO_LARGE",
            ),
            (
                "malformed JSON",
                post()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(b"{\"certificate\": ")))?,
                400,
                "BAD_REQUEST",
            ),
            (
                "unknown field",
                post()
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        json!({"certificate": fp("vendor-p256")?, "digest": "AA==", "evil": 1})
                            .to_string(),
                    )))?,
                400,
                "BAD_REQUEST",
            ),
            (
                "form post instead of JSON",
                post()
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Full::new(Bytes::from_static(b"certificate=x")))?,
                415,
                "UNSUPPORTED_MEDIA_TYPE",
            ),
            (
                "site not in the allowlist",
                sign(post().header("x-segel-site-origin", "https://evil.example"))?,
                403,
                "SITE_NOT_ALLOWED",
            ),
            (
                "site origin that is not an origin",
                sign(post().header("x-segel-site-origin", "https://spse.lkpp.go.id/path"))?,
                403,
                "SITE_NOT_ALLOWED",
            ),
            (
                "allowed site without consent",
                sign(post().header("x-segel-site-origin", SITE))?,
                403,
                "CONSENT_REQUIRED",
            ),
            (
                "site granting itself consent",
                c.req(Method::POST, "/v1/consent")
                    .header("x-segel-site-origin", "https://evil.example")
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(
                        json!({"origin": "https://evil.example"}).to_string(),
                    )))?,
                403,
                "SITE_NOT_ALLOWED",
            ),
            (
                "CORS preflight from a page",
                c.req(Method::OPTIONS, "/v1/sign")
                    .header("origin", "https://evil.example")
                    .header("access-control-request-method", "POST")
                    .body(Full::default())?,
                403,
                "ORIGIN_REJECTED",
            ),
        ];
        for (case, req, status, code) in cases {
            let resp = c.send(req).await.with_context(|| case.to_owned())?;
            expect(&resp, status, code, case)?;
        }
        let after = token_calls(&spy)?;
        ensure!(
            after == before,
            "hostile requests reached the token: {} PKCS#11 calls",
            after - before
        );
        // The spy does see the token when a request passes the gate (so the check above can fail).
        let ok = c.send(c.post_json("/v1/sign", &body)?).await?;
        ensure!(
            ok.status == StatusCode::OK,
            "good sign failed: {:?}",
            ok.body
        );
        ensure!(spy.count_calls("C_Sign")? >= 1, "spy saw no C_Sign");
        Ok(())
    })
}

#[test]
fn consent_grant_lets_a_site_sign_and_revoke_refuses_it_without_touching_the_token() -> Result<()> {
    let hsm = token()?;
    let spy = Spy::new(SoftHsm::MODULE)?;
    let mut envs = hsm.envs();
    envs.extend(spy.envs());
    let d = DaemonProcess::start(&envs, &spy.module_path(), &[])?;
    let c = d.client()?;
    let body = sign_body(2)?;
    let site_sign = || -> Result<hyper::Request<Full<Bytes>>> {
        let mut r = c.post_json("/v1/sign", &body)?;
        r.headers_mut().insert("x-segel-site-origin", SITE.parse()?);
        Ok(r)
    };
    // Grant with the CLI (the daemon reads grants per request).
    let out = segel_cmd(&envs, d.home())?
        .env("SEGEL_POLICY_FILE", d.home().join("policy.toml"))
        .args(["consent", "grant", SITE])
        .output()?;
    ensure!(
        out.status.success(),
        "consent grant: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime().block_on(async {
        let r = c.send(site_sign()?).await?;
        ensure!(
            r.status == StatusCode::OK,
            "consented site refused: {:?}",
            r.body
        );
        let list = c
            .send(c.get("/v1/consent").body(Full::default())?)
            .await?
            .json()?;
        ensure!(list["grants"][0]["origin"] == SITE, "{list}");
        // Revoke through the API (a local caller), then the site is refused, token untouched.
        let r = c
            .send(c.post_json("/v1/consent/revoke", &json!({"origin": SITE}))?)
            .await?;
        ensure!(r.json()?["revoked"] == true, "{:?}", r.body);
        let before = token_calls(&spy)?;
        let r = c.send(site_sign()?).await?;
        expect(&r, 403, "CONSENT_REQUIRED", "revoked consent")?;
        ensure!(
            token_calls(&spy)? == before,
            "revoked site reached the token"
        );
        // Granting through the API works for allowed sites only.
        let r = c
            .send(c.post_json("/v1/consent", &json!({"origin": "https://evil.example"}))?)
            .await?;
        expect(
            &r,
            403,
            "SITE_NOT_ALLOWED",
            "grant to a site outside policy",
        )?;
        let r = c
            .send(c.post_json("/v1/consent", &json!({"origin": "https://a.lkpp.go.id"}))?)
            .await?;
        ensure!(r.status == StatusCode::OK, "{:?}", r.body);
        Ok(())
    })?;
    // The CLI sees the API's grant, and revokes it.
    let out = segel_cmd(&envs, d.home())?
        .args(["consent", "list", "--json"])
        .output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v[0]["origin"] == "https://a.lkpp.go.id", "{v}");
    Ok(())
}

/// Read from a socket until EOF or error; returns how long it took (None: still open at `limit`).
fn time_to_close(s: &mut StdTcpStream, limit: Duration) -> Result<Option<Duration>> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut buf = [0u8; 4096];
    while t0.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Ok(Some(t0.elapsed())),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Ok(Some(t0.elapsed())),
        }
    }
    Ok(None)
}

#[test]
fn slow_headers_and_stalled_handshakes_are_closed_after_their_timeouts() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(
        &hsm.envs(),
        &hsm.module_path(),
        &[
            "--handshake-timeout-ms",
            "400",
            "--header-timeout-ms",
            "400",
        ],
    )?;
    // A TCP connection that never starts TLS.
    let mut raw = StdTcpStream::connect(d.addr)?;
    let closed = time_to_close(&mut raw, Duration::from_secs(5))?;
    ensure!(
        closed.is_some_and(|t| t >= Duration::from_millis(300)),
        "stalled handshake: closed after {closed:?} (expected ~400 ms)"
    );
    // Slowloris: TLS done, a request head trickled and never finished.
    let c = d.client()?;
    runtime().block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = c.tls().await?;
        let t0 = Instant::now();
        tls.write_all(format!("GET /v1/status HTTP/1.1\r\nHost: {}\r\n", c.addr).as_bytes())
            .await?;
        let mut buf = Vec::new();
        let mut trickle = tokio::time::interval(Duration::from_millis(100));
        let read = async {
            loop {
                trickle.tick().await;
                if tls.write_all(b"X-Slow: a\r\n").await.is_err() {
                    return Ok::<_, anyhow::Error>(());
                }
                let mut b = [0u8; 1024];
                match tokio::time::timeout(Duration::from_millis(1), tls.read(&mut b)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
                    Ok(Ok(n)) => buf.extend_from_slice(&b[..n]),
                    Err(_) => {}
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .context("slow request head was not cut off within 5 s")??;
        let t = t0.elapsed();
        ensure!(
            t >= Duration::from_millis(300) && t < Duration::from_secs(3),
            "slow head closed after {t:?}"
        );
        // A request that never completed was never answered with a success.
        ensure!(
            !String::from_utf8_lossy(&buf).contains(" 200 "),
            "slow request got 200"
        );
        // The daemon still serves.
        let r = c.send(c.get("/v1/status").body(Full::default())?).await?;
        ensure!(r.status == StatusCode::OK);
        Ok(())
    })
}

#[test]
fn connection_flood_is_capped_and_a_good_client_is_served_afterwards() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(
        &hsm.envs(),
        &hsm.module_path(),
        &["--max-connections", "4", "--handshake-timeout-ms", "6000"],
    )?;
    // Four idle connections hold every slot. start()'s readiness probe may still hold one for
    // a moment (its close races with these accepts: the daemon could then close the fourth
    // flood connection and give the probe's freed slot to the fifth below), so any flood
    // connection the cap closed is replaced until four stay open.
    let mut flood: Vec<StdTcpStream> = Vec::new();
    let t0 = Instant::now();
    loop {
        while flood.len() < 4 {
            flood.push(StdTcpStream::connect(d.addr)?);
        }
        std::thread::sleep(Duration::from_millis(500));
        let mut open = Vec::new();
        for mut s in flood {
            if time_to_close(&mut s, Duration::from_millis(20))?.is_none() {
                open.push(s);
            }
        }
        if open.len() < 4 {
            eprintln!(
                "{} flood connection(s) closed by the cap; replacing",
                4 - open.len()
            );
        }
        flood = open;
        if flood.len() == 4 {
            break;
        }
        ensure!(
            t0.elapsed() < Duration::from_secs(5),
            "four connections never held the daemon's four slots"
        );
    }
    // The fifth is closed at once, long before the handshake timeout (6 s).
    let mut extra = StdTcpStream::connect(d.addr)?;
    let _ = extra.write_all(b"\x16\x03\x01");
    let closed = time_to_close(&mut extra, Duration::from_secs(8))?;
    ensure!(
        closed.is_some_and(|t| t < Duration::from_millis(2500)),
        "connection over the cap was not closed at once: {closed:?}"
    );
    // The four are still open at that point (the cap, not a timeout, refused the fifth).
    let still_open = time_to_close(&mut flood[0], Duration::from_millis(100))?;
    ensure!(still_open.is_none(), "flood connection closed early");
    // After the handshake timeout frees the slots, a good client is served.
    let c = d.client()?;
    runtime().block_on(async {
        let t0 = Instant::now();
        loop {
            match c.send(c.get("/v1/status").body(Full::default())?).await {
                Ok(r) if r.status == StatusCode::OK => break,
                // The slots free 6 s after the flood's accepts; on a loaded machine later.
                _ if t0.elapsed() > Duration::from_secs(12) => {
                    anyhow::bail!("good client not served 12 s after the flood")
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Ok(())
    })?;
    drop(flood);
    Ok(())
}

/// A TLS server on 127.0.0.1:0 presenting `chain`; returns the port.
async fn tls_server(
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<u16> {
    let config = segel_agent::server::tls::server_config(chain, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut s) = acceptor.accept(tcp).await {
                    use tokio::io::AsyncWriteExt;
                    let _ = s.write_all(b"hello").await;
                    let _ = s.shutdown().await;
                }
            });
        }
    });
    Ok(port)
}

async fn handshake(ca_pem: &[u8], port: u16, name: &str) -> Result<()> {
    let config = segel_agent::server::tls::client_config(ca_pem)?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let server_name = rustls::pki_types::ServerName::try_from(name.to_owned())?;
    let mut s = connector.connect(server_name, tcp).await?;
    let mut buf = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut s, &mut buf).await?;
    ensure!(buf == b"hello");
    Ok(())
}

#[test]
fn tls_client_rejects_a_certificate_for_another_name_under_the_name_constrained_ca() -> Result<()> {
    use rcgen::{Issuer, KeyPair};
    use segel_agent::server::tls::{ca_params, server_params};
    let now = std::time::SystemTime::now();
    // A CA of exactly the daemon's shape, whose key this test keeps (the daemon's is gone).
    let ca_key = KeyPair::generate()?;
    let ca = ca_params(now);
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);
    let leaf = |names: &[&str]| -> Result<_> {
        let key = KeyPair::generate()?;
        let cert = server_params(now, names)?.signed_by(&key, &issuer)?;
        Ok((
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                .map_err(|e| anyhow::anyhow!(e))?,
        ))
    };
    runtime().block_on(async {
        // Control: a loopback-only certificate from the same CA is accepted.
        let (chain, key) = leaf(&["127.0.0.1", "localhost"])?;
        let port = tls_server(chain, key).await?;
        handshake(ca_pem.as_bytes(), port, "127.0.0.1").await?;
        handshake(ca_pem.as_bytes(), port, "localhost").await?;
        // evil.example alone, and hidden next to 127.0.0.1: both refused.
        for names in [
            &["evil.example"][..],
            &["127.0.0.1", "evil.example"][..],
            &["10.0.0.1", "127.0.0.1"][..],
        ] {
            let (chain, key) = leaf(names)?;
            let port = tls_server(chain, key).await?;
            for connect_as in ["127.0.0.1", names[0]] {
                let err = handshake(ca_pem.as_bytes(), port, connect_as)
                    .await
                    .err()
                    .with_context(|| {
                        format!("certificate for {names:?} accepted as {connect_as}")
                    })?;
                let text = format!("{err:#}");
                ensure!(
                    text.contains("NameConstraint")
                        || text.contains("name constraint")
                        || text.contains("NotValidForName"),
                    "certificate for {names:?} as {connect_as}: unexpected error {text}"
                );
            }
        }
        Ok(())
    })
}

#[test]
fn daemon_makes_a_name_constrained_ca_and_never_writes_its_key() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let tls = d.state_dir().join("tls");
    let mut names: Vec<String> = std::fs::read_dir(&tls)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    names.sort();
    ensure!(names == ["ca.pem", "server.key", "server.pem"], "{names:?}");
    let text = segel_tests::openssl::openssl(&[
        "x509",
        "-noout",
        "-text",
        "-in",
        tls.join("ca.pem").to_str().context("path")?,
    ])?;
    ensure!(text.contains("X509v3 Name Constraints: critical"), "{text}");
    ensure!(
        text.contains("IP:127.0.0.1/255.255.255.255") && text.contains("DNS:localhost"),
        "{text}"
    );
    // Nothing in the state folder holds a second private key.
    for entry in walk(&d.state_dir())? {
        let bytes = std::fs::read(&entry)?;
        let keys = String::from_utf8_lossy(&bytes)
            .matches("PRIVATE KEY-----")
            .count();
        ensure!(
            keys == 0 || entry.ends_with("server.key"),
            "{} holds a key",
            entry.display()
        );
    }
    use std::os::unix::fs::PermissionsExt;
    for f in ["credential", "tls/server.key", "endpoint.json"] {
        let mode = std::fs::metadata(d.state_dir().join(f))?
            .permissions()
            .mode()
            & 0o777;
        ensure!(mode == 0o600, "{f} has mode {mode:o}");
    }
    Ok(())
}

fn walk(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            out.extend(walk(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

#[test]
fn status_tokens_certificates_consent_events_and_openapi_answer() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    runtime().block_on(async {
        let get = |path: &str| c.get(path).body(Full::default());
        let status = c.send(get("/v1/status")?).await?.json()?;
        ensure!(
            status["service"] == "segel" && status["caller"] == "local",
            "{status}"
        );
        ensure!(status["url"] == d.url.as_str(), "{status}");

        let tokens = c.send(get("/v1/tokens")?).await?.json()?;
        ensure!(tokens["tokens"][0]["label"] == "vendor", "{tokens}");

        let all = c.send(get("/v1/certificates")?).await?.json()?;
        ensure!(
            all["certificates"].as_array().map(Vec::len) == Some(3),
            "{all}"
        );
        let sign = c
            .send(get("/v1/certificates?purpose=sign&valid_now=true")?)
            .await?
            .json()?;
        let mut fps: Vec<&str> = sign["certificates"]
            .as_array()
            .context("list")?
            .iter()
            .filter_map(|c| c["fingerprint_sha256"].as_str())
            .collect();
        fps.sort();
        let mut want = [fp("vendor-p256")?, fp("vendor-rsa2048")?];
        want.sort();
        ensure!(fps == want, "{sign}");
        let dec = c
            .send(get("/v1/certificates?purpose=decrypt")?)
            .await?
            .json()?;
        ensure!(
            dec["certificates"][0]["fingerprint_sha256"] == fp("pokja-rsa2048")?.as_str(),
            "{dec}"
        );
        let der = b64d(&dec["certificates"][0]["certificate"])?;
        ensure!(
            der == fixture("pokja-rsa2048")?.cert_der,
            "certificate bytes differ"
        );
        let r = c.send(get("/v1/certificates?purpose=encrypt")?).await?;
        expect(&r, 400, "BAD_REQUEST", "bad purpose")?;
        let r = c.send(get("/v1/nothing")?).await?;
        expect(&r, 404, "NOT_FOUND", "unknown path")?;
        let r = c
            .send(c.req(Method::DELETE, "/v1/tokens").body(Full::default())?)
            .await?;
        expect(&r, 405, "METHOD_NOT_ALLOWED", "wrong method")?;

        let grants = c.send(get("/v1/consent")?).await?.json()?;
        ensure!(grants["grants"] == json!([]), "{grants}");

        let doc = c.send(get("/v1/openapi")?).await?;
        let file = std::fs::read(segel_tests::segel::workspace_root().join("docs/openapi.yaml"))?;
        ensure!(
            doc.body.as_ref() == file.as_slice(),
            "served OpenAPI differs from docs/openapi.yaml"
        );

        // Events: the stream opens with a comment and is text/event-stream.
        use http_body_util::BodyExt;
        let io = hyper_util::rt::TokioIo::new(c.tls().await?);
        let (mut sender, driver) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await?;
        tokio::spawn(driver);
        let resp = sender.send_request(get("/v1/events")?).await?;
        ensure!(resp.status() == StatusCode::OK);
        ensure!(resp.headers()["content-type"] == "text/event-stream");
        let mut body = resp.into_body();
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await?
            .context("stream ended")??;
        let data = frame.into_data().map_err(|_| anyhow::anyhow!("not data"))?;
        ensure!(data.starts_with(b": segel events"), "{data:?}");
        Ok(())
    })
}

#[test]
fn sign_returns_signatures_and_cms_that_openssl_verifies() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    let dir = tempfile::tempdir()?;
    let document = b"Dokumen penawaran: harga Rp 1.000.000\n".to_vec();
    runtime().block_on(async {
        let digest = {
            use sha2::Digest;
            sha2::Sha256::digest(&document).to_vec()
        };
        // Hash → raw signature, P-256 and RSA.
        for name in ["vendor-p256", "vendor-rsa2048"] {
            let r = c
                .send(c.post_json("/v1/sign", &json!({"certificate": fp(name)?, "digest": b64(&digest), "pin": PIN}))?)
                .await?;
            ensure!(r.status == StatusCode::OK, "{name}: {:?}", r.body);
            let v = r.json()?;
            let sig = dir.path().join(format!("{name}.sig"));
            std::fs::write(&sig, b64d(&v["signature"])?)?;
            let dgst = dir.path().join("digest");
            std::fs::write(&dgst, &digest)?;
            segel_tests::openssl::verify_digest(fixture(name)?.cert_pem_path, &dgst, &sig, "sha256", false)?;
        }
        // Data → CMS SignedData, verified by OpenSSL with the test chain.
        let r = c
            .send(c.post_json(
                "/v1/sign",
                &json!({"certificate": fp("vendor-rsa2048")?, "data": b64(&document), "format": "cms", "pin": PIN}),
            )?)
            .await?;
        ensure!(r.status == StatusCode::OK, "cms: {:?}", r.body);
        let p7 = dir.path().join("doc.p7m");
        std::fs::write(&p7, b64d(&r.json()?["cms"])?)?;
        let out = std::process::Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in"])
            .arg(&p7)
            .arg("-CAfile")
            .arg(segel_tests::fixtures::chain_pem_path())
            .output()?;
        ensure!(out.status.success(), "openssl cms -verify: {}", String::from_utf8_lossy(&out.stderr));
        ensure!(out.stdout == document, "CMS content differs");

        let r = c
            .send(c.post_json("/v1/sign", &json!({"certificate": fp("vendor-p256")?, "digest": "AAAA"}))?)
            .await?;
        expect(&r, 400, "BAD_REQUEST", "digest of the wrong length")?;
        let r = c
            .send(c.post_json("/v1/sign", &json!({"certificate": "label:nope", "digest": b64(&digest)}))?)
            .await?;
        expect(&r, 404, "CERTIFICATE_NOT_FOUND", "unknown certificate")?;
        Ok(())
    })?;
    drop(d);
    // A daemon that logs out after every operation: no PIN, wrong PIN, then a PIN is needed
    // for each operation.
    let home = tempfile::tempdir()?;
    std::fs::create_dir_all(home.path().join(".config/segel"))?;
    std::fs::write(
        home.path().join(".config/segel/config.toml"),
        "[daemon]\nlogin_idle_seconds = 0\n",
    )?;
    let d = DaemonProcess::start_in(home, &hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    runtime().block_on(async {
        let mut body = sign_body(3)?;
        body.as_object_mut().context("obj")?.remove("pin");
        let r = c.send(c.post_json("/v1/sign", &body)?).await?;
        expect(&r, 422, "PIN_REQUIRED", "no PIN")?;
        body["pin"] = json!("999999");
        let r = c.send(c.post_json("/v1/sign", &body)?).await?;
        expect(&r, 422, "PIN_INCORRECT", "wrong PIN")?;
        body["pin"] = json!(PIN);
        let r = c.send(c.post_json("/v1/sign", &body)?).await?;
        ensure!(r.status == StatusCode::OK, "{:?}", r.body);
        // Logged out after that operation: a PIN is needed again.
        body.as_object_mut().context("obj")?.remove("pin");
        let r = c.send(c.post_json("/v1/sign", &body)?).await?;
        expect(&r, 422, "PIN_REQUIRED", "no PIN after logout")?;
        Ok(())
    })?;
    ensure!(
        !d.log().contains(PIN) && !d.log().contains(&d.credential),
        "log holds a secret"
    );
    Ok(())
}

#[test]
fn sigterm_stops_the_daemon_and_endpoint_reports_it() -> Result<()> {
    let hsm = token()?;
    let mut d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let out = segel_cmd(&hsm.envs(), d.home())?
        .args(["endpoint", "--json"])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(
        v["url"] == d.url.as_str() && v["credential"] == d.credential.as_str(),
        "{v}"
    );
    ensure!(std::fs::read(v["ca_cert"].as_str().context("ca")?)? == d.ca_pem);
    let status = d.terminate(Duration::from_secs(8))?;
    ensure!(status.success(), "exit status {status}");
    ensure!(
        !d.state_dir().join("endpoint.json").exists(),
        "endpoint file left behind"
    );
    let out = segel_cmd(&hsm.envs(), d.home())?
        .args(["endpoint", "--json"])
        .output()?;
    let v: Value = serde_json::from_slice(&out.stdout)?;
    ensure!(v["error"]["code"] == "DAEMON_NOT_RUNNING", "{v}");
    ensure!(d.log().contains("stopped"), "{}", d.log());
    Ok(())
}

#[test]
fn client_that_does_not_trust_the_daemon_ca_is_refused_by_tls() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    // Another install's CA.
    let (other_ca, _, _) = segel_agent::server::tls::issue(std::time::SystemTime::now())?;
    let c = Client::new(d.addr, other_ca.as_bytes(), &d.credential)?;
    runtime().block_on(async {
        let err = c
            .tls()
            .await
            .err()
            .context("TLS with a foreign CA succeeded")?;
        ensure!(
            format!("{err:#}").contains("UnknownIssuer")
                || format!("{err:#}").contains("invalid peer certificate"),
            "{err:#}"
        );
        Ok(())
    })
}

/// Schemathesis (`scripts/install-test-deps` puts it in a venv) fuzzes every operation of
/// docs/openapi.yaml against a live daemon: no 5xx, responses match their schemas, schema-valid
/// requests are accepted (or refused with a documented status), invalid ones rejected, 405s
/// carry `Allow`. The event stream never ends, so it is left out here (tested above).
#[test]
fn openapi_contract_holds_under_schemathesis() -> Result<()> {
    let st = match std::env::var_os("SEGEL_SCHEMATHESIS") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache"))
                })
                .context("no HOME")?;
            cache.join("segel/schemathesis/bin/st")
        }
    };
    ensure!(
        st.exists(),
        "schemathesis not found at {} (run scripts/install-test-deps, or set SEGEL_SCHEMATHESIS)",
        st.display()
    );
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let ca = d.state_dir().join("tls/ca.pem");
    let work = tempfile::tempdir()?;
    let out = std::process::Command::new(&st)
        .current_dir(work.path())
        .env("HOME", work.path())
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .args(["run"])
        .arg(segel_tests::segel::workspace_root().join("docs/openapi.yaml"))
        .args(["--url", &d.url])
        .args(["-H", &format!("Authorization: Bearer {}", d.credential)])
        .arg("--tls-verify")
        .arg(&ca)
        .args([
            "--exclude-path",
            "/v1/events",
            "--checks",
            "all",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--seed",
            "20261121",
            "--request-timeout",
            "10",
            "--output-sanitize",
            "true",
        ])
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(out.status.success(), "schemathesis found problems:\n{text}");
    ensure!(
        text.contains("passed"),
        "schemathesis ran no tests:\n{text}"
    );
    Ok(())
}

const EXTENSION: &str = "chrome-extension://abcdefghijklmnopabcdefghijklmnop";

fn frame(v: &Value) -> Vec<u8> {
    let b = v.to_string().into_bytes();
    let mut out = (b.len() as u32).to_le_bytes().to_vec();
    out.extend(b);
    out
}

fn unframe(mut bytes: &[u8]) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        ensure!(bytes.len() >= 4, "truncated length");
        let n = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        ensure!(bytes.len() >= 4 + n, "truncated message");
        out.push(serde_json::from_slice(&bytes[4..4 + n])?);
        bytes = &bytes[4 + n..];
    }
    Ok(out)
}

/// Run `segel native-host ARGS` with `input` on stdin; returns exit success and the messages.
fn native_host(
    d: &DaemonProcess,
    envs: &[(String, std::ffi::OsString)],
    args: &[&str],
    input: &[u8],
) -> Result<(bool, Vec<Value>)> {
    let mut child = segel_cmd(envs, d.home())?
        .env("SEGEL_POLICY_FILE", d.home().join("policy.toml"))
        .arg("native-host")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().context("stdin")?.write_all(input)?;
    let out = child.wait_with_output()?;
    Ok((out.status.success(), unframe(&out.stdout)?))
}

#[test]
fn native_host_hands_out_the_endpoint_and_relays_api_calls_for_segels_extension_only() -> Result<()>
{
    let hsm = token()?;
    let home = tempfile::tempdir()?;
    std::fs::create_dir_all(home.path().join(".config/segel"))?;
    std::fs::write(
        home.path().join(".config/segel/config.toml"),
        format!("[daemon]\nextension_origins = [\"{EXTENSION}\"]\n"),
    )?;
    let d = DaemonProcess::start_in(home, &hsm.envs(), &hsm.module_path(), &[])?;
    let mut input = Vec::new();
    for m in [
        json!({"type": "endpoint", "id": 1}),
        json!({"type": "request", "id": 2, "method": "GET", "path": "/v1/status"}),
        json!({"type": "request", "id": 3, "method": "GET", "path": "/v1/certificates?purpose=sign", "site_origin": SITE}),
        json!({"type": "request", "id": 4, "method": "POST", "path": "/v1/consent", "body": {"origin": SITE}}),
        json!({"type": "request", "id": 5, "method": "GET", "path": "/v1/certificates?purpose=sign", "site_origin": SITE}),
        json!({"type": "request", "id": 6, "method": "GET", "path": "https://evil.example/v1/status"}),
        json!({"type": "launch", "id": 7}),
    ] {
        input.extend(frame(&m));
    }
    input.extend(4u32.to_le_bytes());
    input.extend(b"{bad");
    let (ok, replies) = native_host(&d, &hsm.envs(), &[&format!("{EXTENSION}/")], &input)?;
    ensure!(ok, "native host failed: {replies:?}");
    ensure!(replies.len() == 8, "{replies:#?}");
    ensure!(
        replies[0]["url"] == d.url.as_str() && replies[0]["credential"] == d.credential.as_str(),
        "{}",
        replies[0]
    );
    ensure!(replies[0]["ca_cert_pem"].as_str().map(str::as_bytes) == Some(&d.ca_pem[..]));
    ensure!(
        replies[1]["status"] == 200 && replies[1]["body"]["caller"] == "local",
        "{}",
        replies[1]
    );
    ensure!(
        replies[2]["status"] == 403 && replies[2]["body"]["code"] == "CONSENT_REQUIRED",
        "{}",
        replies[2]
    );
    ensure!(replies[3]["status"] == 200, "{}", replies[3]);
    ensure!(
        replies[4]["status"] == 200 && replies[4]["id"] == 5,
        "{}",
        replies[4]
    );
    ensure!(
        replies[4]["body"]["certificates"].as_array().map(Vec::len) == Some(2),
        "{}",
        replies[4]
    );
    ensure!(
        replies[5]["type"] == "error" && replies[5]["code"] == "BAD_REQUEST",
        "{}",
        replies[5]
    );
    ensure!(
        replies[6]["type"] == "error" && replies[6]["id"] == 7,
        "{}",
        replies[6]
    );
    ensure!(
        replies[7]["type"] == "error" && replies[7]["code"] == "BAD_REQUEST",
        "{}",
        replies[7]
    );

    // Another extension is refused before anything is read.
    let (ok, replies) = native_host(
        &d,
        &hsm.envs(),
        &["chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba/"],
        &frame(&json!({"type": "endpoint"})),
    )?;
    ensure!(
        !ok && replies.len() == 1 && replies[0]["code"] == "ORIGIN_REJECTED",
        "{replies:?}"
    );
    ensure!(
        !replies[0].to_string().contains(&d.credential),
        "credential leaked"
    );
    // A length over 1 MB ends the session with an error.
    let (ok, replies) = native_host(
        &d,
        &hsm.envs(),
        &[&format!("{EXTENSION}/")],
        &(2u32 << 20).to_le_bytes(),
    )?;
    ensure!(
        !ok && replies.len() == 1 && replies[0]["code"] == "BAD_REQUEST",
        "{replies:?}"
    );
    Ok(())
}

#[test]
fn bids_are_sealed_and_opened_through_the_api_with_streamed_files_and_a_job() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(
        &hsm.envs(),
        &hsm.module_path(),
        &["--max-upload", "1000000"],
    )?;
    let c = d.client()?;
    let document: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    runtime().block_on(async {
        let upload = |name: &str, bytes: Vec<u8>| -> Result<hyper::Request<Full<Bytes>>> {
            Ok(c.req(Method::POST, &format!("/v1/files?name={name}"))
                .header("content-type", "application/octet-stream")
                .body(Full::new(Bytes::from(bytes)))?)
        };
        let r = c.send(upload("penawaran.pdf", document.clone())?).await?;
        ensure!(r.status == StatusCode::CREATED, "upload: {:?}", r.body);
        let up = r.json()?;
        ensure!(up["bytes"] == document.len() as u64, "{up}");
        let pokja = fixture("pokja-rsa2048")?.cert_der;
        let r = c
            .send(c.post_json(
                "/v1/seal",
                &json!({"file": up["id"], "certificate": fp("vendor-p256")?, "pin": PIN,
                        "recipients": [b64(&pokja)]}),
            )?)
            .await?;
        ensure!(r.status == StatusCode::OK, "seal: {:?}", r.body);
        let sealed = r.json()?;
        ensure!(sealed["name"] == "penawaran.pdf.p7m", "{sealed}");
        let r = c
            .send(
                c.get(&format!(
                    "/v1/files/{}",
                    sealed["id"].as_str().context("id")?
                ))
                .body(Full::default())?,
            )
            .await?;
        ensure!(
            r.status == StatusCode::OK
                && r.body.len() as u64 == sealed["bytes"].as_u64().context("bytes")?
        );
        ensure!(
            r.body.len() > document.len()
                && !r.body.windows(64).any(|w| w == &document[1000..1064]),
            "not encrypted"
        );

        // Open as a job; poll until it is done.
        let r = c
            .send(c.post_json(
                "/v1/open",
                &json!({"files": [sealed["id"]], "certificate": fp("pokja-rsa2048")?, "pin": PIN}),
            )?)
            .await?;
        ensure!(r.status == StatusCode::ACCEPTED, "open: {:?}", r.body);
        let job = r.json()?["job"].as_str().context("job")?.to_owned();
        let t0 = Instant::now();
        let view = loop {
            let v = c
                .send(c.get(&format!("/v1/jobs/{job}")).body(Full::default())?)
                .await?
                .json()?;
            if v["state"] != "running" {
                break v;
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(30),
                "job still running: {v}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure!(
            view["state"] == "done" && view["files_done"] == 1 && view["files_total"] == 1,
            "{view}"
        );
        let bid = &view["result"]["bids"][0];
        ensure!(
            bid["signature_valid"] == true && bid["status"] != "failed",
            "{bid}"
        );
        let download = bid["download"].as_str().context("download id")?;
        let r = c
            .send(
                c.get(&format!("/v1/files/{download}"))
                    .body(Full::default())?,
            )
            .await?;
        ensure!(r.body.as_ref() == document.as_slice(), "opened bid differs");
        ensure!(
            r.headers["content-disposition"]
                .to_str()?
                .contains("penawaran.pdf"),
            "{:?}",
            r.headers
        );

        // Refusals: too large, a bad name, an unknown file, a wrong PIN fails the job.
        // The daemon refuses on the declared length without reading the body, so the client
        // may still be writing when the connection closes: a 413, or the write cut off.
        match c.send(upload("big.pdf", vec![0u8; 1_000_001])?).await {
            Ok(r) => expect(&r, 413, "PAYLOAD_TOO_LARGE", "upload over the limit")?,
            Err(e) => ensure!(
                format!("{e:#}").contains("Broken pipe")
                    || format!("{e:#}").contains("Connection reset"),
                "upload over the limit: {e:#}"
            ),
        }
        let r = c.send(upload("..", b"x".to_vec())?).await?;
        expect(&r, 400, "BAD_REQUEST", "bad file name")?;
        let r = c
            .send(
                c.get(&format!("/v1/files/{}", "0".repeat(32)))
                    .body(Full::default())?,
            )
            .await?;
        expect(&r, 404, "NOT_FOUND", "unknown file")?;
        let r = c
            .send(
                c.req(Method::DELETE, &format!("/v1/files/{download}"))
                    .body(Full::default())?,
            )
            .await?;
        ensure!(r.status == StatusCode::OK);
        let r = c
            .send(
                c.get(&format!("/v1/files/{download}"))
                    .body(Full::default())?,
            )
            .await?;
        expect(&r, 404, "NOT_FOUND", "deleted file")?;
        Ok(())
    })
}
