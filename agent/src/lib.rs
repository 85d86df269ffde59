//! Segel agent library.
