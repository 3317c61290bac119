//! Delivery policy shared by port 25 and submission: who is local (accounts), where local
//! mail goes (store), what goes to the queue (remote recipients, forwarding aliases), and
//! DKIM signing of mail leaving the domain.

pub mod dkim;
mod local;
mod local_job;
pub mod quota;
pub mod relay;
pub mod sieve;
mod sieve_notices;
pub mod srs;
pub mod vacation;

pub use local::{DeliveryError, Plan, plan};
pub use local_job::{LocalJob, LocalOutcome};
