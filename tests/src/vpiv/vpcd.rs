//! The vpcd side of a virtual card (TESTSTACK.md, "PC/SC"): the card connects to the reader's TCP
//! port on 127.0.0.1; every message is a 2-byte big-endian length and the bytes; one-byte messages
//! are control (0 power off, 1 power on, 2 reset, 4 get ATR), longer ones are APDUs to answer.
//! Connecting inserts the card, closing the socket removes it.
//!
//! Debian's vpcd writes the length and the APDU in two sends; with delayed ACKs every APDU would
//! stall ~40 ms, so the card sets TCP_NODELAY and re-arms TCP_QUICKACK after every read.

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use socket2::SockRef;

use super::applet::{self, CardState, Session};

/// No INS byte: the "pull on" trigger is off.
const NO_TRIGGER: u16 = u16::MAX;

struct Shared {
    state: Mutex<CardState>,
    atr: Mutex<Vec<u8>>,
    delay_us: AtomicU64,
    apdus: AtomicU64,
    /// Remove the card (close the socket without answering) when a command with this INS
    /// arrives; [`NO_TRIGGER`] for none.
    pull_on_ins: AtomicU16,
    pulled: AtomicBool,
}

struct Connection {
    stream: TcpStream,
    thread: JoinHandle<()>,
}

/// A virtual PIV card that can be inserted into (connected to) a vpcd reader and removed.
pub struct VirtualCard {
    shared: Arc<Shared>,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for VirtualCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("inserted", &self.is_inserted())
            .finish_non_exhaustive()
    }
}

impl VirtualCard {
    /// A card with `state` presenting `atr`, not inserted.
    pub fn new(state: CardState, atr: Vec<u8>) -> Self {
        VirtualCard {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                atr: Mutex::new(atr),
                delay_us: AtomicU64::new(0),
                apdus: AtomicU64::new(0),
                pull_on_ins: AtomicU16::new(NO_TRIGGER),
                pulled: AtomicBool::new(false),
            }),
            conn: Mutex::new(None),
        }
    }

    /// Inserts the card into the vpcd reader listening on 127.0.0.1:`port`.
    pub fn insert(&self, port: u16) -> Result<()> {
        let mut conn = lock(&self.conn);
        if let Some(c) = conn.as_ref()
            && !c.thread.is_finished()
        {
            bail!("card is already inserted");
        }
        let stream = TcpStream::connect(("127.0.0.1", port))
            .with_context(|| format!("connecting to vpcd on 127.0.0.1:{port}"))?;
        stream.set_nodelay(true)?;
        let reader = stream.try_clone()?;
        let shared = Arc::clone(&self.shared);
        self.shared.pulled.store(false, Ordering::SeqCst);
        let thread = std::thread::Builder::new()
            .name(format!("vpiv-{port}"))
            .spawn(move || serve(reader, &shared))?;
        *conn = Some(Connection { stream, thread });
        Ok(())
    }

    /// Removes the card: closes the socket at once (an APDU in progress gets no answer) and waits
    /// for the card's thread.
    pub fn remove(&self) {
        if let Some(c) = lock(&self.conn).take() {
            let _ = c.stream.shutdown(Shutdown::Both);
            let _ = c.thread.join();
        }
    }

    /// True while connected to a reader.
    pub fn is_inserted(&self) -> bool {
        lock(&self.conn)
            .as_ref()
            .is_some_and(|c| !c.thread.is_finished())
    }

    /// Delay before answering every APDU (a slow card; also widens the window for removal).
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.shared.delay_us.store(us, Ordering::SeqCst);
    }

    /// Pull the card out when the next command with instruction `ins` arrives (before answering),
    /// e.g. `0x87` GENERAL AUTHENTICATE for "pulled mid-signature"; `None` disables.
    pub fn pull_on(&self, ins: Option<u8>) {
        self.shared
            .pull_on_ins
            .store(ins.map_or(NO_TRIGGER, u16::from), Ordering::SeqCst);
    }

    /// True once the [`Self::pull_on`] trigger fired (the card is out).
    pub fn was_pulled(&self) -> bool {
        self.shared.pulled.load(Ordering::SeqCst)
    }

    /// Changes the ATR (seen at the next insertion).
    pub fn set_atr(&self, atr: &[u8]) {
        *lock(&self.shared.atr) = atr.to_vec();
    }

    /// APDUs answered since the card was made.
    pub fn apdu_count(&self) -> u64 {
        self.shared.apdus.load(Ordering::SeqCst)
    }

    /// The card's state (PIN counters, keys, objects) for inspection or changes.
    pub fn state(&self) -> MutexGuard<'_, CardState> {
        lock(&self.shared.state)
    }
}

impl Drop for VirtualCard {
    fn drop(&mut self) {
        self.remove();
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The card's side of one connection, until vpcd or [`VirtualCard::remove`] closes it.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let mut session = Session::default();
    loop {
        let Ok(msg) = read_message(&mut stream) else {
            return;
        };
        let reply = match msg.as_slice() {
            [0] | [1] | [2] => {
                // Power off, power on, reset: a new session (nothing selected, PIN not verified).
                session = Session::default();
                continue;
            }
            [4] => lock(&shared.atr).clone(),
            [_] => continue,
            apdu => {
                let delay = shared.delay_us.load(Ordering::SeqCst);
                if delay > 0 {
                    std::thread::sleep(Duration::from_micros(delay));
                }
                let trigger = shared.pull_on_ins.load(Ordering::SeqCst);
                if trigger != NO_TRIGGER && apdu.get(1).map(|&i| u16::from(i)) == Some(trigger) {
                    shared.pull_on_ins.store(NO_TRIGGER, Ordering::SeqCst);
                    shared.pulled.store(true, Ordering::SeqCst);
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
                shared.apdus.fetch_add(1, Ordering::SeqCst);
                applet::handle_apdu(&mut lock(&shared.state), &mut session, apdu)
            }
        };
        if write_message(&mut stream, &reply).is_err() {
            return;
        }
    }
}

fn read_message(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    // Linux leaves quick-ACK mode on its own (e.g. after we send): re-arm it before each read so
    // the ACK for vpcd's 2-byte length segment goes out at once (see module docs).
    let quickack = |s: &TcpStream| SockRef::from(s).set_tcp_quickack(true);
    let mut len = [0u8; 2];
    let _ = quickack(stream);
    stream.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    let _ = quickack(stream);
    stream.read_exact(&mut msg)?;
    let _ = quickack(stream);
    Ok(msg)
}

fn write_message(stream: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(std::io::Error::other)?;
    // One send: length and body together.
    let mut buf = Vec::with_capacity(msg.len() + 2);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(msg);
    stream.write_all(&buf)
}
