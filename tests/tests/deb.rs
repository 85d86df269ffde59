//! The .deb: built with cargo-deb (installer/build-deb, from the test build's dev binaries), inspected
//! with dpkg-deb, installed into a temporary root with dpkg (maintainer scripts run
//! chrootless with DPKG_ROOT), purged, and nothing left.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use segel_tests::segel::workspace_root;

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.starts_with(root.join("var/lib/dpkg")) {
                continue;
            }
            out.insert(p.strip_prefix(root).unwrap_or(&p).to_path_buf());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    out
}

const EXPECTED: &[&str] = &[
    "./usr/bin/segel",
    "./usr/lib/segel/libsegel_pkcs11.so",
    "./usr/lib/segel/native-host",
    "./usr/lib/systemd/user/segel.service",
    "./usr/share/p11-kit/modules/segel.module",
    "./etc/chromium/native-messaging-hosts/id.segel.agent.json",
    "./etc/opt/chrome/native-messaging-hosts/id.segel.agent.json",
    "./etc/opt/edge/native-messaging-hosts/id.segel.agent.json",
    "./usr/lib/mozilla/native-messaging-hosts/id.segel.agent.json",
];

#[test]
fn deb_builds_inspects_installs_into_a_temporary_root_and_purges_clean() -> Result<()> {
    if Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        anyhow::bail!("cargo-deb missing: run scripts/install-test-deps");
    }
    let out = tempfile::Builder::new().prefix("segel-deb-").tempdir()?;
    // The binaries as the other tests use them: a build of its own would resolve features
    // differently and re-link them under running tests.
    segel_tests::segel::built()?;
    run(Command::new(workspace_root().join("installer/build-deb"))
        .args(["--profile", "dev", "--no-build", "--output"])
        .arg(out.path()))?;
    let deb = std::fs::read_dir(out.path())?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .context("no .deb built")?;

    // Inspect: contents and control.
    let contents = run(Command::new("dpkg-deb").arg("-c").arg(&deb))?;
    for path in EXPECTED {
        ensure!(
            contents
                .lines()
                .any(|l| l.ends_with(path) || l.contains(&format!("{path} "))),
            "{path} not in the package:\n{contents}"
        );
    }
    ensure!(
        contents.contains("./usr/share/segel/extension/"),
        "{contents}"
    );
    let info = run(Command::new("dpkg-deb").arg("-I").arg(&deb))?;
    ensure!(
        info.contains("Package: segel") && info.contains("Depends:"),
        "{info}"
    );
    // The libraries segel links (libcrypto for AES-GCM and signing, libpcsclite for card
    // events) must be package dependencies, or a fresh install fails to start.
    let depends = run(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Depends"))?;
    for lib in ["libssl3", "libpcsclite1", "libc6"] {
        ensure!(depends.contains(lib), "{lib} not in Depends: {depends}");
    }
    for script in ["postinst", "prerm", "postrm"] {
        ensure!(info.contains(script), "{script} missing:\n{info}");
    }

    // Install into a temporary root with its own dpkg database.
    let root = tempfile::Builder::new().prefix("segel-root-").tempdir()?;
    let admin = root.path().join("var/lib/dpkg");
    std::fs::create_dir_all(admin.join("info"))?;
    std::fs::create_dir_all(admin.join("updates"))?;
    std::fs::write(admin.join("status"), "")?;
    std::fs::write(admin.join("available"), "")?;
    let dpkg = |args: &[&str]| -> Result<String> {
        run(Command::new("dpkg")
            .arg(format!("--root={}", root.path().display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--force-depends",
                "--log=/dev/null",
            ])
            .args(args))
    };
    let before = files_under(root.path());
    dpkg(&["-i", &deb.display().to_string()])?;
    for path in EXPECTED {
        let p = root.path().join(path.trim_start_matches("./"));
        ensure!(p.is_file(), "{} not installed", p.display());
    }
    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/user/segel.service"))?;
    ensure!(unit.contains("ExecStart=/usr/bin/segel serve"), "{unit}");
    let m: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        root.path()
            .join("etc/chromium/native-messaging-hosts/id.segel.agent.json"),
    )?)?;
    ensure!(m["path"] == "/usr/lib/segel/native-host", "{m}");
    ensure!(
        m["allowed_origins"]
            == serde_json::json!(["chrome-extension://kgghmpcjmhabfkcmelnnknnjjfggdaal/"]),
        "{m}"
    );
    // postinst enabled the user unit for every user, inside the temporary root.
    let wants = root
        .path()
        .join("etc/systemd/user/default.target.wants/segel.service");
    ensure!(
        wants.symlink_metadata().is_ok(),
        "postinst did not enable segel.service in the root"
    );
    // The packaged binary runs.
    let version = run(Command::new(root.path().join("usr/bin/segel")).arg("--version"))?;
    ensure!(version.starts_with("segel "), "{version}");
    let status = dpkg(&["-s", "segel"])?;
    ensure!(status.contains("Status: install ok installed"), "{status}");

    // Purge: nothing left outside dpkg's own database.
    dpkg(&["-P", "segel"])?;
    // `systemctl --global enable` made /etc/systemd/user (a folder of systemd's on a real
    // system, not the package's): those empty folders may stay; no file may.
    let systemd_dirs = ["etc", "etc/systemd", "etc/systemd/user"].map(PathBuf::from);
    let left: Vec<_> = files_under(root.path())
        .difference(&before)
        .filter(|p| !(systemd_dirs.contains(p) && root.path().join(p).is_dir()))
        .cloned()
        .collect();
    ensure!(left.is_empty(), "left after purge: {left:?}");
    ensure!(
        !root
            .path()
            .join("etc/systemd/user/default.target.wants")
            .exists()
    );
    Ok(())
}
