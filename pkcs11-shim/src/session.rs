//! Sessions (PKCS#11 v2.40 §5.6) and the operations in progress in them.

use crate::keys::PrivateKey;
use crate::mechanism::{DecryptMechanism, Hasher, SignMechanism};
use cryptoki_sys::*;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Largest input buffered for the single-part raw mechanisms (an RSA-8192 block).
pub const MAX_RAW_INPUT: usize = 1024;

/// An open session.
#[derive(Debug)]
pub struct Session {
    pub slot: CK_SLOT_ID,
    /// The token load this session was opened on (see [`crate::token::Token::generation`]).
    pub generation: u64,
    pub rw: bool,
    pub find: Option<FindState>,
    pub sign: Option<SignOp>,
    pub decrypt: Option<DecryptOp>,
}

impl Session {
    pub fn new(slot: CK_SLOT_ID, generation: u64, rw: bool) -> Self {
        Session {
            slot,
            generation,
            rw,
            find: None,
            sign: None,
            decrypt: None,
        }
    }

    /// `CK_SESSION_INFO.state`.
    pub fn state(&self, logged_in: bool) -> CK_STATE {
        match (self.rw, logged_in) {
            (false, false) => CKS_RO_PUBLIC_SESSION,
            (false, true) => CKS_RO_USER_FUNCTIONS,
            (true, false) => CKS_RW_PUBLIC_SESSION,
            (true, true) => CKS_RW_USER_FUNCTIONS,
        }
    }

    /// Ends the cryptographic operations that use private keys (after logout).
    pub fn end_key_operations(&mut self) {
        self.sign = None;
        self.decrypt = None;
    }
}

/// A `C_FindObjects` search: the handles matched at `C_FindObjectsInit`.
#[derive(Debug)]
pub struct FindState {
    pub handles: Vec<CK_OBJECT_HANDLE>,
    pub pos: usize,
}

impl FindState {
    pub fn next_batch(&mut self, max: usize) -> Vec<CK_OBJECT_HANDLE> {
        let end = self.handles.len().min(self.pos.saturating_add(max));
        let out = self.handles[self.pos..end].to_vec();
        self.pos = end;
        out
    }
}

/// Data collected for a signature.
#[derive(Debug, Clone)]
pub enum SignData {
    Buffer(Zeroizing<Vec<u8>>),
    Hash(Box<Hasher>),
}

/// A signing operation between `C_SignInit` and the final call.
#[derive(Debug, Clone)]
pub struct SignOp {
    pub key: Arc<PrivateKey>,
    pub mech: SignMechanism,
    pub data: SignData,
    /// Whether `C_SignUpdate` was called (then `C_Sign` is not allowed).
    pub multipart: bool,
}

impl SignOp {
    pub fn new(key: Arc<PrivateKey>, mech: SignMechanism) -> Self {
        let data = match mech.hash() {
            Some(h) => SignData::Hash(Box::new(h.hasher())),
            None => SignData::Buffer(Zeroizing::new(Vec::new())),
        };
        SignOp {
            key,
            mech,
            data,
            multipart: false,
        }
    }

    /// Adds input; raw mechanisms take one block at most.
    pub fn update(&mut self, data: &[u8]) -> crate::Result<()> {
        match &mut self.data {
            SignData::Hash(h) => h.update(data),
            SignData::Buffer(b) => {
                if b.len() + data.len() > MAX_RAW_INPUT {
                    return Err(crate::Error::DataLenRange);
                }
                b.extend_from_slice(data);
            }
        }
        Ok(())
    }

    /// Signs what was collected.
    pub fn finish(self) -> crate::Result<Vec<u8>> {
        let input = match self.data {
            SignData::Hash(h) => Zeroizing::new((*h).finish()),
            SignData::Buffer(b) => b,
        };
        self.key.sign(&self.mech, &input)
    }
}

/// A decryption operation between `C_DecryptInit` and `C_Decrypt`.
#[derive(Debug, Clone)]
pub struct DecryptOp {
    pub key: Arc<PrivateKey>,
    pub mech: DecryptMechanism,
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn find_batches_walk_the_matches_once() {
        let mut f = FindState {
            handles: vec![1, 2, 3],
            pos: 0,
        };
        assert_eq!(f.next_batch(2), vec![1, 2]);
        assert_eq!(f.next_batch(2), vec![3]);
        assert!(f.next_batch(2).is_empty());
    }

    #[test]
    fn session_state_follows_rw_flag_and_login() {
        let s = Session::new(1, 1, false);
        assert_eq!(s.state(false), CKS_RO_PUBLIC_SESSION);
        assert_eq!(s.state(true), CKS_RO_USER_FUNCTIONS);
        let s = Session::new(1, 1, true);
        assert_eq!(s.state(true), CKS_RW_USER_FUNCTIONS);
    }
}
