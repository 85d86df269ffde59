//! CMS (RFC 5652) for sealed bids: sign, verify, seal (sign then encrypt) and open.
//!
//! Owns the on-disk formats of DESIGN.md "Sealed bids". Everything streams in constant memory:
//! the content never sits in memory whole, outputs are definite-length DER written to a temporary
//! file in the destination directory and renamed only once complete and checked.
//!
//! The token layer plugs in through [`keys::SigningKey`] and [`keys::DecryptionKey`].

pub mod ber;
pub mod cert;
pub mod chain;
mod cipher;
mod derw;
pub mod error;
mod fsx;
pub mod keys;
pub mod oids;
pub mod open;
pub mod recipient;
pub mod seal;
pub mod sign;
pub mod software;
pub mod verify;

pub use cipher::ContentCipher;
pub use error::CmsError;
pub use keys::{DecryptionKey, DigestAlgorithm, KeyError, KeyTransportPadding, SigningKey};

#[cfg(test)]
mod tests;
