//! Moving mail in and out (`node import`, `node export`): the Maildir and mbox formats
//! (pure parsers, fuzzed) and the reading of a source tree.

pub mod maildir_names;
pub mod mbox_parse;
pub mod source;
