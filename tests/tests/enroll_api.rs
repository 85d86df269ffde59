//! Enrolment and the PIN lifecycle through the daemon API (issue 9) on SoftHSM2: `POST
//! /v1/enroll` makes the key on the token and returns a PKCS#10 request that OpenSSL verifies;
//! a test CA issues; `POST /v1/certificates/import` stores it with the CA certificate; the new
//! key signs CMS through `/v1/sign` and OpenSSL verifies it to the root. Then PIN status,
//! change, wrong PIN, block, unblock; and hostile callers refused with the token untouched.
//!
//! Run: `cargo nextest run -p segel-tests --test enroll_api`.

use std::path::Path;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, StatusCode};
use segel_tests::daemon::{Client, DaemonProcess, Response, b64, expect, ok, runtime};
use segel_tests::fixtures::{chain_pem_path, fixture, issue_with_test_ca};
use segel_tests::openssl::{openssl, verified_request_text};
use segel_tests::softhsm::SoftHsm;
use segel_tests::spy::Spy;
use serde_json::{Value, json};

const PIN: &str = "123456";
const SO_PIN: &str = "87654321";
const SITE: &str = "https://spse.lkpp.go.id";

/// An empty initialised token `kunci`.
fn token() -> Result<SoftHsm> {
    let hsm = SoftHsm::new()?;
    hsm.init_token("kunci", SO_PIN, PIN)?;
    Ok(hsm)
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn applicant() -> Value {
    json!({
        "name": "Budi Santoso",
        "email": "budi@majujaya.co.id",
        "org": "PT Maju Jaya Konstruksi",
        "unit": "Direktur",
        "city": "Balikpapan",
        "province": "Kalimantan Timur",
        "npwp": "222222222222222",
        "nik": "3273011203890003",
    })
}

async fn post(c: &Client, path: &str, body: &Value) -> Result<Response> {
    c.send(c.post_json(path, body)?).await
}

/// The test CA issues for the request in `csr`: the certificate and the CA's, PEM.
fn issue(csr: &Path, dir: &Path) -> Result<String> {
    let cert = dir.join("issued.crt.pem");
    issue_with_test_ca(csr, &cert)?;
    Ok([
        std::fs::read_to_string(&cert)?,
        fixture("issuing-ca")?.cert_pem,
    ]
    .concat())
}

/// The request in an enrolment answer, as OpenSSL prints it (after checking its signature).
fn request_text(v: &Value, dir: &Path, name: &str) -> Result<String> {
    let csr = dir.join(name);
    std::fs::write(&csr, v["request"].as_str().context("request PEM")?)?;
    verified_request_text(&csr)
}

#[test]
fn enrol_issue_import_and_sign_to_the_root_through_the_api() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    let dir = tempfile::tempdir()?;
    let csr = dir.path().join("budi.csr");
    let document = b"Dokumen penawaran: harga Rp 1.000.000\n".to_vec();
    let enrolled = runtime().block_on(async {
        // Every bad field at once, before the token is touched.
        let mut bad = applicant();
        bad["email"] = json!("budi at majujaya");
        bad["nik"] = json!("12345");
        bad["city"] = json!("");
        let r = post(
            &c,
            "/v1/enroll",
            &json!({"token": "kunci", "key": "rsa2048", "applicant": bad, "pin": PIN}),
        )
        .await?;
        expect(&r, 400, "BAD_REQUEST", "bad applicant")?;
        let v = r.json()?;
        let fields: Vec<(String, String)> = v["fields"]
            .as_array()
            .context("fields array")?
            .iter()
            .map(|f| {
                (
                    f["field"].as_str().unwrap_or("").to_owned(),
                    f["code"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        for want in [("city", "empty"), ("email", "invalid"), ("nik", "invalid")] {
            ensure!(
                fields.contains(&(want.0.to_owned(), want.1.to_owned())),
                "{want:?} missing from {v}"
            );
        }
        let r = post(
            &c,
            "/v1/enroll",
            &json!({"token": "kunci", "key": "rsa1024", "applicant": applicant(), "pin": PIN}),
        )
        .await?;
        expect(&r, 400, "BAD_REQUEST", "unknown key type")?;
        let r = post(
            &c,
            "/v1/enroll",
            &json!({"token": "nope", "key": "p256", "applicant": applicant(), "pin": PIN}),
        )
        .await?;
        expect(&r, 404, "TOKEN_NOT_FOUND", "unknown token")?;

        let v = ok(
            &post(
                &c,
                "/v1/enroll",
                &json!({"token": "kunci", "key": "rsa2048", "applicant": applicant(), "pin": PIN}),
            )
            .await?,
            "enroll",
        )?;
        ensure!(
            v["applicant"]["npwp"] == "22.222.222.2-222.222",
            "NPWP normalised: {v}"
        );
        let summary = v["summary"].as_str().context("summary")?;
        ensure!(
            summary.contains("PT Maju Jaya Konstruksi")
                && summary.contains("RSA 2048")
                && summary.contains(v["public_key_sha256"].as_str().context("spki hash")?),
            "summary: {summary}"
        );
        Ok(v)
    })?;
    let text = request_text(&enrolled, dir.path(), "budi.csr")?;
    for want in [
        "CN=Budi Santoso",
        "O=PT Maju Jaya Konstruksi",
        "serialNumber=NIK-3273011203890003",
        "Public-Key: (2048 bit)",
    ] {
        ensure!(
            text.contains(want),
            "{want:?} missing from the request:\n{text}"
        );
    }
    // The test CA issues.
    let ca = fixture("issuing-ca")?;
    let chain_pem = issue(&csr, dir.path())?;
    runtime().block_on(async {
        use base64::Engine;
        // Garbage and a CA-only file are refused.
        let r = post(
            &c,
            "/v1/certificates/import",
            &json!({"token": "kunci", "certificate": b64(b"not a certificate"), "pin": PIN}),
        )
        .await?;
        expect(&r, 422, "MALFORMED_INPUT", "garbage certificate")?;
        let r = post(
            &c,
            "/v1/certificates/import",
            &json!({"token": "kunci", "certificate": ca.cert_pem, "pin": PIN}),
        )
        .await?;
        expect(&r, 400, "BAD_REQUEST", "CA certificate only")?;
        // A certificate for another key has no home on this token.
        let r = post(
            &c,
            "/v1/certificates/import",
            &json!({"token": "kunci", "certificate": fixture("vendor-p256")?.cert_pem, "pin": PIN}),
        )
        .await?;
        ensure!(
            r.status != StatusCode::OK,
            "foreign certificate imported: {:?}",
            r.body
        );

        let v = ok(
            &post(
                &c,
                "/v1/certificates/import",
                &json!({"token": "kunci", "certificate": chain_pem, "pin": PIN}),
            )
            .await?,
            "import",
        )?;
        ensure!(
            v["intermediates"].as_array().is_some_and(|a| a.len() == 1),
            "{v}"
        );
        let fp = v["certificate"].as_str().context("fingerprint")?.to_owned();
        // The certificate is listed at once, and the new key signs CMS.
        let list = ok(
            &c.send(c.get("/v1/certificates").body(Full::default())?)
                .await?,
            "list",
        )?;
        ensure!(
            list.to_string().contains(&fp),
            "imported certificate not listed: {list}"
        );
        let v = ok(
            &post(
                &c,
                "/v1/sign",
                &json!({"certificate": fp, "data": b64(&document), "format": "cms", "pin": PIN}),
            )
            .await?,
            "sign",
        )?;
        let p7 = dir.path().join("doc.p7m");
        std::fs::write(
            &p7,
            base64::engine::general_purpose::STANDARD.decode(v["cms"].as_str().context("cms")?)?,
        )?;
        let out = std::process::Command::new("openssl")
            .args([
                "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any", "-in",
            ])
            .arg(&p7)
            .arg("-CAfile")
            .arg(chain_pem_path())
            .output()?;
        ensure!(
            out.status.success(),
            "openssl cms -verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(out.stdout == document, "CMS content differs");
        Ok(())
    })?;
    ensure!(!d.log().contains(PIN), "log holds the PIN");
    Ok(())
}

#[test]
fn pin_status_change_wrong_pin_block_and_unblock_through_the_api() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    let new_pin = "246810";
    let reset_pin = "135790";
    runtime().block_on(async {
        let st = ok(
            &post(&c, "/v1/pin/status", &json!({"token": "kunci"})).await?,
            "status",
        )?;
        ensure!(
            st["initialized"] == true && st["locked"] == false && st["count_low"] == false,
            "{st}"
        );
        let r = post(&c, "/v1/pin/status", &json!({"token": "nope"})).await?;
        expect(&r, 404, "TOKEN_NOT_FOUND", "status of an unknown token")?;

        let r = post(
            &c,
            "/v1/pin/change",
            &json!({"token": "kunci", "pin": PIN, "new_pin": "12"}),
        )
        .await?;
        expect(&r, 422, "PIN_INVALID", "short new PIN")?;
        let st = ok(
            &post(
                &c,
                "/v1/pin/change",
                &json!({"token": "kunci", "pin": PIN, "new_pin": new_pin}),
            )
            .await?,
            "change",
        )?;
        ensure!(st["locked"] == false, "{st}");
        // The old PIN is now wrong; the token counts it.
        let r = post(
            &c,
            "/v1/pin/change",
            &json!({"token": "kunci", "pin": PIN, "new_pin": reset_pin}),
        )
        .await?;
        expect(&r, 422, "PIN_INCORRECT", "old PIN after the change")?;
        let st = ok(
            &post(&c, "/v1/pin/status", &json!({"token": "kunci"})).await?,
            "status after a wrong PIN",
        )?;
        ensure!(
            st["count_low"] == true || st["final_try"] == true,
            "wrong PIN not counted: {st}"
        );
        // The new PIN works (the enrolment logs in with it).
        let r = post(
            &c,
            "/v1/enroll",
            &json!({"token": "kunci", "key": "p256", "applicant": applicant(), "pin": new_pin}),
        )
        .await?;
        ok(&r, "enroll with the new PIN")?;

        // Wrong PINs until the token blocks it (SoftHSM2 never blocks: then stop after 10).
        let mut locked = false;
        for _ in 0..10 {
            let r = post(
                &c,
                "/v1/pin/change",
                &json!({"token": "kunci", "pin": "000000", "new_pin": reset_pin}),
            )
            .await?;
            ensure!(r.status.as_u16() == 422, "{:?}", r.body);
            let code = r.code();
            ensure!(code == "PIN_INCORRECT" || code == "PIN_LOCKED", "{code}");
            if code == "PIN_LOCKED" {
                locked = true;
                break;
            }
        }
        let st = ok(
            &post(&c, "/v1/pin/status", &json!({"token": "kunci"})).await?,
            "status",
        )?;
        ensure!(
            st["locked"] == locked,
            "status disagrees with the refusal: {st}"
        );

        // A wrong SO PIN changes nothing; the right one sets a new user PIN.
        let r = post(
            &c,
            "/v1/pin/unblock",
            &json!({"token": "kunci", "so_pin": "11111111", "new_pin": reset_pin}),
        )
        .await?;
        expect(&r, 422, "PIN_INCORRECT", "wrong SO PIN")?;
        let st = ok(
            &post(
                &c,
                "/v1/pin/unblock",
                &json!({"token": "kunci", "so_pin": SO_PIN, "new_pin": reset_pin}),
            )
            .await?,
            "unblock",
        )?;
        ensure!(st["locked"] == false && st["count_low"] == false, "{st}");
        let r = post(
            &c,
            "/v1/enroll",
            &json!({"token": "kunci", "key": "p256", "applicant": applicant(), "pin": reset_pin}),
        )
        .await?;
        ok(&r, "enroll with the reset PIN")?;
        Ok(())
    })?;
    let log = d.log();
    for secret in [PIN, SO_PIN, new_pin, reset_pin] {
        ensure!(!log.contains(secret), "log holds a secret");
    }
    Ok(())
}

#[test]
fn hostile_enrol_and_pin_calls_are_refused_with_the_token_untouched() -> Result<()> {
    let hsm = token()?;
    let spy = Spy::new(SoftHsm::MODULE)?;
    let mut envs = hsm.envs();
    envs.extend(spy.envs());
    let d = DaemonProcess::start(&envs, &spy.module_path(), &[])?;
    let c = d.client()?;
    let calls: [(&str, Value); 5] = [
        (
            "/v1/enroll",
            json!({"token": "kunci", "key": "p256", "applicant": applicant(), "pin": PIN}),
        ),
        (
            "/v1/certificates/import",
            json!({"token": "kunci", "certificate": fixture("vendor-p256")?.cert_pem, "pin": PIN}),
        ),
        ("/v1/pin/status", json!({"token": "kunci"})),
        (
            "/v1/pin/change",
            json!({"token": "kunci", "pin": PIN, "new_pin": "999999"}),
        ),
        (
            "/v1/pin/unblock",
            json!({"token": "kunci", "so_pin": SO_PIN, "new_pin": "999999"}),
        ),
    ];
    runtime().block_on(async {
        let before = spy.calls()?.len();
        for (path, body) in &calls {
            let json_body = || Full::new(Bytes::from(body.to_string()));
            let cases: Vec<(&str, hyper::Request<Full<Bytes>>, u16, &str)> = vec![
                (
                    "web page Origin",
                    c.req(Method::POST, path)
                        .header("content-type", "application/json")
                        .header("origin", "https://evil.example")
                        .body(json_body())?,
                    403,
                    "ORIGIN_REJECTED",
                ),
                (
                    "no credential",
                    hyper::Request::builder()
                        .method(Method::POST)
                        .uri(*path)
                        .header("host", c.addr.to_string())
                        .header("content-type", "application/json")
                        .body(json_body())?,
                    401,
                    "UNAUTHORIZED",
                ),
                (
                    "allowed site without consent",
                    c.req(Method::POST, path)
                        .header("content-type", "application/json")
                        .header("x-segel-site-origin", SITE)
                        .body(json_body())?,
                    403,
                    "CONSENT_REQUIRED",
                ),
                (
                    "site outside the policy",
                    c.req(Method::POST, path)
                        .header("content-type", "application/json")
                        .header("x-segel-site-origin", "https://evil.example")
                        .body(json_body())?,
                    403,
                    "SITE_NOT_ALLOWED",
                ),
            ];
            for (case, req, status, code) in cases {
                let r = c.send(req).await?;
                expect(&r, status, code, &format!("{path}: {case}"))?;
            }
        }
        // Even a site the user consented to may not make keys or touch PINs (it could spend
        // the PIN's tries): only the user's own pages and the CLI may.
        ok(
            &post(&c, "/v1/consent", &json!({"origin": SITE})).await?,
            "consent",
        )?;
        for (path, body) in &calls {
            let req = c
                .req(Method::POST, path)
                .header("content-type", "application/json")
                .header("x-segel-site-origin", SITE)
                .body(Full::new(Bytes::from(body.to_string())))?;
            let r = c.send(req).await?;
            expect(
                &r,
                403,
                "SITE_NOT_ALLOWED",
                &format!("{path}: consented site"),
            )?;
        }
        ensure!(
            spy.calls()?.len() == before,
            "a refused call reached the token"
        );
        // The same calls pass the gate for a local caller (so the check above can fail).
        let st = ok(
            &post(&c, "/v1/pin/status", &json!({"token": "kunci"})).await?,
            "status",
        )?;
        ensure!(st["locked"] == false, "{st}");
        ensure!(
            spy.calls()?.len() > before,
            "the spy saw no call for an allowed request"
        );
        Ok(())
    })?;
    // The PIN was not changed: the original still logs in.
    segel_tests::softhsm::pkcs11_tool(
        &hsm.module_path(),
        &hsm.envs(),
        &[
            "--token-label",
            "kunci",
            "--login",
            "--pin",
            PIN,
            "--list-objects",
        ],
    )?;
    Ok(())
}

/// Read SSE frames until `want` `certificate_expiring` events arrived (or 30 s passed).
async fn expiring_events(c: &Client, want: usize) -> Result<Vec<Value>> {
    use http_body_util::BodyExt;
    let io = hyper_util::rt::TokioIo::new(c.tls().await?);
    let (mut sender, driver) = hyper::client::conn::http1::handshake::<_, Full<Bytes>>(io).await?;
    tokio::spawn(driver);
    let resp = sender
        .send_request(c.get("/v1/events").body(Full::default())?)
        .await?;
    ensure!(resp.status() == StatusCode::OK, "events: {}", resp.status());
    let mut body = resp.into_body();
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events: Vec<Value> = text
            .split("\n\n")
            .filter(|f| f.starts_with("event: certificate_expiring\n"))
            .filter_map(|f| f.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        if events.len() >= want {
            return Ok(events);
        }
        let frame = tokio::time::timeout_at(deadline, body.frame())
            .await
            .with_context(|| format!("only these events in time: {text}"))?
            .context("stream ended")??;
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
}

#[test]
fn certificates_near_expiry_are_announced_once_per_threshold() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &["--poll-ms", "200"])?;
    let c = d.client()?;
    let dir = tempfile::tempdir()?;
    let ca = fixture("issuing-ca")?;
    // Two keys on the token; the test CA issues one certificate for 5 days, one for 20, and a
    // third key gets one for 200 days (no event).
    let mut fps = Vec::new();
    for (i, days) in ["5", "20", "200"].iter().enumerate() {
        let mut who = applicant();
        who["name"] = json!(format!("Budi {days}"));
        let v = runtime().block_on(async {
            ok(
                &post(
                    &c,
                    "/v1/enroll",
                    &json!({"token": "kunci", "key": "p256", "applicant": who, "pin": PIN}),
                )
                .await?,
                "enroll",
            )
        })?;
        let csr = dir.path().join(format!("{i}.csr"));
        let cert = dir.path().join(format!("{i}.pem"));
        std::fs::write(&csr, v["request"].as_str().context("request")?)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&ca.cert_pem_path),
            "-CAkey",
            &s(&ca.key_path),
            "-days",
            days,
            "-copy_extensions",
            "copyall",
            "-sha256",
            "-out",
            &s(&cert),
        ])?;
        let v = runtime().block_on(async {
            ok(
                &post(&c, "/v1/certificates/import", &json!({"token": "kunci", "certificate": std::fs::read_to_string(&cert)?, "pin": PIN})).await?,
                "import",
            )
        })?;
        fps.push(v["certificate"].as_str().context("fingerprint")?.to_owned());
    }
    // `segel certs` shows the days left.
    let out = segel_tests::segel::segel_cmd(&hsm.envs(), d.home())?
        .args(["certs", "--json", "--module"])
        .arg(hsm.module_path())
        .output()?;
    let listed: Value = serde_json::from_slice(&out.stdout)
        .with_context(|| String::from_utf8_lossy(&out.stderr).into_owned())?;
    let days_of = |fp: &str| -> Option<i64> {
        listed
            .as_array()?
            .iter()
            .find(|r| r["fingerprint_sha256"] == fp || r["certificate"] == fp)?["days_left"]
            .as_i64()
    };
    ensure!(
        matches!(days_of(&fps[0]), Some(4 | 5)) && matches!(days_of(&fps[1]), Some(19 | 20)),
        "segel certs days_left: {listed}"
    );

    runtime().block_on(async {
        let events = expiring_events(&c, 2).await?;
        let find = |fp: &str| {
            events
                .iter()
                .filter(|e| e["certificate"] == fp)
                .collect::<Vec<_>>()
        };
        let e5 = find(&fps[0]);
        let e20 = find(&fps[1]);
        ensure!(
            e5.len() == 1 && e5[0]["threshold_days"] == 7,
            "5-day certificate: {events:?}"
        );
        ensure!(
            e20.len() == 1 && e20[0]["threshold_days"] == 30,
            "20-day certificate: {events:?}"
        );
        ensure!(
            e5[0]["token_label"] == "kunci" && e5[0]["days_left"].as_i64().is_some_and(|d| d <= 5),
            "{events:?}"
        );
        ensure!(
            find(&fps[2]).is_empty(),
            "200-day certificate announced: {events:?}"
        );
        // A second listener in the same daemon run hears nothing new about them.
        let again =
            tokio::time::timeout(std::time::Duration::from_secs(3), expiring_events(&c, 1)).await;
        ensure!(
            !matches!(again, Ok(Ok(ref v)) if !v.is_empty()),
            "announced twice: {again:?}"
        );
        Ok(())
    })?;
    Ok(())
}

/// PKCS#11 logins belong to the application, not the session: while the daemon's signing
/// workers are logged in, C_Login answers "already logged in" to any PIN. Enrolment and import
/// must still check the PIN they are given, and signing must go on working.
#[test]
fn enrol_and_import_check_the_pin_while_the_daemon_is_logged_in() -> Result<()> {
    let hsm = token()?;
    let d = DaemonProcess::start(&hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    let dir = tempfile::tempdir()?;
    let enrol =
        |pin: &str| json!({"token": "kunci", "key": "p256", "applicant": applicant(), "pin": pin});
    let v =
        runtime().block_on(async { ok(&post(&c, "/v1/enroll", &enrol(PIN)).await?, "enroll") })?;
    let csr = dir.path().join("key.csr");
    std::fs::write(&csr, v["request"].as_str().context("request PEM")?)?;
    let chain_pem = issue(&csr, dir.path())?;
    let import = |pin: &str| json!({"token": "kunci", "certificate": chain_pem, "pin": pin});
    runtime().block_on(async {
        let v = ok(
            &post(&c, "/v1/certificates/import", &import(PIN)).await?,
            "import",
        )?;
        let fp = v["certificate"].as_str().context("fingerprint")?.to_owned();
        let sign = |pin: Option<&str>| {
            let mut body = json!({"certificate": fp, "data": b64(b"penawaran"), "format": "cms"});
            if let Some(p) = pin {
                body["pin"] = json!(p);
            }
            body
        };
        // Sign, then sign again without a PIN: the daemon is logged in to the token.
        let sign_logged_in = || async {
            ok(&post(&c, "/v1/sign", &sign(Some(PIN))).await?, "sign")?;
            ok(
                &post(&c, "/v1/sign", &sign(None)).await?,
                "sign without a PIN while logged in",
            )
        };
        sign_logged_in().await?;
        let r = post(&c, "/v1/enroll", &enrol("000000")).await?;
        expect(
            &r,
            422,
            "PIN_INCORRECT",
            "enrol with a wrong PIN while logged in",
        )?;
        ensure!(
            r.json()?["message"]
                .as_str()
                .is_some_and(|m| m.contains("PIN")),
            "{:?}",
            r.body
        );
        // The refused enrolment logged the daemon out: signing asks for the PIN again.
        let r = post(&c, "/v1/sign", &sign(None)).await?;
        expect(
            &r,
            422,
            "PIN_REQUIRED",
            "sign without a PIN after the logout",
        )?;
        sign_logged_in().await?;
        let r = post(&c, "/v1/certificates/import", &import("000000")).await?;
        expect(
            &r,
            422,
            "PIN_INCORRECT",
            "import with a wrong PIN while logged in",
        )?;

        // The right PIN works while logged in, and signing goes on.
        sign_logged_in().await?;
        ok(
            &post(&c, "/v1/enroll", &enrol(PIN)).await?,
            "enrol, right PIN",
        )?;
        sign_logged_in().await?;
        ok(
            &post(&c, "/v1/certificates/import", &import(PIN)).await?,
            "import, right PIN",
        )?;
        sign_logged_in().await?;
        Ok(())
    })?;
    ensure!(!d.log().contains(PIN), "log holds the PIN");
    Ok(())
}

/// The daemon follows the config file as the CLI does: `[pin] min_length` for new PINs,
/// `[enrollment]` for where NIK and NPWP go (a request's own `profile` still wins).
#[test]
fn pin_policy_and_enrolment_profile_come_from_the_config_file() -> Result<()> {
    let hsm = token()?;
    let home = tempfile::tempdir()?;
    std::fs::create_dir_all(home.path().join(".config/segel"))?;
    std::fs::write(
        home.path().join(".config/segel/config.toml"),
        "[pin]\nmin_length = 8\n\n[enrollment]\nprofile = \"legacy\"\n",
    )?;
    let d = DaemonProcess::start_in(home, &hsm.envs(), &hsm.module_path(), &[])?;
    let c = d.client()?;
    let dir = tempfile::tempdir()?;
    let (legacy, modern) = runtime().block_on(async {
        let r = post(
            &c,
            "/v1/pin/change",
            &json!({"token": "kunci", "pin": PIN, "new_pin": "1357924"}),
        )
        .await?;
        expect(&r, 422, "PIN_INVALID", "a 7-character PIN under min_length 8")?;
        ensure!(
            r.json()?["message"]
                .as_str()
                .is_some_and(|m| m.contains("at least 8")),
            "{:?}",
            r.body
        );
        let r = post(
            &c,
            "/v1/pin/unblock",
            &json!({"token": "kunci", "so_pin": SO_PIN, "new_pin": "1357924"}),
        )
        .await?;
        expect(&r, 422, "PIN_INVALID", "unblock to a 7-character PIN")?;
        ok(
            &post(
                &c,
                "/v1/pin/change",
                &json!({"token": "kunci", "pin": PIN, "new_pin": "13579246"}),
            )
            .await?,
            "an 8-character PIN",
        )?;
        let enrol = |profile: Option<&str>| {
            let mut body = json!({"token": "kunci", "key": "p256", "applicant": applicant(), "pin": "13579246"});
            if let Some(p) = profile {
                body["profile"] = json!(p);
            }
            body
        };
        let legacy = ok(&post(&c, "/v1/enroll", &enrol(None)).await?, "enrol")?;
        let modern = ok(
            &post(&c, "/v1/enroll", &enrol(Some("modern"))).await?,
            "enrol, modern profile",
        )?;
        Ok((legacy, modern))
    })?;
    let text = request_text(&legacy, dir.path(), "legacy.csr")?;
    for want in ["DNS:22.222.222.2-222.222", "KTP-3273011203890003"] {
        ensure!(text.contains(want), "{want:?} missing (legacy):\n{text}");
    }
    ensure!(
        !text.contains("NIK-"),
        "modern NIK in a legacy request:\n{text}"
    );
    let text = request_text(&modern, dir.path(), "modern.csr")?;
    ensure!(
        text.contains("serialNumber=NIK-3273011203890003") && !text.contains("DNS:"),
        "the request's profile did not win:\n{text}"
    );
    Ok(())
}
