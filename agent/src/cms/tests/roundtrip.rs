//! Segel ↔ Segel: seal/open round trips, tamper and truncation, recipients, hostile input.
