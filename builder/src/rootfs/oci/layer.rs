//! Reading one layer blob in a single streaming pass: the compressed bytes are counted and
//! hashed (descriptor size and digest), decompressed, hashed again (the config's `diff_id`)
//! and walked as a tar. File contents go to the shared spool; whiteouts are collected apart.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest as _, Sha256};

use super::layout::{check_blob, Descriptor, Layout, Sha256Digest};
use crate::rootfs::normalize::clean_path;
use crate::rootfs::store::FileSlices;
use crate::rootfs::tarball::convert;
use crate::rootfs::tree::{parent_of, DataRef, Entry, Kind};

/// Marks a directory whose lower-layer contents are hidden.
pub const OPAQUE: &str = ".wh..wh..opq";
/// Prefix of a whiteout: `.wh.NAME` removes `NAME` of the lower layers.
pub const WHITEOUT: &str = ".wh.";
/// Prefix of aufs bookkeeping names (`.wh..wh.plnk`, …), which carry no image content.
const AUFS_META: &str = ".wh..wh.";

/// What one layer changes, split so whiteouts can be applied before its own entries.
#[derive(Debug, Default)]
pub struct Layer {
    /// Directories whose lower-layer children are removed.
    pub opaque: Vec<String>,
    /// Paths removed (with everything below them) from the lower layers.
    pub whiteouts: Vec<String>,
    /// The layer's entries in archive order; `DataRef`s index the spool.
    pub entries: Vec<Entry>,
}

/// One spool file receiving the contents of every layer's regular files.
#[derive(Debug)]
pub struct Spool {
    file: File,
    out: BufWriter<File>,
    pos: u64,
    slices: Vec<(u64, u64)>,
}

impl Spool {
    pub fn new(dir: &Path) -> Result<Self> {
        let file = tempfile::tempfile_in(dir)
            .with_context(|| format!("creating a spool file in {}", dir.display()))?;
        let out = BufWriter::with_capacity(1 << 20, file.try_clone()?);
        Ok(Spool {
            file,
            out,
            pos: 0,
            slices: Vec::new(),
        })
    }

    /// Copies exactly `size` bytes of `r` into the spool.
    fn add(&mut self, r: &mut dyn Read, size: u64) -> Result<DataRef> {
        let copied = io::copy(r, &mut self.out).context("spooling file content")?;
        ensure!(
            copied == size,
            "truncated: {copied} of {size} content bytes present"
        );
        self.slices.push((self.pos, size));
        self.pos += size;
        Ok(DataRef(self.slices.len() as u64 - 1))
    }

    /// Flushes and turns the spool into the tree's content store.
    pub fn finish(mut self) -> Result<FileSlices> {
        self.out.flush().context("writing the spool file")?;
        drop(self.out);
        Ok(FileSlices {
            file: self.file,
            slices: self.slices,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression a layer media type declares, checked against the blob's first bytes.
fn compression(media_type: &str, magic: &[u8]) -> Result<Compression> {
    let sniffed = match magic {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    };
    let suffix = [
        "application/vnd.oci.image.layer.v1.",
        "application/vnd.oci.image.layer.nondistributable.v1.",
    ]
    .iter()
    .find_map(|p| media_type.strip_prefix(p));
    let declared = match suffix {
        Some("tar") => Compression::None,
        Some("tar+gzip") => Compression::Gzip,
        Some("tar+zstd") => Compression::Zstd,
        // Docker's media type says gzip, but uncompressed layers carry it too.
        _ if media_type.starts_with("application/vnd.docker.image.rootfs.")
            && media_type.ends_with("diff.tar.gzip") =>
        {
            return Ok(sniffed)
        }
        _ => bail!("unsupported layer media type {media_type} (expected an OCI tar, tar+gzip or tar+zstd layer)"),
    };
    ensure!(
        declared == sniffed,
        "media type {media_type} declares {declared:?} compression but the blob starts like {sniffed:?}"
    );
    Ok(declared)
}

/// Counts and (if `enabled`) hashes what passes through.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    enabled: bool,
    count: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            enabled: true,
            count: 0,
        }
    }

    /// Reads the rest of the stream through the hasher.
    fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(drop)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if self.enabled {
            self.hasher.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// Reads layer `desc`, whose uncompressed digest must be `diff_id`, into a [`Layer`].
/// A wrong blob digest is reported before any problem its content caused while parsing.
pub fn read(layout: &Layout, desc: &Descriptor, diff_id: &str, spool: &mut Spool) -> Result<Layer> {
    let (path, digest) = layout.blob_path(desc)?;
    let want_diff = Sha256Digest::parse(diff_id).context("image config rootfs.diff_ids")?;
    let mut f = File::open(&path).with_context(|| format!("opening blob {}", path.display()))?;
    let len = f.metadata()?.len();
    ensure!(
        len == desc.size,
        "blob {} is {len} bytes, its descriptor says {}",
        desc.digest,
        desc.size
    );
    let mut magic = [0u8; 4];
    let n = read_prefix(&mut f, &mut magic)?;
    let comp = compression(&desc.media_type, &magic[..n])?;
    let file = File::open(&path)?;
    let mut raw = Hashing::new(BufReader::with_capacity(1 << 20, file));
    // An uncompressed layer's diff_id is the digest of the blob itself: hashed once.
    let walked = match comp {
        Compression::None => walk(&mut raw, spool, false),
        Compression::Gzip => walk(flate2::read::MultiGzDecoder::new(&mut raw), spool, true),
        Compression::Zstd => zstd::Decoder::new(&mut raw)
            .context("starting the zstd decoder")
            .and_then(|d| walk(d, spool, true)),
    };
    raw.drain()
        .with_context(|| format!("reading blob {}", path.display()))?;
    let blob_digest: [u8; 32] = raw.hasher.finalize().into();
    check_blob(&desc.digest, desc.size, raw.count, blob_digest, digest)?;
    let (layer, stream_digest) = walked?;
    let got_diff = stream_digest.unwrap_or(blob_digest);
    ensure!(
        got_diff == want_diff.0,
        "uncompressed layer hashes to sha256:{}, but the image config's diff_id is {want_diff}",
        hex::encode(got_diff)
    );
    Ok(layer)
}

fn read_prefix(f: &mut File, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Walks the (decompressed) tar; returns the layer and, if `hash`, the SHA-256 of the whole
/// stream (read to its end either way).
fn walk<R: Read>(r: R, spool: &mut Spool, hash: bool) -> Result<(Layer, Option<[u8; 32]>)> {
    let mut un = Hashing::new(r);
    un.enabled = hash;
    let mut layer = Layer::default();
    {
        let mut archive = tar::Archive::new(&mut un);
        for (i, item) in archive
            .entries()
            .context("reading the first tar header")?
            .enumerate()
        {
            let mut te = item
                .with_context(|| format!("tar entry #{i}: bad header (truncated or not a tar?)"))?;
            let shown = String::from_utf8_lossy(&te.path_bytes()).into_owned();
            one_entry(&mut te, &mut layer, spool)
                .with_context(|| format!("tar entry #{i} `{shown}`"))?;
        }
    }
    un.drain().context("reading past the end of the tar")?;
    Ok((layer, hash.then(|| un.hasher.finalize().into())))
}

fn one_entry<R: Read>(
    te: &mut tar::Entry<'_, R>,
    layer: &mut Layer,
    spool: &mut Spool,
) -> Result<()> {
    let Some(mut e) = convert(te)? else {
        return Ok(());
    };
    match classify(&e.path)? {
        Class::Opaque(dir) => layer.opaque.push(dir),
        Class::Whiteout(path) => layer.whiteouts.push(path),
        Class::Skip => tracing::warn!(path = %e.path, "skipping aufs bookkeeping entry"),
        Class::Normal => {
            if let Kind::File { size, data } = &mut e.kind {
                *data = spool.add(te, *size)?;
            }
            layer.entries.push(e);
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Class {
    Normal,
    Opaque(String),
    Whiteout(String),
    Skip,
}

/// What a (cleaned) layer path means: content, a whiteout, an opaque marker or aufs metadata.
fn classify(path: &str) -> Result<Class> {
    let mut comps: Vec<&str> = path.split('/').collect();
    let name = comps.pop().unwrap_or("");
    if comps.iter().any(|c| c.starts_with(AUFS_META)) {
        return Ok(Class::Skip);
    }
    if let Some(c) = comps.iter().find(|c| c.starts_with(WHITEOUT)) {
        bail!("whiteout name `{c}` used as a directory");
    }
    let parent = parent_of(path).unwrap_or("");
    if name == OPAQUE {
        return Ok(Class::Opaque(parent.to_string()));
    }
    if name.starts_with(AUFS_META) {
        return Ok(Class::Skip);
    }
    let Some(target) = name.strip_prefix(WHITEOUT) else {
        return Ok(Class::Normal);
    };
    ensure!(
        !target.is_empty() && target != "." && target != "..",
        "whiteout `{name}` names no removable entry (refusing `.`/`..`)"
    );
    let joined = if parent.is_empty() {
        target.to_string()
    } else {
        format!("{parent}/{target}")
    };
    Ok(Class::Whiteout(clean_path(joined.as_bytes())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_table() {
        let table = [
            ("etc/passwd", Some(Class::Normal)),
            ("etc/.wh.passwd", Some(Class::Whiteout("etc/passwd".into()))),
            (".wh.opt", Some(Class::Whiteout("opt".into()))),
            ("var/.wh..wh..opq", Some(Class::Opaque("var".into()))),
            (".wh..wh..opq", Some(Class::Opaque(String::new()))),
            (".wh..wh.plnk/123", Some(Class::Skip)),
            ("a/.wh..wh.aufs", Some(Class::Skip)),
            ("a/.wh.", None),
            ("a/.wh...", None),
            ("a/.wh.b/c", None),
            ("", Some(Class::Normal)),
        ];
        for (path, want) in table {
            assert_eq!(classify(path).ok(), want, "{path}");
        }
    }

    #[test]
    fn compression_table() {
        let gz = [0x1f, 0x8b, 8, 0];
        let zst = [0x28, 0xb5, 0x2f, 0xfd];
        let tar = *b"etc/";
        let oci = "application/vnd.oci.image.layer.v1.";
        let docker = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let ok = [
            (format!("{oci}tar"), &tar, Compression::None),
            (format!("{oci}tar+gzip"), &gz, Compression::Gzip),
            (format!("{oci}tar+zstd"), &zst, Compression::Zstd),
            (docker.to_string(), &gz, Compression::Gzip),
            (docker.to_string(), &tar, Compression::None),
        ];
        for (mt, magic, want) in ok {
            assert_eq!(compression(&mt, magic).unwrap(), want, "{mt}");
        }
        assert!(compression(&format!("{oci}tar+gzip"), &zst).is_err());
        assert!(compression(&format!("{oci}tar"), &gz).is_err());
        assert!(compression("application/vnd.oci.image.layer.v1.tar+bzip2", &tar).is_err());
    }
}
