//! NSS certificate databases through `certutil` (libnss3-tools): the user's `~/.pki/nssdb`
//! (Chromium, Chrome, Brave, Edge on Linux) and each Firefox profile.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::InstallError;

/// The `certutil` command (`SEGEL_CERTUTIL` overrides, for odd systems).
fn certutil() -> String {
    std::env::var("SEGEL_CERTUTIL").unwrap_or_else(|_| "certutil".to_owned())
}

fn db_arg(dir: &Path) -> String {
    format!("sql:{}", dir.display())
}

fn run(args: &[&str]) -> Result<std::process::Output, InstallError> {
    Command::new(certutil()).args(args).output().map_err(|e| {
        InstallError::Command(format!(
            "cannot run {} ({e}); install it: sudo apt install libnss3-tools",
            certutil()
        ))
    })
}

fn failed(what: &str, out: &std::process::Output) -> InstallError {
    InstallError::Command(format!(
        "certutil {what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// Is there an NSS database (`cert9.db`) in `dir`?
pub fn exists(dir: &Path) -> bool {
    dir.join("cert9.db").is_file()
}

/// Make an empty database without a password (`certutil -N --empty-password`).
pub fn create(dir: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(dir).map_err(InstallError::io("cannot create", dir))?;
    let out = run(&["-N", "-d", &db_arg(dir), "--empty-password"])?;
    if !out.status.success() {
        return Err(failed("-N", &out));
    }
    Ok(())
}

/// Remove every certificate called `nickname`; returns how many were removed.
pub fn delete_all(dir: &Path, nickname: &str) -> Result<usize, InstallError> {
    let mut n = 0;
    // certutil -D removes one certificate per call; a bounded loop for repeated nicknames.
    while n < 32 && !certificates(dir, nickname)?.is_empty() {
        let out = run(&["-D", "-d", &db_arg(dir), "-n", nickname])?;
        if !out.status.success() {
            return Err(failed("-D", &out));
        }
        n += 1;
    }
    Ok(n)
}

/// Add `ca_pem` as a trusted CA for TLS servers (`-t "C,,"`), replacing older ones of the
/// same nickname.
pub fn add_ca(dir: &Path, nickname: &str, ca_pem: &Path) -> Result<(), InstallError> {
    delete_all(dir, nickname)?;
    let ca = ca_pem.display().to_string();
    let out = run(&[
        "-A",
        "-d",
        &db_arg(dir),
        "-n",
        nickname,
        "-t",
        "C,,",
        "-i",
        &ca,
    ])?;
    if !out.status.success() {
        return Err(failed("-A", &out));
    }
    Ok(())
}

/// The DER certificates called `nickname` (empty when there is none).
pub fn certificates(dir: &Path, nickname: &str) -> Result<Vec<Vec<u8>>, InstallError> {
    let out = run(&["-L", "-d", &db_arg(dir), "-n", nickname, "-a"])?;
    if !out.status.success() {
        // certutil exits 255 with "could not find certificate named …" when there is none.
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(pem_blocks(&text))
}

/// Trust flags of `nickname` as `certutil -L` lists them ("C,," …), if present.
pub fn trust_flags(dir: &Path, nickname: &str) -> Result<Option<String>, InstallError> {
    let out = run(&["-L", "-d", &db_arg(dir)])?;
    if !out.status.success() {
        return Err(failed("-L", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().find_map(|line| {
        let rest = line.strip_prefix(nickname)?;
        let flags = rest.trim();
        // Nickname and flags are separated by spaces; a longer nickname is not a match.
        (rest.starts_with(' ') && !flags.contains(' ')).then(|| flags.to_owned())
    }))
}

/// Number of certificates in the database (any nickname).
pub fn count(dir: &Path) -> Result<usize, InstallError> {
    let out = run(&["-L", "-d", &db_arg(dir)])?;
    if !out.status.success() {
        return Err(failed("-L", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Header: a blank line, the column titles, the "SSL,S/MIME,JAR/XPI" line, a blank line.
    Ok(text
        .lines()
        .skip(4)
        .filter(|l| !l.trim().is_empty())
        .count())
}

/// The files of a database that Segel made and that is empty again: removed with its folder
/// when nothing else is left in it.
pub fn remove_if_empty(dir: &Path) -> Result<Vec<PathBuf>, InstallError> {
    if !exists(dir) || count(dir)? > 0 {
        return Ok(Vec::new());
    }
    let mut removed = Vec::new();
    for f in ["cert9.db", "key4.db", "pkcs11.txt"] {
        let p = dir.join(f);
        if std::fs::remove_file(&p).is_ok() {
            removed.push(p);
        }
    }
    if std::fs::remove_dir(dir).is_ok() {
        removed.push(dir.to_path_buf());
    }
    Ok(removed)
}

fn pem_blocks(text: &str) -> Vec<Vec<u8>> {
    use base64::Engine as _;
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            body = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE") {
            if let Some(b) = body.take()
                && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b)
            {
                out.push(der);
            }
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    out
}

/// The DER of the first certificate in a PEM file.
pub fn pem_file_der(path: &Path) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(path).ok()?;
    pem_blocks(&text).into_iter().next()
}

/// Firefox profiles of this user, from `~/.mozilla/firefox/profiles.ini`: (name, folder).
pub fn firefox_profiles(home: &Path) -> Vec<(String, PathBuf)> {
    let base = home.join(".mozilla/firefox");
    let Ok(ini) = std::fs::read_to_string(base.join("profiles.ini")) else {
        return Vec::new();
    };
    let mut profiles = Vec::new();
    let mut current: Option<(String, Option<String>, bool)> = None;
    let mut flush = |p: Option<(String, Option<String>, bool)>| {
        if let Some((name, Some(path), relative)) = p {
            let dir = if relative {
                base.join(&path)
            } else {
                PathBuf::from(&path)
            };
            profiles.push((if name.is_empty() { path } else { name }, dir));
        }
    };
    for line in ini.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(current.take());
            if line.starts_with("[Profile") {
                current = Some((String::new(), None, true));
            }
        } else if let Some(p) = current.as_mut()
            && let Some((k, v)) = line.split_once('=')
        {
            match k.trim() {
                "Name" => p.0 = v.trim().to_owned(),
                "Path" => p.1 = Some(v.trim().to_owned()),
                "IsRelative" => p.2 = v.trim() != "0",
                _ => {}
            }
        }
    }
    flush(current);
    profiles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_ini_relative_and_absolute() {
        let home = tempfile::tempdir().unwrap();
        let ff = home.path().join(".mozilla/firefox");
        std::fs::create_dir_all(&ff).unwrap();
        std::fs::write(
            ff.join("profiles.ini"),
            "[Install4F96D1932A9F858E]\nDefault=abc.default-release\n\n[Profile0]\nName=default-release\nIsRelative=1\nPath=abc.default-release\nDefault=1\n\n[Profile1]\nName=work\nIsRelative=0\nPath=/srv/ff/work\n\n[General]\nStartWithLastProfile=1\n",
        )
        .unwrap();
        let p = firefox_profiles(home.path());
        assert_eq!(
            p,
            vec![
                ("default-release".to_owned(), ff.join("abc.default-release")),
                ("work".to_owned(), PathBuf::from("/srv/ff/work")),
            ]
        );
    }
}
