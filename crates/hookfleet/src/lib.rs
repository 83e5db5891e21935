//! The hookfleet application: wires the role crates together.
//!
//! Layout:
//! - [`app`]: runs any set of roles (router, worker) in one process with a shared
//!   pool and endpoint registry, plus the ops server; `run` takes a shutdown token
//!   and an already-bound ops listener so tests run the real thing on port 0.
//! - [`ops`]: `/metrics`, `/healthz`, `/readyz`.
//! - `admin` (from `hookfleet-api`): endpoint management shared by CLI and API.
//! - [`listen`]: a local receiver that verifies signatures, for development.
//! - [`emit`]: publishing events from the shell with confirms.
//! - [`verify`]: checking a captured delivery's signature, saying why it fails.
#![forbid(unsafe_code)]

pub use hookfleet_service::endpoints as admin;
pub mod app;
pub mod emit;
pub mod listen;
pub mod ops;
pub mod verify;

pub use app::{run, Roles};
