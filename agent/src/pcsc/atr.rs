//! The ATR → PKCS#11 module table: which vendor module drives a card, from its Answer To Reset.
//!
//! The built-in table is `agent/data/atr-modules.toml`; a user's
//! `$XDG_CONFIG_HOME/segel/atr-modules.toml` (same format) is read first, so it can add cards or
//! override entries. Matching is ISO 7816-3 style: same length, `(atr & mask) == (entry & mask)`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

const BUILT_IN: &str = include_str!("../../data/atr-modules.toml");

/// File name of the user's extension table in Segel's config folder.
pub const USER_FILE: &str = "atr-modules.toml";

/// An error reading a table.
#[derive(Debug, thiserror::Error)]
pub enum AtrTableError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}: {reason}")]
    Invalid { origin: String, reason: String },
}

/// One known card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CardEntry {
    pub name: String,
    pub atr: Vec<u8>,
    pub mask: Vec<u8>,
    pub modules: PlatformModules,
    /// Where the entry came from (built-in or a file path), for messages.
    pub origin: String,
}

/// Module file names per platform, best first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct PlatformModules {
    #[serde(default)]
    pub linux: Vec<String>,
    #[serde(default)]
    pub windows: Vec<String>,
    #[serde(default)]
    pub macos: Vec<String>,
}

impl PlatformModules {
    /// The names for the platform Segel runs on.
    pub fn current(&self) -> &[String] {
        if cfg!(target_os = "windows") {
            &self.windows
        } else if cfg!(target_os = "macos") {
            &self.macos
        } else {
            &self.linux
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    card: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    name: String,
    atr: String,
    mask: Option<String>,
    #[serde(default)]
    modules: PlatformModules,
}

/// The table: user entries first, then the built-in ones.
#[derive(Clone, Debug, Default)]
pub struct AtrTable {
    entries: Vec<CardEntry>,
}

/// Parses hex bytes written as `3B:9F:95`, `3B 9F 95` or `3b9f95`.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '\t'))
        .collect();
    hex::decode(&compact).map_err(|e| format!("{text:?} is not hex bytes: {e}"))
}

/// `3B:9F:95` form for messages and JSON.
pub fn format_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

impl AtrTable {
    /// The built-in table only.
    pub fn built_in() -> Result<Self, AtrTableError> {
        Ok(AtrTable {
            entries: parse_table(BUILT_IN, "built-in ATR table")?,
        })
    }

    /// The user's table from `config_dir` (when present) ahead of the built-in one.
    pub fn load(config_dir: &Path) -> Result<Self, AtrTableError> {
        let mut table = Self::built_in()?;
        let path = config_dir.join(USER_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut user = parse_table(&text, &path.display().to_string())?;
                user.append(&mut table.entries);
                table.entries = user;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(AtrTableError::Read { path, source }),
        }
        Ok(table)
    }

    /// The first entry matching `atr`.
    pub fn lookup(&self, atr: &[u8]) -> Option<&CardEntry> {
        self.entries.iter().find(|e| {
            e.atr.len() == atr.len()
                && e.atr
                    .iter()
                    .zip(atr)
                    .zip(&e.mask)
                    .all(|((want, got), mask)| want & mask == got & mask)
        })
    }

    /// The module file for a card with this ATR: the first of the matching entry's modules
    /// for this platform that exists on disk. `None` for an unknown ATR or no module installed.
    pub fn module_for(&self, atr: &[u8]) -> Option<std::path::PathBuf> {
        self.lookup(atr)?
            .modules
            .current()
            .iter()
            .find_map(|name| crate::token::module::resolve_module_name(name))
    }

    /// Whether `path` is a module some entry names for this platform (such a module reaches
    /// its tokens through PC/SC readers).
    pub fn names_module(&self, path: &Path) -> bool {
        let Some(file) = path.file_name() else {
            return false;
        };
        self.entries.iter().any(|e| {
            e.modules.current().iter().any(|m| {
                let m = Path::new(m);
                m == path || m.file_name() == Some(file)
            })
        })
    }

    /// Every entry, in match order.
    pub fn entries(&self) -> &[CardEntry] {
        &self.entries
    }
}

fn parse_table(text: &str, origin: &str) -> Result<Vec<CardEntry>, AtrTableError> {
    let invalid = |reason: String| AtrTableError::Invalid {
        origin: origin.to_owned(),
        reason,
    };
    let file: FileFormat = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    file.card
        .into_iter()
        .map(|raw| {
            let atr = parse_hex(&raw.atr).map_err(|e| invalid(format!("{}: atr {e}", raw.name)))?;
            let mask = match &raw.mask {
                Some(m) => parse_hex(m).map_err(|e| invalid(format!("{}: mask {e}", raw.name)))?,
                None => vec![0xff; atr.len()],
            };
            if mask.len() != atr.len() || atr.is_empty() {
                return Err(invalid(format!(
                    "{}: atr and mask must be non-empty and of the same length ({} and {} bytes)",
                    raw.name,
                    atr.len(),
                    mask.len()
                )));
            }
            Ok(CardEntry {
                name: raw.name,
                atr,
                mask,
                modules: raw.modules,
                origin: origin.to_owned(),
            })
        })
        .collect()
}

/// What to tell a user whose card's ATR is not in the table.
pub fn unknown_atr_hint(atr: &[u8], config_dir: &Path) -> String {
    format!(
        "card with ATR {} is not in Segel's ATR table; Segel tries OpenSC for it (PIV, CAC and \
         OpenPGP cards are found by their applets). To name its module, add to {}:\n\
         [[card]]\nname = \"My token\"\natr = \"{}\"\n[card.modules]\nlinux = [\"vendor-pkcs11.so\"]",
        format_hex(atr),
        config_dir.join(USER_FILE).display(),
        format_hex(atr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_modules_are_told_from_software_modules_by_the_table() -> Result<(), AtrTableError> {
        let table = AtrTable::built_in()?;
        assert!(table.names_module(Path::new("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so")));
        assert!(table.names_module(Path::new("/opt/vendor/libeTPkcs11.so")));
        assert!(!table.names_module(Path::new("/usr/lib/softhsm/libsofthsm2.so")));
        assert!(!table.names_module(Path::new("/usr/lib/segel/libsegel_pkcs11.so")));
        // An unknown ATR names no module.
        assert_eq!(table.module_for(&[0x3b, 0x00]), None);
        Ok(())
    }

    #[test]
    fn built_in_table_parses_and_matches_epass2003_through_its_mask() -> Result<(), AtrTableError> {
        let table = AtrTable::built_in()?;
        assert!(table.entries().len() >= 6);
        // A real ePass2003 ATR differs from the table's in masked-out bytes.
        let atr = parse_hex("3B:9F:95:81:31:FE:9F:00:66:46:53:05:23:00:11:71:DF:00:00:00:00:00:00")
            .unwrap_or_default();
        let entry = table.lookup(&atr).map(|e| e.name.as_str());
        assert_eq!(entry, Some("Feitian ePass2003"));
        let mut other = atr.clone();
        other[4] ^= 1; // a byte the mask keeps
        assert!(table.lookup(&other).is_none());
        assert!(table.lookup(&atr[..10]).is_none(), "length must match");
        Ok(())
    }

    #[test]
    fn user_table_comes_first_and_bad_entries_are_reported() -> Result<(), AtrTableError> {
        let dir = tempfile::tempdir().map_err(|source| AtrTableError::Read {
            path: PathBuf::new(),
            source,
        })?;
        let yubi = "3B:F8:13:00:00:81:31:FE:15:59:75:62:69:6B:65:79:34:D4";
        let user = format!(
            "[[card]]\nname = \"Mine\"\natr = \"{yubi}\"\n[card.modules]\nlinux = [\"/opt/x.so\"]\n"
        );
        std::fs::write(dir.path().join(USER_FILE), user).map_err(|source| AtrTableError::Read {
            path: PathBuf::new(),
            source,
        })?;
        let table = AtrTable::load(dir.path())?;
        let hit = table.lookup(&parse_hex(yubi).unwrap_or_default());
        assert_eq!(hit.map(|e| e.name.as_str()), Some("Mine"));
        std::fs::write(
            dir.path().join(USER_FILE),
            "[[card]]\nname = \"Bad\"\natr = \"3B:00\"\nmask = \"FF\"\n",
        )
        .map_err(|source| AtrTableError::Read {
            path: PathBuf::new(),
            source,
        })?;
        let err = AtrTable::load(dir.path()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("Bad") && e.contains("same length")));
        Ok(())
    }

    #[test]
    fn unknown_atr_hint_names_the_atr_and_the_file() {
        let hint = unknown_atr_hint(&[0x3b, 0x8a], Path::new("/home/u/.config/segel"));
        assert!(hint.contains("3B:8A") && hint.contains("/home/u/.config/segel/atr-modules.toml"));
    }
}
