//! The one change an install makes to the user's `config.toml`: Segel's extension origin in
//! `[daemon] extension_origins`, without which the daemon and the native host refuse the
//! extension (the list is empty by default: only named extensions may call the daemon).
//!
//! Edited with `toml_edit`, so the user's comments, order and other keys stay as they were;
//! the install records what it added (and whether it made the file), so uninstall takes out
//! exactly that.
//!
//! Chromium's origin is fixed by the extension's key. Firefox gives an add-on a random
//! `moz-extension://UUID` per profile, kept in the profile's `prefs.js`
//! (`extensions.webextensions.uuids`); [`firefox_origins`] reads it where Segel's add-on is
//! installed already.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::InstallError;
use crate::server::files::write_private;

/// The `moz-extension://UUID` of the add-on `addon_id` in each Firefox profile folder that has
/// one (the profile's `prefs.js`, `user_pref("extensions.webextensions.uuids", "{…JSON…}")`).
pub fn firefox_origins(profiles: &[PathBuf], addon_id: &str) -> Vec<String> {
    const PREF: &str = "user_pref(\"extensions.webextensions.uuids\",";
    let mut out = Vec::new();
    for dir in profiles {
        let Ok(prefs) = std::fs::read_to_string(dir.join("prefs.js")) else {
            continue;
        };
        let Some(value) = prefs.lines().find_map(|l| {
            l.trim()
                .strip_prefix(PREF)?
                .trim()
                .strip_suffix(");")
                .map(str::trim)
                .map(str::to_owned)
        }) else {
            continue;
        };
        // The pref's value is a JS string literal holding JSON; JSON reads the literal too.
        let uuid = serde_json::from_str::<String>(&value)
            .ok()
            .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
            .and_then(|map| map.get(addon_id)?.as_str().map(str::to_owned));
        if let Some(uuid) = uuid
            .filter(|u| !u.is_empty() && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            let origin = format!("moz-extension://{uuid}");
            if !out.contains(&origin) {
                out.push(origin);
            }
        }
    }
    out
}

/// What [`allow_extension`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Added {
    /// The origins that were not listed before.
    pub origins: Vec<String>,
    /// The config file did not exist and was made.
    pub created_file: bool,
}

fn read(config: &Path) -> Result<Option<(DocumentMut, u32)>, InstallError> {
    use std::os::unix::fs::PermissionsExt;
    let text = match std::fs::read_to_string(config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(InstallError::io("cannot read", config)(e)),
    };
    let mode = std::fs::metadata(config)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let doc = text.parse::<DocumentMut>().map_err(|e| {
        InstallError::Other(format!(
            "{} is not valid TOML, so Segel's extension cannot be allowed in it: {e}",
            config.display()
        ))
    })?;
    Ok(Some((doc, mode)))
}

fn bad_shape(config: &Path, what: &str) -> InstallError {
    InstallError::Other(format!(
        "{}: {what}, so Segel's extension cannot be allowed in it; correct the file and run `segel install` again",
        config.display()
    ))
}

/// Add each of `origins` to `[daemon] extension_origins` unless listed already.
pub fn allow_extension(config: &Path, origins: &[String]) -> Result<Added, InstallError> {
    let (mut doc, mode, created_file) = match read(config)? {
        Some((doc, mode)) => (doc, mode, false),
        None => (DocumentMut::new(), 0o644, true),
    };
    let daemon = doc
        .entry("daemon")
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| bad_shape(config, "`daemon` is not a table"))?;
    let list = daemon
        .entry("extension_origins")
        .or_insert(Item::Value(Value::Array(Array::new())))
        .as_array_mut()
        .ok_or_else(|| bad_shape(config, "`daemon.extension_origins` is not a list"))?;
    let mut added = Vec::new();
    for origin in origins {
        if !list.iter().any(|v| v.as_str() == Some(origin)) {
            list.push(origin.as_str());
            added.push(origin.clone());
        }
    }
    if added.is_empty() {
        return Ok(Added::default());
    }
    if let Some(dir) = config.parent() {
        std::fs::create_dir_all(dir).map_err(InstallError::io("cannot create", dir))?;
    }
    write_private(config, doc.to_string().as_bytes(), mode)
        .map_err(InstallError::io("cannot write", config))?;
    Ok(Added {
        origins: added,
        created_file,
    })
}

/// Take out what [`allow_extension`] added: the origins, then the list and the `[daemon]`
/// table if they are left empty, then the file if Segel made it and nothing else is in it.
/// Returns what was done, for the uninstall report (empty: nothing to do).
pub fn disallow_extension(
    config: &Path,
    added: &[String],
    created_file: bool,
) -> Result<Vec<String>, InstallError> {
    let Some((mut doc, mode)) = read(config)? else {
        return Ok(Vec::new());
    };
    let mut done = Vec::new();
    if let Some(daemon) = doc.get_mut("daemon").and_then(Item::as_table_like_mut) {
        if let Some(list) = daemon
            .get_mut("extension_origins")
            .and_then(Item::as_array_mut)
        {
            let before = list.len();
            list.retain(|v| !v.as_str().is_some_and(|s| added.iter().any(|a| a == s)));
            if list.len() != before {
                done.push(format!(
                    "{} from [daemon] extension_origins in {}",
                    added.join(", "),
                    config.display()
                ));
            }
            if list.is_empty() {
                daemon.remove("extension_origins");
            }
        }
        if daemon.is_empty() {
            doc.remove("daemon");
        }
    }
    if done.is_empty() {
        return Ok(done);
    }
    if created_file && doc.to_string().trim().is_empty() {
        std::fs::remove_file(config).map_err(InstallError::io("cannot remove", config))?;
        done.push(config.display().to_string());
        // Segel's config folder, when the file was all it held.
        if let Some(dir) = config.parent()
            && std::fs::remove_dir(dir).is_ok()
        {
            done.push(dir.display().to_string());
        }
    } else {
        write_private(config, doc.to_string().as_bytes(), mode)
            .map_err(InstallError::io("cannot write", config))?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "chrome-extension://kgghmpcjmhabfkcmelnnknnjjfggdaal";

    #[test]
    fn adds_to_a_commented_config_and_takes_exactly_that_out() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let original = "# my settings\nmodules = [\"/x.so\"] # keep\n\n[daemon]\nport = 0\nextension_origins = [\"moz-extension://abc\"]\n";
        std::fs::write(&config, original).unwrap();
        let added = allow_extension(&config, &[ORIGIN.to_owned()]).unwrap();
        assert_eq!(added.origins, [ORIGIN]);
        assert!(!added.created_file);
        let text = std::fs::read_to_string(&config).unwrap();
        assert!(text.starts_with("# my settings\nmodules = [\"/x.so\"] # keep\n"));
        let parsed: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(
            parsed["daemon"]["extension_origins"],
            toml::Value::Array(vec!["moz-extension://abc".into(), ORIGIN.into()])
        );
        // Twice: nothing more added.
        assert_eq!(
            allow_extension(&config, &[ORIGIN.to_owned()]).unwrap(),
            Added::default()
        );
        let done = disallow_extension(&config, &added.origins, false).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(std::fs::read_to_string(&config).unwrap(), original);
    }

    #[test]
    fn firefox_origin_from_the_profile_prefs() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        for d in [&a, &b, &c] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(
            a.join("prefs.js"),
            "// Mozilla User Preferences\nuser_pref(\"browser.x\", 1);\nuser_pref(\"extensions.webextensions.uuids\", \"{\\\"other@x\\\":\\\"1111\\\",\\\"segel@segel.id\\\":\\\"5e6e7c1a-2f1b-4c55-9d7e-5e9e1a7c0a11\\\"}\");\n",
        )
        .unwrap();
        // Segel's add-on not in this profile; no prefs.js in the third.
        std::fs::write(
            b.join("prefs.js"),
            "user_pref(\"extensions.webextensions.uuids\", \"{\\\"other@x\\\":\\\"1111\\\"}\");\n",
        )
        .unwrap();
        assert_eq!(
            firefox_origins(&[a, b, c], "segel@segel.id"),
            ["moz-extension://5e6e7c1a-2f1b-4c55-9d7e-5e9e1a7c0a11"]
        );
    }

    #[test]
    fn a_file_segel_made_goes_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("segel/config.toml");
        let added = allow_extension(&config, &[ORIGIN.to_owned()]).unwrap();
        assert!(added.created_file);
        disallow_extension(&config, &added.origins, true).unwrap();
        assert!(!config.exists());
        assert!(!dir.path().join("segel").exists());
    }

    #[test]
    fn a_config_that_is_not_toml_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, "daemon = 3\n").unwrap();
        let e = allow_extension(&config, &[ORIGIN.to_owned()]).unwrap_err();
        assert!(e.to_string().contains("not a table"), "{e}");
        std::fs::write(&config, "[daemon\n").unwrap();
        assert!(allow_extension(&config, &[ORIGIN.to_owned()]).is_err());
        assert_eq!(std::fs::read_to_string(&config).unwrap(), "[daemon\n");
    }
}
