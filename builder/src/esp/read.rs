//! Reading a FAT image back (with `fatfs`), for `inspect`, `measure disk` and `diff`. The
//! image may come from anywhere, so every walk is bounded: `fatfs` follows cluster chains
//! without cycle checks, so a directory whose chain loops would list forever and a file whose
//! size field is 4 GiB would be read (and held) whole. Here a directory is read for at most
//! [`MAX_DIR_ENTRIES`] entries (the FAT specification's own limit), a listing descends at most
//! [`MAX_DEPTH`] levels and visits at most [`MAX_ITEMS`] items, and a file may not claim more
//! bytes than the image has.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use anyhow::{bail, ensure, Context, Result};
use fatfs::{Dir, FileSystem, FsOptions};
use sha2::{Digest, Sha256};

/// Entries one directory may hold: FAT numbers them with 16 bits (Microsoft FAT specification
/// 1.03, §6: "a directory may not contain more than 65,536 32-byte entries").
pub const MAX_DIR_ENTRIES: usize = 65_536;
/// Directory levels a listing descends (an ESP has three: `EFI/BOOT/BOOTX64.EFI`).
pub const MAX_DEPTH: usize = 16;
/// Files and directories one listing visits in all.
pub const MAX_ITEMS: usize = 65_536;

/// A window of `len` bytes of a file from `start` (a partition inside a disk image), for
/// [`read_file`] and [`list`].
#[derive(Debug)]
pub struct Window<'a> {
    file: &'a File,
    start: u64,
    len: u64,
    pos: u64,
}

impl<'a> Window<'a> {
    /// `len` bytes of `file` from `start`.
    pub fn new(file: &'a File, start: u64, len: u64) -> Self {
        Window {
            file,
            start,
            len,
            pos: 0,
        }
    }
}

impl Read for Window<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.len.saturating_sub(self.pos) as usize);
        let got = self.file.read_at(&mut buf[..n], self.start + self.pos)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl Seek for Window<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// A reader that refuses writes, so any `Read + Seek` FAT image can be mounted.
struct ReadOnly<R>(R);

impl<R: Read> Read for ReadOnly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<R: Seek> Seek for ReadOnly<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos)
    }
}

impl<R> Write for ReadOnly<R> {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the FAT image is opened read-only",
        ))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Fs<R> = FileSystem<ReadOnly<R>>;

fn mount<R: Read + Seek>(mut img: R) -> Result<(Fs<R>, u64)> {
    let size = img
        .seek(SeekFrom::End(0))
        .context("finding the FAT image's size")?;
    img.rewind().context("seeking in the FAT image")?;
    let fs = FileSystem::new(ReadOnly(img), FsOptions::new()).context("mounting the FAT image")?;
    Ok((fs, size))
}

/// The entries of `dir`, at most [`MAX_DIR_ENTRIES`] of them (more means a cyclic or hostile
/// cluster chain: the error names the directory `shown`).
fn entries<'a, R: Read + Seek>(
    dir: &Dir<'a, ReadOnly<R>>,
    shown: &str,
) -> Result<Vec<fatfs::DirEntry<'a, ReadOnly<R>>>> {
    let mut out = Vec::new();
    for e in dir.iter() {
        let e = e.with_context(|| format!("listing {shown} in the FAT image"))?;
        ensure!(
            out.len() < MAX_DIR_ENTRIES,
            "directory {shown} of the FAT image has more than {MAX_DIR_ENTRIES} entries, the FAT \
             limit (its cluster chain loops or the image is corrupt)"
        );
        let name = e.file_name();
        if name != "." && name != ".." {
            out.push(e);
        }
    }
    Ok(out)
}

/// Reads the file at `path` (`/`-separated, case-insensitive, long or short names) from the
/// FAT image `img`. The image is never written.
pub fn read_file<R: Read + Seek>(img: R, path: &str) -> Result<Vec<u8>> {
    let (fs, size) = mount(img)?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((leaf, dirs)) = parts.split_last() else {
        bail!("empty path {path:?} to read from the FAT image");
    };
    let mut dir = fs.root_dir();
    let mut shown = String::from("/");
    for part in dirs {
        let e = find(&dir, &shown, part, path)?;
        shown = format!("{shown}{part}/");
        ensure!(
            e.is_dir(),
            "{path}: {shown} in the FAT image is not a directory"
        );
        dir = e.to_dir();
    }
    let e = find(&dir, &shown, leaf, path)?;
    ensure!(e.is_file(), "{path} in the FAT image is not a file");
    let mut out = Vec::with_capacity(e.len().min(size) as usize); // the claim is checked next
    copy_claimed(e.to_file(), e.len(), size, path, &mut out)?;
    Ok(out)
}

/// The entry named `name` (long or short name, any case) in `dir`.
fn find<'a, R: Read + Seek>(
    dir: &Dir<'a, ReadOnly<R>>,
    shown: &str,
    name: &str,
    path: &str,
) -> Result<fatfs::DirEntry<'a, ReadOnly<R>>> {
    entries(dir, shown)?
        .into_iter()
        .find(|e| {
            e.file_name().eq_ignore_ascii_case(name)
                || e.short_file_name().eq_ignore_ascii_case(name)
        })
        .with_context(|| format!("{path} is not in the FAT image ({name} missing in {shown})"))
}

/// Copies a file whose directory entry claims `len` bytes into `sink`: the claim may not
/// exceed the image, and the cluster chain must deliver exactly `len` bytes. `shown` names the
/// file in errors.
fn copy_claimed(
    f: impl Read,
    len: u64,
    image: u64,
    shown: &str,
    sink: &mut impl Write,
) -> Result<()> {
    ensure!(
        len <= image,
        "{shown}: {len} bytes claimed, more than the FAT image's {image}"
    );
    let got = io::copy(&mut f.take(len), sink)
        .with_context(|| format!("reading {shown} from the FAT image"))?;
    ensure!(
        got == len,
        "{shown} in the FAT image ends after {got} of its {len} bytes (short cluster chain)"
    );
    Ok(())
}

/// One item of a [`Listing`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Dir,
    /// A file: its length, and its SHA-256 when the listing hashes ([`list`], not
    /// [`list_names`]).
    File {
        len: u64,
        sha256: Option<[u8; 32]>,
    },
}

/// What a FAT image holds: volume id, label, and every directory and file by `/`-separated
/// path (no leading slash), files with their SHA-256.
#[derive(Debug)]
pub struct Listing {
    pub volume_id: u32,
    pub label: String,
    pub items: BTreeMap<String, Item>,
}

/// Lists and hashes everything in the FAT image `img`, within the bounds of this module.
pub fn list<R: Read + Seek>(img: R) -> Result<Listing> {
    walk(img, true)
}

/// Lists everything in the FAT image `img` without reading file contents.
pub fn list_names<R: Read + Seek>(img: R) -> Result<Listing> {
    walk(img, false)
}

fn walk<R: Read + Seek>(img: R, hash: bool) -> Result<Listing> {
    let (fs, size) = mount(img)?;
    let mut items = BTreeMap::new();
    let mut todo = vec![(String::new(), fs.root_dir(), 0)];
    while let Some((prefix, dir, depth)) = todo.pop() {
        for e in entries(&dir, &format!("/{prefix}"))? {
            ensure!(
                items.len() < MAX_ITEMS,
                "the FAT image holds more than {MAX_ITEMS} files and directories (a directory \
                 that contains itself, or a corrupt image)"
            );
            let path = format!("{prefix}{}", e.file_name());
            if e.is_dir() {
                ensure!(
                    depth < MAX_DEPTH,
                    "directories nested more than {MAX_DEPTH} deep in the FAT image (a \
                     directory that contains itself?) at /{path}"
                );
                todo.push((format!("{path}/"), e.to_dir(), depth + 1));
                items.insert(path, Item::Dir);
            } else {
                let sha256 = if hash {
                    let mut h = Sha256::new();
                    copy_claimed(e.to_file(), e.len(), size, &format!("/{path}"), &mut h)?;
                    Some(h.finalize().into())
                } else {
                    None
                };
                items.insert(
                    path,
                    Item::File {
                        len: e.len(),
                        sha256,
                    },
                );
            }
        }
    }
    Ok(Listing {
        volume_id: fs.volume_id(),
        label: fs.volume_label().trim_end().to_string(),
        items,
    })
}
