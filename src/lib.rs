//! postern: one binary that hosts your own mail domain.
//!
//! Rooms, top to bottom (see README.md "Code map"): `cli` → `server` (binds listeners) →
//! protocols `smtp`, `imap`, `pop3`, `http` → `services` (`Services`, built once) → policy
//! `delivery`, `inbound`, `outbound` → `store` (Maildir), `queue` (outbound spool) →
//! `accounts`, `dns`, `tls` → `net`, `fsutil`, `clock`, `config`.

pub mod accounts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dns;
pub mod fsutil;
pub mod http;
pub mod imap;
pub mod inbound;
pub mod listener;
pub mod logsafe;
pub mod managesieve;
pub mod metrics;
pub mod net;
pub mod outbound;
pub mod pop3;
pub mod queue;
pub mod server;
pub mod services;
pub mod sieve;
pub mod smtp;
pub mod spam;
pub mod spool;
pub mod store;
pub mod tls;
pub mod tlsrpt;

pub use services::Services;
