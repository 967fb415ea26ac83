//! Tar input (plain, gzip, zstd): one sequential pass. Plain tars are referenced in place;
//! compressed ones have their file contents spooled to a work file.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::normalize::{clean_path, Builder};
use super::store::FileSlices;
use super::tree::{DataRef, Entry, Kind, Tree, Xattr};
use super::InputDigest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Reads `path` into a [`Tree`]; returns it with the SHA-256 of the tar file's bytes.
/// `spool_dir` receives the decompressed contents of compressed tars.
pub fn read(
    path: &Path,
    epoch: u64,
    spool_dir: &Path,
    known: Option<[u8; 32]>,
) -> Result<(Tree, InputDigest)> {
    let mut f =
        File::open(path).with_context(|| format!("opening rootfs tar {}", path.display()))?;
    let file_len = f.metadata()?.len();
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    f.seek(SeekFrom::Start(0))?;
    let comp = match &magic[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd] => Compression::Zstd,
        _ => Compression::None,
    };
    let ctx = || format!("reading rootfs tar {}", path.display());
    if comp == Compression::None {
        // Contents stay in the tar; its digest is computed on another core while the headers
        // are parsed and the build goes on (the caller waits for it when it needs it), unless
        // the caller verified it already (a cached rootfs).
        let backing = File::open(path)?;
        let digest = match known {
            Some(d) => InputDigest::Ready(d),
            None => {
                let hash_file = backing.try_clone()?;
                let thread = std::thread::Builder::new()
                    .name("tar-sha256".into())
                    .spawn(move || sha256_file_at(&hash_file, file_len))
                    .context("starting the tar hashing thread")?;
                InputDigest::Hashing {
                    path: path.to_path_buf(),
                    thread,
                }
            }
        };
        let (entries, slices, _) =
            walk(BufReader::with_capacity(1 << 20, f), None, epoch, file_len).with_context(ctx)?;
        let store = Box::new(FileSlices {
            file: backing,
            slices,
        });
        return Ok((Tree { entries, store }, digest));
    }
    let mut hashing = HashingReader {
        inner: BufReader::with_capacity(1 << 20, f),
        hasher: Sha256::new(),
    };
    let spool = tempfile::tempfile_in(spool_dir)
        .with_context(|| format!("creating a spool file in {}", spool_dir.display()))?;
    let mut out = io::BufWriter::with_capacity(1 << 20, spool.try_clone()?);
    let (entries, slices) = if comp == Compression::Gzip {
        let (e, s, d) = walk(
            flate2::read::GzDecoder::new(&mut hashing),
            Some(&mut out),
            epoch,
            u64::MAX,
        )
        .with_context(ctx)?;
        drop(d);
        (e, s)
    } else {
        let (e, s, d) = walk(
            zstd::Decoder::new(&mut hashing)?,
            Some(&mut out),
            epoch,
            u64::MAX,
        )
        .with_context(ctx)?;
        drop(d);
        (e, s)
    };
    out.flush()?;
    drop(out);
    io::copy(&mut hashing, &mut io::sink())?; // hash any trailing bytes the parser did not need
    let tree = Tree {
        entries,
        store: Box::new(FileSlices {
            file: spool,
            slices,
        }),
    };
    Ok((tree, InputDigest::Ready(hashing.hasher.finalize().into())))
}

/// SHA-256 of the first `len` bytes of `f`, with positioned reads.
fn sha256_file_at(f: &File, len: u64) -> io::Result<[u8; 32]> {
    use std::os::unix::fs::FileExt;
    let mut d = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    while pos < len {
        let n = buf.len().min((len - pos) as usize);
        f.read_exact_at(&mut buf[..n], pos)?;
        d.update(&buf[..n]);
        pos += n as u64;
    }
    Ok(d.finalize().into())
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

type Walked<R> = (Vec<Entry>, Vec<(u64, u64)>, R);

/// Iterates the archive. With `spool`, file contents are copied there; without, they are
/// referenced at their position in the (plain) tar, which must hold `file_len` bytes.
fn walk<R: Read>(
    r: R,
    mut spool: Option<&mut dyn Write>,
    epoch: u64,
    file_len: u64,
) -> Result<Walked<R>> {
    let mut archive = tar::Archive::new(r);
    let mut builder = Builder::default();
    let mut slices = Vec::new();
    let mut spool_pos = 0u64;
    for (i, item) in archive
        .entries()
        .context("reading the first tar header")?
        .enumerate()
    {
        let mut te =
            item.with_context(|| format!("tar entry #{i}: bad header (truncated or not a tar?)"))?;
        let raw_path = te.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let entry = (|| -> Result<Option<Entry>> {
            let Some(mut e) = convert(&mut te)? else { return Ok(None) };
            if let Kind::File { size, data } = &mut e.kind {
                *data = DataRef(slices.len() as u64);
                match spool.as_deref_mut() {
                    Some(out) => {
                        let copied = io::copy(&mut te, out)?;
                        if copied != *size {
                            bail!("truncated: {copied} of {size} content bytes present");
                        }
                        slices.push((spool_pos, *size));
                        spool_pos += *size;
                    }
                    None => {
                        let pos = te.raw_file_position();
                        if pos.checked_add(*size).is_none_or(|end| end > file_len) {
                            bail!("truncated: content ({size} bytes at offset {pos}) runs past the end of the file ({file_len} bytes)");
                        }
                        slices.push((pos, *size));
                    }
                }
            }
            Ok(Some(e))
        })()
        .with_context(|| format!("tar entry #{i} `{shown}`"))?;
        if let Some(e) = entry {
            builder
                .add(e)
                .with_context(|| format!("tar entry #{i} `{shown}`"))?;
        }
    }
    let entries = builder.finish(epoch)?;
    Ok((entries, slices, archive.into_inner()))
}

/// Converts one tar entry (metadata only); `None` for entries that carry no file (PAX globals).
pub(super) fn convert<R: Read>(te: &mut tar::Entry<'_, R>) -> Result<Option<Entry>> {
    use tar::EntryType as T;
    let h = te.header().clone();
    let path = clean_path(&te.path_bytes())?;
    let mut uid = h.uid()? as u32;
    let mut gid = h.gid()? as u32;
    let mut mtime = h.mtime()?;
    let mut xattrs = Vec::new();
    if let Some(pax) = te.pax_extensions()? {
        for ext in pax {
            let ext = ext?;
            let key = ext
                .key()
                .map_err(|_| anyhow::anyhow!("PAX key is not UTF-8"))?;
            let num = || -> Result<u64> {
                let v = ext
                    .value()
                    .map_err(|_| anyhow::anyhow!("PAX {key} is not UTF-8"))?;
                let int = v.split('.').next().unwrap_or(v);
                int.parse()
                    .with_context(|| format!("PAX {key}={v} is not a number"))
            };
            match key {
                "uid" => uid = u32::try_from(num()?).context("PAX uid too large")?,
                "gid" => gid = u32::try_from(num()?).context("PAX gid too large")?,
                "mtime" => mtime = num().unwrap_or(0),
                k if k.starts_with("SCHILY.xattr.") => xattrs.push(Xattr {
                    name: k.as_bytes()["SCHILY.xattr.".len()..].to_vec(),
                    value: ext.value_bytes().to_vec(),
                }),
                _ => {}
            }
        }
    }
    let dev = |h: &tar::Header| -> Result<(u32, u32)> {
        Ok((
            h.device_major()?.unwrap_or(0),
            h.device_minor()?.unwrap_or(0),
        ))
    };
    let link = || -> Result<Vec<u8>> {
        Ok(te
            .link_name_bytes()
            .context("link entry without a target")?
            .into_owned())
    };
    let kind = match h.entry_type() {
        T::Regular | T::Continuous => Kind::File { size: te.size(), data: DataRef(0) },
        T::Directory => Kind::Dir,
        T::Symlink => Kind::Symlink { target: link()? },
        T::Link => Kind::Hardlink { target: clean_path(&link()?)? },
        T::Char => { let (major, minor) = dev(&h)?; Kind::CharDev { major, minor } }
        T::Block => { let (major, minor) = dev(&h)?; Kind::BlockDev { major, minor } }
        T::Fifo => Kind::Fifo,
        T::XGlobalHeader | T::XHeader | T::GNULongName | T::GNULongLink => return Ok(None),
        other => bail!("unsupported tar entry type {other:?} (sparse or vendor-specific entries are not supported)"),
    };
    if let Kind::Symlink { target } = &kind {
        if target.is_empty() || target.contains(&0) {
            bail!("symlink with an empty or NUL-containing target");
        }
    }
    if path.is_empty() && kind != Kind::Dir {
        bail!("the root of the archive is not a directory");
    }
    let perm = (h.mode()? & 0o7777) as u16;
    Ok(Some(Entry {
        path,
        kind,
        perm,
        uid,
        gid,
        mtime,
        xattrs,
    }))
}
