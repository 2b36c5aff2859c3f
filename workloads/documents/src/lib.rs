//! The stored documents that more than one crate touches, one Rust type each, used by the
//! writer and by every reader (so a change of shape is a compile error, not a silent skip).
//!
//! * [`user_sessions`]: the `user_sessions` collection the sink writes (flattened,
//!   pseudonymised sessions), read by training and similar users.
//!
//! The model registry's and the privacy ledger's documents live with their stores
//! (`shopstream-registry`, `shopstream-privacy`), which their readers use directly.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod user_sessions;
