//! Segel's PKCS#11 module (`libsegel_pkcs11.so`) driven by the programs that load it in the
//! field: OpenSC `pkcs11-tool`, OpenSSL 3 through `pkcs11-provider` (signing and `openssl cms
//! -decrypt`), and NSS (`modutil` + `certutil`, what Firefox does). Key files are written in the
//! tests by three independent PKCS#12 implementations — OpenSSL (AES and `-legacy`), Python
//! `cryptography` and NSS `pk12util` — from the checked-in test PKI; results are checked by
//! OpenSSL. Hostile files (corrupt, truncated, huge, unsupported algorithms) must never crash a
//! consumer. Every test has its own keystore folder and config (never the machine's).

use std::path::Path;

use anyhow::{Context, Result, ensure};
use segel_tests::fixtures::fixture;
use segel_tests::openssl::{self, openssl};
use segel_tests::shim::{Keystore, NssDb, OpenSslProvider, Writer, module_path};

const PIN: &str = "rahasia-Tender 2025";

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Signs `data` on token `label` with `pkcs11-tool --sign -m MECH` and verifies the signature
/// with OpenSSL against the fixture's certificate.
fn sign_with_pkcs11_tool(ks: &Keystore, label: &str, fixture_name: &str) -> Result<()> {
    sign_with_pkcs11_tool_pin(ks, label, fixture_name, PIN)
}

fn sign_with_pkcs11_tool_pin(
    ks: &Keystore,
    label: &str,
    fixture_name: &str,
    pin: &str,
) -> Result<()> {
    let f = fixture(fixture_name)?;
    let data = ks.dir().join(format!("{label}.data"));
    let sig = ks.dir().join(format!("{label}.sig"));
    std::fs::write(&data, b"dokumen penawaran tender 2025")?;
    let (mech, hash, extra): (&str, &str, &[&str]) = match f.entry.curve.as_deref() {
        None => ("SHA256-RSA-PKCS", "sha256", &[]),
        Some("P-384") => ("ECDSA-SHA384", "sha384", &["--signature-format", "openssl"]),
        Some(_) => ("ECDSA-SHA256", "sha256", &["--signature-format", "openssl"]),
    };
    let (d, g) = (s(&data), s(&sig));
    let mut args = vec![
        "--token-label",
        label,
        "--login",
        "--pin",
        pin,
        "--sign",
        "-m",
        mech,
        "-i",
        &d,
        "-o",
        &g,
    ];
    args.extend_from_slice(extra);
    ks.pkcs11_tool(&args)?;
    openssl::verify_raw(&f.cert_pem_path, &data, &sig, hash, false)
}

#[test]
fn key_files_from_openssl_python_and_nss_are_tokens_whose_keys_sign_verifiably() -> Result<()> {
    let ks = Keystore::new()?;
    let mut cases = Vec::new();
    for (i, writer) in Writer::ALL.into_iter().enumerate() {
        // Every writer with RSA; the EC curves spread over the writers.
        let ec = ["vendor-p256", "vendor-p384"][i % 2];
        for fixture_name in ["vendor-rsa2048", ec] {
            let label = format!("w{i}-{fixture_name}");
            ks.add(&label, fixture_name, writer, PIN)?;
            cases.push((label, fixture_name, writer));
        }
    }
    let listing = ks.pkcs11_tool(&["-L"])?;
    for (label, fixture_name, writer) in &cases {
        ensure!(
            listing.contains(&format!("token label        : {label}\n")),
            "{writer:?} {fixture_name} not a token:\n{listing}"
        );
        sign_with_pkcs11_tool(&ks, label, fixture_name)
            .with_context(|| format!("{writer:?} {fixture_name}"))?;
    }
    Ok(())
}

#[test]
fn wrong_passphrase_is_pin_incorrect_for_every_writer() -> Result<()> {
    let ks = Keystore::new()?;
    for (i, writer) in Writer::ALL.into_iter().enumerate() {
        let label = format!("w{i}");
        ks.add(&label, "vendor-p256", writer, PIN)?;
        let out = ks.pkcs11_tool_output(&[
            "--token-label",
            &label,
            "--login",
            "--pin",
            "bukan-ini",
            "-O",
        ])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains("CKR_PIN_INCORRECT"),
            "{writer:?}: {err}"
        );
    }
    Ok(())
}

#[test]
fn pkcs11_tool_lists_objects_decrypts_and_passes_its_self_test_on_python_and_nss_files()
-> Result<()> {
    let ks = Keystore::new()?;
    ks.add("py", "pokja-rsa2048", Writer::PythonAes, PIN)?;
    // Labels that are not prefixes of each other: pkcs11-tool matches --token-label by prefix.
    ks.add("nsslama", "pokja-rsa2048", Writer::NssLegacy, PIN)?;
    ks.add("ecnss", "vendor-p256", Writer::NssAes, PIN)?;
    let f = fixture("pokja-rsa2048")?;
    let secret = b"kunci sesi 0123456789abcdef";
    let ct = ks.dir().join("ct");
    std::fs::write(&ct, openssl::encrypt_pkcs1(&f.cert_pem_path, secret)?)?;
    for label in ["py", "nsslama"] {
        let objects = ks.pkcs11_tool(&["--token-label", label, "--login", "--pin", PIN, "-O"])?;
        ensure!(
            objects.contains("Private Key Object; RSA")
                && objects.contains("Certificate Object; type = X.509 cert")
                && objects.contains("Public Key Object; RSA 2048 bits"),
            "{label}:\n{objects}"
        );
        let pt = ks.dir().join(format!("{label}.pt"));
        ks.pkcs11_tool(&[
            "--token-label",
            label,
            "--login",
            "--pin",
            PIN,
            "--decrypt",
            "-m",
            "RSA-PKCS",
            "-i",
            &s(&ct),
            "-o",
            &s(&pt),
        ])?;
        ensure!(std::fs::read(&pt)? == secret, "{label}: wrong plaintext");
    }
    for label in ["py", "ecnss"] {
        let out = ks.pkcs11_tool(&["--token-label", label, "--test", "--login", "--pin", PIN])?;
        ensure!(out.contains("No errors"), "{label}:\n{out}");
    }
    Ok(())
}

#[test]
fn openssl_pkcs11_provider_signs_with_shim_keys_and_openssl_verifies() -> Result<()> {
    let ks = Keystore::new()?;
    ks.add("rsa", "vendor-rsa2048", Writer::OpenSslAes, PIN)?;
    ks.add("ec", "vendor-p384", Writer::PythonAes, PIN)?;
    let provider = OpenSslProvider::new(&module_path()?, PIN, ks.envs())?;
    let data = provider.dir().join("data");
    std::fs::write(&data, b"surat penawaran".repeat(100))?;
    for (label, fixture_name, hash) in [
        ("rsa", "vendor-rsa2048", "sha256"),
        ("ec", "vendor-p384", "sha384"),
    ] {
        let sig = provider.dir().join(format!("{label}.sig"));
        let key = format!("pkcs11:token={label};type=private");
        let out = provider.openssl(&[
            "dgst",
            &format!("-{hash}"),
            "-sign",
            &key,
            "-out",
            &s(&sig),
            &s(&data),
        ])?;
        ensure!(
            out.status.success(),
            "{label}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        openssl::verify_raw(
            &fixture(fixture_name)?.cert_pem_path,
            &data,
            &sig,
            hash,
            false,
        )
        .with_context(|| label.to_owned())?;
    }
    Ok(())
}

#[test]
fn openssl_cms_decrypt_through_pkcs11_provider_opens_envelopes_for_shim_keys() -> Result<()> {
    let ks = Keystore::new()?;
    ks.add("pokja", "pokja-rsa2048", Writer::NssAes, PIN)?;
    let f = fixture("pokja-rsa2048")?;
    let provider = OpenSslProvider::new(&module_path()?, PIN, ks.envs())?;
    let plain = provider.dir().join("bid.txt");
    std::fs::write(&plain, b"harga penawaran: Rp 1.234.567.890".repeat(50))?;
    let cert = s(&f.cert_pem_path);
    let cases: [(&str, &[&str]); 2] = [
        ("pkcs1", &[]),
        (
            "oaep-sha256",
            &[
                "-keyopt",
                "rsa_padding_mode:oaep",
                "-keyopt",
                "rsa_oaep_md:sha256",
            ],
        ),
    ];
    for (name, keyopts) in cases {
        let env = provider.dir().join(format!("{name}.der"));
        let out = provider.dir().join(format!("{name}.out"));
        let mut args = vec![
            "cms",
            "-encrypt",
            "-binary",
            "-aes-256-cbc",
            "-outform",
            "DER",
            "-in",
        ];
        let (p, e, o) = (s(&plain), s(&env), s(&out));
        args.extend([p.as_str(), "-out", e.as_str(), "-recip", cert.as_str()]);
        args.extend_from_slice(keyopts);
        openssl(&args)?;
        let r = provider.openssl(&[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            &e,
            "-recip",
            &cert,
            "-inkey",
            "pkcs11:token=pokja;type=private",
            "-out",
            &o,
        ])?;
        ensure!(
            r.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        ensure!(
            std::fs::read(&out)? == std::fs::read(&plain)?,
            "{name}: plaintext differs"
        );
    }
    Ok(())
}

#[test]
fn nss_modutil_adds_the_module_and_certutil_sees_the_certificates() -> Result<()> {
    let ks = Keystore::new()?;
    ks.add("terbuka", "vendor-p256", Writer::OpenSslClearCerts, PIN)?;
    ks.add("tertutup", "pokja-rsa2048", Writer::NssAes, PIN)?;
    let db = NssDb::with_module("segel", &module_path()?, ks.envs())?;
    let modules = db.tool("modutil", &["-list", "segel"])?;
    for token in ["terbuka", "tertutup"] {
        ensure!(
            modules.contains(&format!("Token Name: {token}")),
            "{token}:\n{modules}"
        );
    }
    // Without the passphrase NSS sees the certificate stored in the clear only.
    let before = db.tool("certutil", &["-L", "-h", "all"])?;
    ensure!(before.contains("terbuka:vendor-p256"), "{before}");
    ensure!(!before.contains("tertutup:"), "{before}");
    // With it, NSS logs in and sees the encrypted one too, and its private key.
    let pw = db.dir().join("pw");
    std::fs::write(&pw, PIN)?;
    let after = db.tool("certutil", &["-L", "-h", "all", "-f", &s(&pw)])?;
    ensure!(after.contains("tertutup:pokja-rsa2048"), "{after}");
    let keys = db.tool("certutil", &["-K", "-h", "tertutup", "-f", &s(&pw)])?;
    ensure!(
        keys.contains("rsa") && keys.contains("pokja-rsa2048"),
        "{keys}"
    );
    // The certificate NSS reads from the token is the fixture's.
    let pem = db.tool(
        "certutil",
        &[
            "-L",
            "-h",
            "terbuka",
            "-f",
            &s(&pw),
            "-n",
            "terbuka:vendor-p256",
            "-a",
        ],
    )?;
    let expected = std::fs::read_to_string(fixture("vendor-p256")?.cert_pem_path)?;
    let body = |t: &str| -> String { t.lines().filter(|l| !l.starts_with("-----")).collect() };
    ensure!(body(&pem) == body(&expected), "certificate differs:\n{pem}");
    Ok(())
}

#[test]
fn corrupt_truncated_huge_and_unsupported_files_never_crash_a_consumer() -> Result<()> {
    let ks = Keystore::new()?;
    let good = ks.add("baik", "vendor-rsa2048", Writer::OpenSslAes, PIN)?;
    let bytes = std::fs::read(&good)?;
    // Truncated at several points, one byte flipped in the middle, garbage, empty.
    for cut in [1, 16, bytes.len() / 3, bytes.len() - 1] {
        std::fs::write(ks.file(&format!("potong{cut}")), &bytes[..cut])?;
    }
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x55;
    std::fs::write(ks.file("rusak"), &flipped)?;
    std::fs::write(ks.file("sampah"), b"\x30\x84\xff\xff\xff\xff garbage")?;
    std::fs::write(ks.file("kosong"), b"")?;
    // 3 MiB: larger than any key file; a DER header claiming that length.
    let mut huge = vec![0x30, 0x83, 0x30, 0x00, 0x00];
    huge.resize(3 << 20, 0xAA);
    std::fs::write(ks.file("besar"), &huge)?;
    // Valid PKCS#12 with algorithms the module does not do: an Ed25519 key, RC4 encryption.
    let work = ks.dir();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ed25519",
        "-nodes",
        "-subj",
        "/CN=Ed25519",
        "-keyout",
        &s(&work.join("ed.key")),
        "-out",
        &s(&work.join("ed.crt")),
    ])?;
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        &s(&work.join("ed.key")),
        "-in",
        &s(&work.join("ed.crt")),
        "-passout",
        &format!("pass:{PIN}"),
        "-out",
        &s(&ks.file("ed25519")),
    ])?;
    let rc4 = openssl_rc4(&ks)?;

    let listing = ks.pkcs11_tool(&["-L"])?;
    ensure!(listing.contains("token label        : baik\n"), "{listing}");
    for bad in ["potong1", "potong16", "sampah", "kosong", "besar"] {
        ensure!(
            !listing.contains(&format!("token label        : {bad}")),
            "{bad} became a token:\n{listing}"
        );
    }
    // A flipped byte inside the encrypted part still parses: it is a token whose MAC fails, which
    // PKCS#12 can not tell from a wrong passphrase.
    ensure!(
        listing.contains("token label        : rusak\n"),
        "{listing}"
    );
    let out = ks.pkcs11_tool_output(&["--token-label", "rusak", "--login", "--pin", PIN, "-O"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("CKR_PIN_INCORRECT"),
        "corrupt file: {err}"
    );
    // The Ed25519 file is a token whose key is not offered; login succeeds, no private key.
    let ed = ks.pkcs11_tool(&["--token-label", "ed25519", "--login", "--pin", PIN, "-O"])?;
    ensure!(!ed.contains("Private Key Object"), "{ed}");
    if rc4 {
        let out =
            ks.pkcs11_tool_output(&["--token-label", "rc4", "--login", "--pin", PIN, "-O"])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains("CKR_FUNCTION_FAILED"),
            "RC4 file: {err}"
        );
    }
    // The good token still works with all of this beside it.
    sign_with_pkcs11_tool(&ks, "baik", "vendor-rsa2048")?;
    // NSS and OpenSSL load the module over the same folder without failing.
    let db = NssDb::with_module("segel", &module_path()?, ks.envs())?;
    db.tool("certutil", &["-L", "-h", "all"])?;
    let provider = OpenSslProvider::new(&module_path()?, PIN, ks.envs())?;
    let data = provider.dir().join("d");
    std::fs::write(&data, b"x")?;
    let out = provider.openssl(&[
        "dgst",
        "-sha256",
        "-sign",
        "pkcs11:token=baik;type=private",
        "-out",
        &s(&provider.dir().join("sig")),
        &s(&data),
    ])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// A key file encrypted with `pbeWithSHAAnd128BitRC4` (if this OpenSSL's legacy provider still
/// writes it); `false` when it cannot be made here.
fn openssl_rc4(ks: &Keystore) -> Result<bool> {
    let f = fixture("vendor-p256")?;
    let out = segel_tests::run::run_output(
        std::process::Command::new("openssl")
            .args([
                "pkcs12",
                "-export",
                "-legacy",
                "-keypbe",
                "PBE-SHA1-RC4-128",
            ])
            .args(["-certpbe", "PBE-SHA1-RC4-128", "-inkey"])
            .arg(&f.key_path)
            .arg("-in")
            .arg(&f.cert_pem_path)
            .arg("-passout")
            .arg(format!("pass:{PIN}"))
            .arg("-out")
            .arg(ks.file("rc4")),
        &[],
    )?;
    Ok(out.status.success())
}

const SO_PIN: &str = "petugas-SO-2025";
const NEW_PIN: &str = "sandi baru 2026!";

/// The ID (`0x…`) of the blank slot pkcs11-tool lists for the keystore folder.
fn blank_slot(ks: &Keystore) -> Result<String> {
    let listing = ks.pkcs11_tool(&["-L"])?;
    listing
        .lines()
        .find(|l| l.contains("Segel new key file in"))
        .and_then(|l| l.split('(').nth(1))
        .and_then(|l| l.split(')').next())
        .map(str::to_owned)
        .with_context(|| format!("no blank slot listed:\n{listing}"))
}

/// `pkcs11-tool ARGS` expected to fail with `rv` in its error output.
fn fails_with(ks: &Keystore, args: &[&str], rv: &str) -> Result<()> {
    let out = ks.pkcs11_tool_output(args)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains(rv),
        "{args:?}: expected {rv}, got {err}"
    );
    Ok(())
}

/// A certificate from the test CA for the token key `id_hex`, through a CSR that OpenSSL signs
/// with that key via pkcs11-provider (the enrolment a vendor does with a real CA).
fn certify(ks: &Keystore, pin: &str, id_hex: &str, cn: &str) -> Result<std::path::PathBuf> {
    let provider = OpenSslProvider::new(&module_path()?, pin, ks.envs())?;
    let csr = ks.dir().join(format!("{id_hex}.csr"));
    let cert = ks.dir().join(format!("{id_hex}.crt.der"));
    let out = provider.openssl(&[
        "req",
        "-new",
        "-key",
        &format!("pkcs11:token=budi;id=%{id_hex};type=private"),
        "-subj",
        &format!("/CN={cn}/O=PT Maju Jaya/C=ID"),
        "-out",
        &s(&csr),
    ])?;
    ensure!(
        out.status.success(),
        "CSR: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    openssl(&["req", "-in", &s(&csr), "-verify", "-noout"])?;
    let ca = fixture("issuing-ca")?;
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
        "30",
        "-outform",
        "DER",
        "-out",
        &s(&cert),
    ])?;
    Ok(cert)
}

#[test]
fn enrolment_with_pkcs11_tool_writes_a_pkcs12_that_openssl_reads_with_the_changed_passphrase()
-> Result<()> {
    let ks = Keystore::new()?;
    let slot = blank_slot(&ks)?;
    // The blank token is not initialised: no user PIN, no key file yet.
    fails_with(
        &ks,
        &["--slot", &slot, "--login", "--pin", PIN, "-O"],
        "CKR_USER_PIN_NOT_INITIALIZED",
    )?;
    ks.pkcs11_tool(&[
        "--slot",
        &slot,
        "--init-token",
        "--label",
        "budi",
        "--so-pin",
        SO_PIN,
        "--init-pin",
        "--pin",
        PIN,
    ])?;
    let file = ks.file("budi");
    ensure!(file.exists(), "C_InitPIN wrote no key file");
    // Keys of every supported kind, each written into the file as it is made.
    for (key_type, id) in [
        ("EC:prime256v1", "01"),
        ("rsa:3072", "02"),
        ("EC:secp384r1", "03"),
        ("rsa:2048", "04"),
    ] {
        let out = ks.pkcs11_tool(&[
            "--token-label",
            "budi",
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            key_type,
            "--id",
            id,
            "--label",
            &format!("budi-{id}"),
        ])?;
        ensure!(out.contains("Key pair generated"), "{key_type}: {out}");
    }
    for (id, cn) in [("01", "Budi EC"), ("02", "Budi RSA")] {
        let cert = certify(&ks, PIN, id, cn)?;
        // A different --id on purpose: the public key decides which key the certificate joins.
        ks.pkcs11_tool(&[
            "--token-label",
            "budi",
            "--login",
            "--pin",
            PIN,
            "--write-object",
            &s(&cert),
            "--type",
            "cert",
            "--id",
            "ee",
        ])?;
    }
    // Certificates are readable before login and carry their key's CKA_ID.
    let public = ks.pkcs11_tool(&["--token-label", "budi", "-O"])?;
    ensure!(
        public.contains("subject:    DN: CN=Budi EC") && public.contains("ID:         01"),
        "{public}"
    );
    ensure!(public.contains("ID:         02") && !public.contains("ID:         ee"));
    ks.pkcs11_tool(&[
        "--token-label",
        "budi",
        "--login",
        "--pin",
        PIN,
        "--change-pin",
        "--new-pin",
        NEW_PIN,
    ])?;
    fails_with(
        &ks,
        &["--token-label", "budi", "--login", "--pin", PIN, "-O"],
        "CKR_PIN_INCORRECT",
    )?;

    // OpenSSL reads the file with the new passphrase only, and sees what was promised.
    let pkcs12_info = |pass: &str| {
        segel_tests::run::run_output(
            std::process::Command::new("openssl").args([
                "pkcs12",
                "-info",
                "-nodes",
                "-in",
                &s(&file),
                "-passin",
                &format!("pass:{pass}"),
            ]),
            &[],
        )
    };
    let out = pkcs12_info(NEW_PIN)?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // OpenSSL prints the structure on stderr and the bags on stdout.
    let info = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let shrouded =
        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration 600000, PRF hmacWithSHA256";
    ensure!(info.matches(shrouded).count() == 4, "{info}");
    ensure!(info.contains("MAC: sha256, Iteration 600000"), "{info}");
    for id in ["01", "02", "03", "04"] {
        ensure!(info.contains(&format!("localKeyID: {id} ")), "{id}: {info}");
    }
    ensure!(info.contains("subject=CN = Budi EC"), "{info}");
    let old = pkcs12_info(PIN)?;
    ensure!(
        !old.status.success(),
        "the old passphrase still opens the file"
    );

    // The enrolled key signs, and its certificate verifies the signature.
    let f = ks.dir().join("01.crt.der");
    let cert_pem = ks.dir().join("01.crt.pem");
    openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        &s(&f),
        "-out",
        &s(&cert_pem),
    ])?;
    let data = ks.dir().join("doc");
    let sig = ks.dir().join("doc.sig");
    std::fs::write(&data, b"penawaran setelah enrolmen")?;
    ks.pkcs11_tool(&[
        "--token-label",
        "budi",
        "--login",
        "--pin",
        NEW_PIN,
        "--sign",
        "--id",
        "01",
        "-m",
        "ECDSA-SHA256",
        "--signature-format",
        "openssl",
        "-i",
        &s(&data),
        "-o",
        &s(&sig),
    ])?;
    openssl::verify_raw(&cert_pem, &data, &sig, "sha256", false)?;
    // Nothing but the key file is left in the folder (no temporary files).
    let names: Vec<String> = std::fs::read_dir(ks.folder())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    ensure!(names == ["budi.p12"], "{names:?}");
    Ok(())
}

#[test]
fn enrolment_refuses_bad_requests_with_clear_errors_and_leaves_files_intact() -> Result<()> {
    let ks = Keystore::new()?;
    ks.add("ada", "vendor-p256", Writer::OpenSslAes, PIN)?;
    let slot = blank_slot(&ks)?;
    // An existing file is never re-initialised or overwritten.
    fails_with(
        &ks,
        &[
            "--slot",
            &slot,
            "--init-token",
            "--label",
            "ada",
            "--so-pin",
            SO_PIN,
        ],
        "CKR_FUNCTION_FAILED",
    )?;
    fails_with(
        &ks,
        &[
            "--token-label",
            "ada",
            "--init-token",
            "--label",
            "ada",
            "--so-pin",
            SO_PIN,
        ],
        "CKR_FUNCTION_NOT_SUPPORTED",
    )?;
    // Passphrases shorter than 8 bytes are refused for new files.
    fails_with(
        &ks,
        &[
            "--slot",
            &slot,
            "--init-token",
            "--label",
            "baru",
            "--so-pin",
            SO_PIN,
            "--init-pin",
            "--pin",
            "pendek",
        ],
        "CKR_PIN_LEN_RANGE",
    )?;
    ensure!(
        !ks.file("baru").exists(),
        "a file was written for a refused PIN"
    );
    // Unsupported key sizes and curves.
    fails_with(
        &ks,
        &[
            "--token-label",
            "ada",
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "rsa:1024",
        ],
        "CKR_KEY_SIZE_RANGE",
    )?;
    fails_with(
        &ks,
        &[
            "--token-label",
            "ada",
            "--login",
            "--pin",
            PIN,
            "--keypairgen",
            "--key-type",
            "EC:secp256k1",
        ],
        "CKR_ATTRIBUTE_VALUE_INVALID",
    )?;
    // A wrong old passphrase changes nothing.
    let before = std::fs::read(ks.file("ada"))?;
    fails_with(
        &ks,
        &[
            "--token-label",
            "ada",
            "--login",
            "--pin",
            PIN,
            "--change-pin",
            "--pin",
            "salah-lama",
            "--new-pin",
            NEW_PIN,
        ],
        "CKR_PIN_INCORRECT",
    )?;
    ensure!(std::fs::read(ks.file("ada"))? == before, "file changed");
    // A certificate without a key on the token (the CA) is stored unlinked; the key still signs.
    let ca = fixture("issuing-ca")?;
    ks.pkcs11_tool(&[
        "--token-label",
        "ada",
        "--login",
        "--pin",
        PIN,
        "--write-object",
        &s(&ca.cert_der_path),
        "--type",
        "cert",
    ])?;
    let objects = ks.pkcs11_tool(&["--token-label", "ada", "--login", "--pin", PIN, "-O"])?;
    ensure!(objects.contains("CN=Segel Test CA DS G1"), "{objects}");
    sign_with_pkcs11_tool(&ks, "ada", "vendor-p256")?;
    Ok(())
}

#[test]
fn passphrase_changes_never_leave_a_moment_without_a_valid_key_file() -> Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let ks = Keystore::new()?;
    let file = ks.add("budi", "vendor-rsa2048", Writer::OpenSslAes, PIN)?;
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| -> Result<()> {
        let reader = scope.spawn(|| -> Result<usize> {
            let mut reads = 0;
            while !done.load(Ordering::SeqCst) {
                let bytes = std::fs::read(&file).context("key file missing")?;
                segel_pkcs11::pkcs12::inspect(&bytes)
                    .map_err(|e| anyhow::anyhow!("invalid key file seen: {e}"))?;
                reads += 1;
            }
            Ok(reads)
        });
        let pins = [PIN, NEW_PIN, PIN, NEW_PIN];
        for pair in pins.windows(2) {
            let r = ks.pkcs11_tool(&[
                "--token-label",
                "budi",
                "--login",
                "--pin",
                pair[0],
                "--change-pin",
                "--new-pin",
                pair[1],
            ]);
            if r.is_err() {
                done.store(true, Ordering::SeqCst);
            }
            r?;
        }
        done.store(true, Ordering::SeqCst);
        let reads = reader
            .join()
            .map_err(|_| anyhow::anyhow!("reader panicked"))??;
        ensure!(reads > 10, "reader only looked {reads} times");
        Ok(())
    })?;
    sign_with_pkcs11_tool_pin(&ks, "budi", "vendor-rsa2048", NEW_PIN)
}
