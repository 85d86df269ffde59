//! Where key files are looked for: folders named in `SEGEL_KEYSTORE_DIRS` (`:`-separated) and in
//! a config file, and mounted removable drives (the mount table plus the kernel's `removable`
//! flag or a USB bus path). A key file is a regular file named `*.p12` or `*.pfx`
//! (case-insensitive).
//!
//! Config file: `$SEGEL_PKCS11_CONFIG`, else `$XDG_CONFIG_HOME/segel/keystores.conf` (or
//! `~/.config/segel/keystores.conf`), else `/etc/segel/keystores.conf`. One folder per line, `#`
//! starts a comment; the line `removable-media = no` turns the drive scan off.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// How deep below a drive's mount point key files are searched (vendors keep them in a folder).
const REMOVABLE_DEPTH: usize = 2;
/// How deep below a configured folder.
const FOLDER_DEPTH: usize = 1;
/// Cap on directory entries looked at per root, so a huge drive can not stall `C_GetSlotList`.
const MAX_ENTRIES_PER_ROOT: usize = 5000;

/// Where to look, as read from the environment and config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchConfig {
    pub folders: Vec<PathBuf>,
    pub removable_media: bool,
}

impl SearchConfig {
    /// Reads `SEGEL_KEYSTORE_DIRS` and the config file.
    pub fn from_environment() -> Self {
        let mut cfg = SearchConfig {
            folders: Vec::new(),
            removable_media: true,
        };
        if let Some(dirs) = std::env::var_os("SEGEL_KEYSTORE_DIRS") {
            cfg.folders
                .extend(std::env::split_paths(&dirs).filter(|p| !p.as_os_str().is_empty()));
        }
        if let Some(path) = config_path()
            && let Ok(text) = std::fs::read_to_string(&path)
        {
            cfg.apply_config(&text);
        }
        cfg
    }

    /// Applies the config file text.
    pub fn apply_config(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Some((key, value)) = line.split_once('=')
                && key.trim() == "removable-media"
            {
                self.removable_media = !matches!(value.trim(), "no" | "false" | "off" | "0");
                continue;
            }
            self.folders.push(PathBuf::from(line));
        }
    }
}

fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SEGEL_PKCS11_CONFIG") {
        return Some(PathBuf::from(p));
    }
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("segel/keystores.conf"));
    match user {
        Some(p) if p.is_file() => Some(p),
        _ => Some(PathBuf::from("/etc/segel/keystores.conf")),
    }
}

/// Whether `path` names a key file.
pub fn is_key_file_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}

/// Mount points of removable drives, from mount-table text (`/proc/self/mounts` format) and a
/// `/sys/block`-style root.
pub fn removable_mounts(mounts: &str, sys_block: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in mounts.lines() {
        let mut fields = line.split_whitespace();
        let (Some(source), Some(target)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Some(dev) = source.strip_prefix("/dev/") else {
            continue;
        };
        let Some(disk) = block_device_of(dev, sys_block) else {
            continue;
        };
        if is_removable(&sys_block.join(&disk)) {
            out.push(PathBuf::from(unescape_mount(target)));
        }
    }
    out
}

/// The whole-disk name under `/sys/block` for a partition or disk device name.
fn block_device_of(dev: &str, sys_block: &Path) -> Option<String> {
    let dev = dev.rsplit('/').next()?;
    if sys_block.join(dev).exists() {
        return Some(dev.to_owned());
    }
    // A partition: sda1 → sda, mmcblk0p1 → mmcblk0, nvme0n1p2 → nvme0n1.
    let entries = std::fs::read_dir(sys_block).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .find(|disk| dev.starts_with(disk.as_str()) && sys_block.join(disk).join(dev).exists())
}

fn is_removable(disk: &Path) -> bool {
    let flag = std::fs::read_to_string(disk.join("removable")).unwrap_or_default();
    if flag.trim() == "1" {
        return true;
    }
    // Many USB sticks report removable=0; their sysfs path runs through a USB controller.
    std::fs::canonicalize(disk)
        .map(|p| p.to_string_lossy().contains("/usb"))
        .unwrap_or(false)
}

/// Mount points in /proc/mounts escape space, tab, newline and backslash as octal.
fn unescape_mount(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(digits) = bytes.get(i + 1..i + 4)
            && let Ok(digits) = std::str::from_utf8(digits)
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every key file under the configured folders and removable drives, deduplicated.
pub fn scan(cfg: &SearchConfig) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    for folder in &cfg.folders {
        collect(folder, FOLDER_DEPTH, &mut found, &mut 0);
    }
    if cfg.removable_media {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for root in removable_mounts(&mounts, Path::new("/sys/block")) {
            collect(&root, REMOVABLE_DEPTH, &mut found, &mut 0);
        }
    }
    found
}

fn collect(dir: &Path, depth: usize, found: &mut BTreeSet<PathBuf>, seen: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        *seen += 1;
        if *seen > MAX_ENTRIES_PER_ROOT {
            return;
        }
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_file() && is_key_file_name(&path) {
            found.insert(path);
        } else if ft.is_dir() && depth > 0 {
            collect(&path, depth - 1, found, seen);
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names_match_p12_and_pfx_any_case() {
        assert!(is_key_file_name(Path::new("/m/kunci.p12")));
        assert!(is_key_file_name(Path::new("/m/KUNCI.PFX")));
        assert!(!is_key_file_name(Path::new("/m/kunci.pem")));
        assert!(!is_key_file_name(Path::new("/m/p12")));
    }

    #[test]
    fn config_text_adds_folders_and_can_disable_removable_media() {
        let mut cfg = SearchConfig {
            folders: vec![],
            removable_media: true,
        };
        cfg.apply_config("# keys\n/home/a/kunci  # mine\n\nremovable-media = no\n");
        assert_eq!(cfg.folders, vec![PathBuf::from("/home/a/kunci")]);
        assert!(!cfg.removable_media);
    }

    #[test]
    fn removable_mounts_follow_the_sysfs_removable_flag() {
        let sys = tempfile::tempdir().expect("tempdir");
        for (disk, flag) in [("sda", "0"), ("sdb", "1")] {
            std::fs::create_dir_all(sys.path().join(disk)).expect("mkdir");
            std::fs::write(sys.path().join(disk).join("removable"), flag).expect("write");
        }
        std::fs::create_dir_all(sys.path().join("sdb/sdb1")).expect("mkdir");
        let mounts = "/dev/sda2 / ext4 rw 0 0\n\
                      /dev/sdb1 /media/budi/FLASH\\040DISK vfat rw 0 0\n\
                      proc /proc proc rw 0 0\n";
        assert_eq!(
            removable_mounts(mounts, sys.path()),
            vec![PathBuf::from("/media/budi/FLASH DISK")]
        );
    }

    #[test]
    fn scan_finds_key_files_one_level_down_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("top.p12"), b"x").expect("write");
        std::fs::write(dir.path().join("a/inner.pfx"), b"x").expect("write");
        std::fs::write(dir.path().join("a/b/deep.p12"), b"x").expect("write");
        std::fs::write(dir.path().join("a/notes.txt"), b"x").expect("write");
        let found = scan(&SearchConfig {
            folders: vec![dir.path().to_path_buf()],
            removable_media: false,
        });
        let names: Vec<_> = found
            .iter()
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(names, vec!["inner.pfx", "top.p12"]);
    }
}
