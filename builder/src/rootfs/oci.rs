//! OCI image layout input: `index.json` → (tag) → image manifest → layers applied in order,
//! with whiteouts and opaque directories, every blob's size and SHA-256 checked against its
//! descriptor and every layer's uncompressed SHA-256 against the config's `diff_ids`.
//!
//! Layers are read in one streaming pass each; file contents go to one spool file (contents
//! of files a later layer removes stay in the spool, unused), so memory holds metadata only.
//! The result is the same normalized [`Tree`] as the tar reader's; device nodes in layers are
//! kept (a rootless `podman build` cannot create them, but a layer may carry them).

mod apply;
mod layer;
mod layout;

#[cfg(test)]
mod tests;

use std::path::Path;

use anyhow::{Context, Result};

use super::tree::{Kind, Tree};

/// Reads the image `tag` (or the only image) of the layout at `dir`; returns the tree and the
/// SHA-256 of the image manifest blob (the image's digest). `spool_dir` receives the
/// decompressed file contents.
pub fn read(
    dir: &Path,
    tag: Option<&str>,
    epoch: u64,
    spool_dir: &Path,
) -> Result<(Tree, [u8; 32])> {
    let shown = match tag {
        Some(t) => format!("{}:{t}", dir.display()),
        None => dir.display().to_string(),
    };
    read_layout(dir, tag, epoch, spool_dir)
        .with_context(|| format!("reading OCI image layout {shown}"))
}

fn read_layout(
    dir: &Path,
    tag: Option<&str>,
    epoch: u64,
    spool_dir: &Path,
) -> Result<(Tree, [u8; 32])> {
    let layout = layout::Layout::open(dir)?;
    let image = layout.image(tag)?;
    let mut spool = layer::Spool::new(spool_dir)?;
    let mut merge = apply::Merge::default();
    let layers = image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids);
    for (i, (desc, diff_id)) in layers.enumerate() {
        let l = layer::read(&layout, desc, diff_id, &mut spool)
            .with_context(|| format!("layer {i} ({})", desc.digest))?;
        merge
            .apply(l, i)
            .with_context(|| format!("applying layer {i} ({})", desc.digest))?;
    }
    let entries = merge.finish(epoch)?;
    let devices = entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::CharDev { .. } | Kind::BlockDev { .. }))
        .count();
    if devices > 0 {
        tracing::info!(
            devices,
            "device nodes from the OCI layers are kept in the image"
        );
    }
    tracing::info!(
        manifest = %image.manifest_digest,
        layers = image.manifest.layers.len(),
        entries = entries.len(),
        "read OCI image"
    );
    let tree = Tree {
        entries,
        store: Box::new(spool.finish()?),
    };
    Ok((tree, image.manifest_digest.0))
}
