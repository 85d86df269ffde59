//! Test fixtures: PKCS#12 key files written by OpenSSL in a temp dir, the built module's path,
//! and a `pkcs11-tool` runner with a private environment (never the user's config).
#![allow(dead_code, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub const PIN: &str = "rahasia-123";

/// `target/<profile>/libsegel_pkcs11.so`, next to the `deps/` folder holding this test binary.
pub fn module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let so = dir.join("libsegel_pkcs11.so");
    assert!(so.exists(), "{} not built", so.display());
    so
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A folder of fixture key files, made once per test binary.
pub struct Fixtures {
    _dir: tempfile::TempDir,
    pub keystore: PathBuf,
    pub work: PathBuf,
}

impl Fixtures {
    pub fn cert(&self, name: &str) -> PathBuf {
        self.work.join(format!("{name}.crt"))
    }
    pub fn key(&self, name: &str) -> PathBuf {
        self.work.join(format!("{name}.key"))
    }
}

fn openssl(work: &Path) -> Command {
    let mut c = Command::new("openssl");
    c.current_dir(work);
    c
}

/// Key files:
/// - `budi.p12`: RSA-2048, OpenSSL 3 default (PBES2 AES-256-CBC, PBKDF2-SHA256, SHA-256 MAC);
/// - `lama.p12`: the same key, `-legacy` (3DES key bag, RC2-40 certificates, SHA-1 MAC);
/// - `ec.pfx`: P-256, default encryption;
/// - `ec384.p12`: P-384, default encryption;
/// - `terbuka.p12`: RSA-1024, certificates not encrypted (`-certpbe NONE`);
/// - `rusak.p12`: garbage; `potong.p12`: `budi.p12` truncated.
pub fn fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let keystore = dir.path().join("keystore");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&keystore).expect("mkdir");
        std::fs::create_dir_all(&work).expect("mkdir");
        let req = |name: &str, alg: &[&str], cn: &str| {
            let mut c = openssl(&work);
            c.args(["req", "-x509", "-nodes", "-days", "30", "-subj"])
                .arg(format!("/CN={cn}/O=PT Maju Jaya/C=ID"))
                .args(alg)
                .args([
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.crt"),
                ]);
            run(&mut c);
        };
        req("rsa", &["-newkey", "rsa:2048"], "Budi Santoso");
        req(
            "ec",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "Siti EC",
        );
        req(
            "ec384",
            &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            "Siti P384",
        );
        req("small", &["-newkey", "rsa:1024"], "Kecil");
        let export = |key: &str, out: &str, extra: &[&str]| {
            let mut c = openssl(&work);
            c.args([
                "pkcs12",
                "-export",
                "-inkey",
                &format!("{key}.key"),
                "-in",
                &format!("{key}.crt"),
            ])
            .args(["-name", key, "-passout", &format!("pass:{PIN}"), "-out"])
            .arg(keystore.join(out))
            .args(extra);
            run(&mut c);
        };
        export("rsa", "budi.p12", &[]);
        export("rsa", "lama.p12", &["-legacy"]);
        export("ec", "ec.pfx", &[]);
        export("ec384", "ec384.p12", &[]);
        export("small", "terbuka.p12", &["-certpbe", "NONE"]);
        std::fs::write(
            keystore.join("rusak.p12"),
            b"\x30\x82\x01\x00 not a pfx at all",
        )
        .expect("write");
        let full = std::fs::read(keystore.join("budi.p12")).expect("read");
        std::fs::write(keystore.join("potong.p12"), &full[..full.len() / 2]).expect("write");
        Fixtures {
            _dir: dir,
            keystore,
            work,
        }
    })
}

/// `pkcs11-tool --module <shim>` with the keystore folder and no removable-media scan.
pub fn pkcs11_tool(keystore: &Path, config_dir: &Path) -> Command {
    let conf = config_dir.join("keystores.conf");
    std::fs::write(&conf, "removable-media = no\n").expect("write config");
    let mut c = Command::new("pkcs11-tool");
    c.arg("--module")
        .arg(module_path())
        .env("SEGEL_KEYSTORE_DIRS", keystore)
        .env("SEGEL_PKCS11_CONFIG", &conf);
    c
}
