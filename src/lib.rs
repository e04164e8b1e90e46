//! InstructMol in Rust. Layers, dependencies pointing one way:
//! [`chem`] -> [`model`] -> [`data`] -> [`run`] -> [`train`] / [`infer`] / [`eval`] -> [`cli`];
//! [`rng`] is the seeded random-number generator they share.
pub mod chem;
pub mod cli;
pub mod data;
pub mod eval;
pub mod infer;
pub mod model;
pub mod rng;
pub mod run;
pub mod serve;
pub mod train;
