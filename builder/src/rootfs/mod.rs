//! Root filesystem sources (tar, directory) → one normalized, sorted [`Tree`].

mod tree;

pub use tree::{path_cmp, ContentStore, DataRef, Entry, Kind, Tree, Xattr};
