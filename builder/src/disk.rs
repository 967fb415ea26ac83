//! (stage module; filled in by its owner)
