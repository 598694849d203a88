//! helpers for whole-server tests
