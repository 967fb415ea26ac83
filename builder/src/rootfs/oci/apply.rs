//! Stacking layers: each layer's opaque markers and whiteouts remove what the layers below
//! put there, then its own entries are added (a directory over a directory keeps its
//! children; any other clash replaces the lower entry and everything below it).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use super::layer::Layer;
use crate::rootfs::normalize::Builder;
use crate::rootfs::tree::{DataRef, Entry, Kind};

/// A hardlink as created: the file version it named.
#[derive(Debug)]
struct Link {
    target: String,
    data: DataRef,
    layer: usize,
}

/// The merged state of the layers applied so far.
#[derive(Debug, Default)]
pub struct Merge {
    builder: Builder,
    links: BTreeMap<String, Link>,
}

impl Merge {
    /// Applies layer number `n` (0 = bottom).
    pub fn apply(&mut self, layer: Layer, n: usize) -> Result<()> {
        let mut removed = 0;
        for dir in &layer.opaque {
            removed += self.builder.clear_dir(dir);
        }
        for path in &layer.whiteouts {
            removed += self.builder.remove(path);
        }
        let added = layer.entries.len();
        for e in layer.entries {
            self.add(e, n)?;
        }
        tracing::debug!(layer = n, removed, added, "applied OCI layer");
        Ok(())
    }

    fn add(&mut self, e: Entry, n: usize) -> Result<()> {
        if let Kind::Hardlink { target } = &e.kind {
            let data = self
                .file_data(target)
                .with_context(|| format!("hardlink `/{}` → `/{target}`", e.path))?;
            let link = Link {
                target: target.clone(),
                data,
                layer: n,
            };
            self.links.insert(e.path.clone(), link);
        }
        self.builder.replace(e);
        Ok(())
    }

    /// The content of the regular file at `path`, following hardlinks.
    fn file_data(&self, path: &str) -> Result<DataRef> {
        let mut cur = path;
        for _ in 0..64 {
            match self.builder.get(cur).map(|e| &e.kind) {
                Some(Kind::File { data, .. }) => return Ok(*data),
                Some(Kind::Hardlink { target }) => cur = target,
                Some(_) => bail!("`/{cur}` is not a regular file"),
                None => bail!("`/{cur}` is not in this layer or a lower one"),
            }
        }
        bail!("hardlink chain from `/{path}` is too long or a cycle")
    }

    /// Checks no surviving hardlink lost its file to a later layer, then normalizes.
    pub fn finish(self, epoch: u64) -> Result<Vec<Entry>> {
        for (path, link) in &self.links {
            let still = matches!(
                self.builder.get(path).map(|e| &e.kind),
                Some(Kind::Hardlink { target }) if *target == link.target
            );
            if still && self.file_data(&link.target).ok() != Some(link.data) {
                bail!(
                    "hardlink `/{path}` (layer {}) names `/{}`, which a later layer removed or \
                     replaced; refusing, because the link would silently change content",
                    link.layer,
                    link.target
                );
            }
        }
        self.builder.finish(epoch)
    }
}
