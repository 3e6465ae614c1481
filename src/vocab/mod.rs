//! The shared vocabulary: types and small helpers every layer speaks (the bottom layer; it
//! imports nothing else from the crate). See docs/architecture.md for the layers above it.

pub mod crypto;
pub mod error_type;
pub mod limits;
pub mod pending;
pub mod provider;
pub mod text;
