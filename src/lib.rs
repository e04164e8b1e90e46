//! InstructMol in Rust.
pub mod chem;
pub mod cli;
pub mod eval;
pub mod data;
pub mod model;
pub mod train;
