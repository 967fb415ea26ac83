//! image.toml: parse → resolve → validate.
