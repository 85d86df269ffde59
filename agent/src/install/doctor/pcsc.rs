//! Doctor's smart-card checks: pcscd reachable, its readers and cards, and cards whose ATR is
//! not in Segel's ATR table (with the `atr-modules.toml` lines to add). It looks through the
//! same [`Watcher`] and [`AtrTable`] as `segel readers` and the daemon.

use std::path::PathBuf;
use std::time::Instant;

use super::{Check, Doctor, PCSCD_SOCKET, Status};
use crate::pcsc::atr::{USER_FILE, format_hex, unknown_atr_hint};
use crate::pcsc::{AtrTable, ServiceState, Snapshot, Watcher, WatcherOptions};

/// The pcscd socket clients use (`PCSCLITE_CSOCK_NAME`, as libpcsclite reads it).
fn socket() -> PathBuf {
    std::env::var_os("PCSCLITE_CSOCK_NAME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(PCSCD_SOCKET))
}

impl Doctor {
    /// pcscd, then one check per card; the watcher is given until `deadline`.
    pub(super) fn pcsc_checks(&self, deadline: Instant) -> Vec<Check> {
        let socket = socket();
        let config_dir = self.platform.paths().config_dir.clone();
        let mut out = Vec::new();
        let table = match AtrTable::load(&config_dir) {
            Ok(t) => Some(t),
            Err(e) => {
                let file = config_dir.join(USER_FILE);
                out.push(self.check(
                    "atr-table",
                    None,
                    Status::Fail,
                    (e.to_string(), format!("tabel ATR tidak valid: {e}")),
                    Some((
                        format!("correct or remove {}", file.display()),
                        format!("perbaiki atau hapus {}", file.display()),
                    )),
                ));
                None
            }
        };
        let watcher = match Watcher::start(WatcherOptions::default()) {
            Ok(w) => w,
            Err(e) => {
                out.push(self.check(
                    "pcscd",
                    None,
                    Status::Fail,
                    (
                        format!("cannot start the PC/SC watcher: {e}"),
                        format!("pemantau PC/SC tidak dapat dimulai: {e}"),
                    ),
                    None,
                ));
                return out;
            }
        };
        // One full scan after pcscd answered, or pcscd reported down (as `segel readers`).
        let (snap, _) =
            watcher.wait_until(deadline.saturating_duration_since(Instant::now()), |s| {
                matches!(s.service, ServiceState::Down { .. })
                    || (s.service == ServiceState::Up && s.scans >= 2)
            });
        // Never dropped: dropping joins the watcher's thread, which may be inside a pcscd call
        // that never returns. The doctor's process ends right after the report.
        std::mem::forget(watcher);
        match &snap.service {
            ServiceState::Down { reason } => out.push(self.check(
                "pcscd",
                None,
                Status::Fail,
                (
                    format!("pcscd is not reachable at {} ({reason}): smart-card tokens will not be seen", socket.display()),
                    format!("pcscd tidak dapat dihubungi di {} ({reason}): token kartu pintar tidak akan terlihat", socket.display()),
                ),
                Some((
                    "sudo apt install pcscd && sudo systemctl enable --now pcscd.socket".to_owned(),
                    "sudo apt install pcscd && sudo systemctl enable --now pcscd.socket".to_owned(),
                )),
            )),
            ServiceState::Starting => {
                let mut c = self.timed_out("pcscd", None);
                c.message = self.t(
                    format!(
                        "pcscd at {} took the connection but did not answer within the time limit ({} s): smart-card tokens will not be seen",
                        socket.display(),
                        self.limit.as_secs_f64().round()
                    ),
                    format!(
                        "pcscd di {} menerima koneksi tetapi tidak menjawab dalam batas waktu ({} detik): token kartu pintar tidak akan terlihat",
                        socket.display(),
                        self.limit.as_secs_f64().round()
                    ),
                );
                out.push(c);
            }
            ServiceState::Up => out.extend(self.reader_checks(&snap, table.as_ref(), &socket)),
        }
        out
    }

    fn reader_checks(
        &self,
        snap: &Snapshot,
        table: Option<&AtrTable>,
        socket: &std::path::Path,
    ) -> Vec<Check> {
        let cards = snap.readers.iter().filter(|r| r.card_present).count();
        let mut out = vec![self.check(
            "pcscd",
            None,
            Status::Ok,
            (
                format!(
                    "pcscd answers at {}: {} reader(s), {cards} card(s)",
                    socket.display(),
                    snap.readers.len()
                ),
                format!(
                    "pcscd menjawab di {}: {} pembaca kartu, {cards} kartu",
                    socket.display(),
                    snap.readers.len()
                ),
            ),
            None,
        )];
        let config_dir = &self.platform.paths().config_dir;
        for r in snap.readers.iter().filter(|r| r.card_present) {
            let atr = format_hex(&r.atr);
            let subject = Some(r.name.clone());
            match table.map(|t| t.lookup(&r.atr)) {
                // The table could not be read: reported above.
                None => {}
                Some(Some(entry)) => {
                    let module = entry
                        .modules
                        .current()
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "-".to_owned());
                    out.push(self.check(
                        "reader",
                        subject,
                        Status::Ok,
                        (
                            format!("{}: {} (ATR {atr}), module {module}", r.name, entry.name),
                            format!("{}: {} (ATR {atr}), modul {module}", r.name, entry.name),
                        ),
                        None,
                    ));
                }
                Some(None) => {
                    let file = config_dir.join(USER_FILE);
                    out.push(self.check(
                        "reader",
                        subject,
                        Status::Warn,
                        (
                            format!("{}: the card with ATR {atr} is not in Segel's ATR table, so Segel cannot pick its module", r.name),
                            format!("{}: kartu dengan ATR {atr} tidak ada di tabel ATR Segel, sehingga Segel tidak dapat memilih modulnya", r.name),
                        ),
                        Some((
                            unknown_atr_hint(&r.atr, config_dir),
                            format!(
                                "kartu dengan ATR {atr} tidak ada di tabel ATR Segel; Segel mencobanya dengan OpenSC. Untuk menentukan modulnya, tambahkan ke {}:\n\
                                 [[card]]\nname = \"Token saya\"\natr = \"{atr}\"\n[card.modules]\nlinux = [\"vendor-pkcs11.so\"]",
                                file.display()
                            ),
                        )),
                    ));
                }
            }
        }
        out
    }
}
