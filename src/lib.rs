//! InstructMol in Rust.
pub mod chem;
pub mod cli;
