//! InstructMol in Rust.
pub mod chem;
