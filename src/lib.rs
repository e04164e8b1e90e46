//! InstructMol in Rust.
pub mod chem;
pub mod cli;
pub mod data;
pub mod eval;
pub mod infer;
pub mod model;
pub mod train;
