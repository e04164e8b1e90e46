//! `instructmol serve`: trained runs behind an OpenAI-compatible HTTP API, with a web page.
//!
//! [`api`] reads requests and writes answers in OpenAI's schema (the molecule as a content
//! part), [`engine`] decodes every request of every run with continuous batching on one
//! thread, [`http`] routes, checks keys and limits, and streams server-sent events, [`web`]
//! holds the embedded page.

pub mod api;
pub mod engine;
pub mod http;
pub mod web;
