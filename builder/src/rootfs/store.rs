//! Content stores: slices of one file (a plain tar or a spool of decompressed contents) and
//! files of a source directory.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;

use super::tree::{ContentStore, DataRef};

/// File contents as (offset, length) slices of one backing file.
#[derive(Debug)]
pub struct FileSlices {
    pub file: File,
    pub slices: Vec<(u64, u64)>,
}

impl ContentStore for FileSlices {
    fn open(&self, data: DataRef) -> io::Result<Box<dyn Read + '_>> {
        let &(offset, len) = self
            .slices
            .get(data.0 as usize)
            .ok_or_else(|| io::Error::other(format!("no content slice {}", data.0)))?;
        Ok(Box::new(SliceReader {
            file: &self.file,
            pos: offset,
            end: offset + len,
        }))
    }
}

/// Reads `[pos, end)` of a file with positioned reads (no shared cursor).
struct SliceReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for SliceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "content shorter than recorded",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Files of a source directory, opened without following symlinks; a file whose size changed
/// since the walk is an error, not silently different content.
#[derive(Debug)]
pub struct DirFiles {
    pub files: Vec<(PathBuf, u64)>,
}

impl ContentStore for DirFiles {
    fn open(&self, data: DataRef) -> io::Result<Box<dyn Read + '_>> {
        let (path, size) = self
            .files
            .get(data.0 as usize)
            .ok_or_else(|| io::Error::other(format!("no content file {}", data.0)))?;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let now = f.metadata()?.len();
        if now != *size {
            return Err(io::Error::other(format!(
                "{} changed while building (size {size} → {now})",
                path.display()
            )));
        }
        Ok(Box::new(f.take(*size)))
    }
}
