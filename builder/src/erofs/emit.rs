//! Writes a planned image through one `Write + Seek` sink as two sequential streams: the
//! metadata area (buffered, flushed in large pieces) and the data area (file contents streamed
//! straight from the content store). Every byte of the image is written explicitly, padding
//! included, so the result never depends on what the sink held before.

use std::io::{Read, Seek, SeekFrom, Write};

use anyhow::{ensure, Context, Result};

use super::format::BLOCK_SIZE;

/// Metadata is flushed to the sink once this much is buffered.
const META_FLUSH: usize = 1 << 20;
/// Chunk size for streaming file contents.
pub const COPY_CHUNK: usize = 1 << 17;

/// The two write cursors over one sink; offsets are relative to where the image starts.
pub struct Emitter<'w, W: Write + Seek> {
    out: &'w mut W,
    /// Sink position where the image starts.
    base: u64,
    /// Current sink position, relative to `base`.
    pos: u64,
    /// Buffered metadata bytes, starting at image offset `meta_start`.
    meta: Vec<u8>,
    meta_start: u64,
    /// Next image offset in the data area.
    data_pos: u64,
}

impl<W: Write + Seek> std::fmt::Debug for Emitter<'_, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("base", &self.base)
            .field("meta_end", &self.meta_end())
            .field("data_pos", &self.data_pos)
            .finish()
    }
}

impl<'w, W: Write + Seek> Emitter<'w, W> {
    /// Starts an image at the sink's current position; the data area begins at `data_start`.
    pub fn new(out: &'w mut W, data_start_block: u64) -> Result<Self> {
        let base = out
            .stream_position()
            .context("reading the output position")?;
        Ok(Emitter {
            out,
            base,
            pos: 0,
            meta: Vec::with_capacity(META_FLUSH),
            meta_start: 0,
            data_pos: data_start_block * BLOCK_SIZE,
        })
    }

    fn meta_end(&self) -> u64 {
        self.meta_start + self.meta.len() as u64
    }

    /// Writes `bytes` at image offset `at` in the metadata area, zero-filling any gap since the
    /// previous metadata write. Offsets must increase.
    pub fn meta_at(&mut self, at: u64, bytes: &[u8]) -> Result<()> {
        let end = self.meta_end();
        ensure!(at >= end, "metadata written out of order ({at} < {end})");
        self.meta.resize(self.meta.len() + (at - end) as usize, 0);
        self.meta.extend_from_slice(bytes);
        if self.meta.len() >= META_FLUSH {
            self.flush_meta()?;
        }
        Ok(())
    }

    fn flush_meta(&mut self) -> Result<()> {
        let buf = std::mem::take(&mut self.meta);
        self.write_at(self.meta_start, &buf)
            .context("writing the erofs metadata area")?;
        self.meta_start += buf.len() as u64;
        self.meta = buf;
        self.meta.clear();
        Ok(())
    }

    /// Image offset where the next data-area write goes.
    pub fn data_pos(&self) -> u64 {
        self.data_pos
    }

    /// Appends `bytes` to the data area.
    pub fn data(&mut self, bytes: &[u8]) -> Result<()> {
        self.write_at(self.data_pos, bytes)?;
        self.data_pos += bytes.len() as u64;
        Ok(())
    }

    /// Zero-pads the data area to the next block boundary.
    pub fn pad_data_block(&mut self) -> Result<()> {
        let pad = self.data_pos.next_multiple_of(BLOCK_SIZE) - self.data_pos;
        self.data(&vec![0u8; pad as usize])
    }

    /// Copies exactly `len` bytes from `src` into the data area; `buf` is scratch space.
    pub fn copy_data(&mut self, src: &mut dyn Read, len: u64, buf: &mut [u8]) -> Result<()> {
        let mut left = len;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            read_full(src, &mut buf[..want], len - left, len)?;
            self.data(&buf[..want])?;
            left -= want as u64;
        }
        Ok(())
    }

    fn write_at(&mut self, at: u64, bytes: &[u8]) -> Result<()> {
        if self.pos != at {
            self.out.seek(SeekFrom::Start(self.base + at))?;
        }
        self.out.write_all(bytes)?;
        self.pos = at + bytes.len() as u64;
        Ok(())
    }

    /// Zero-fills the metadata area up to the data area, checks the data area ends at
    /// `blocks`, and leaves the sink positioned at the end of the image.
    pub fn finish(mut self, data_start_block: u64, blocks: u64) -> Result<()> {
        self.meta_at(data_start_block * BLOCK_SIZE, &[])?;
        self.flush_meta()?;
        let end = blocks * BLOCK_SIZE;
        ensure!(
            self.data_pos == end,
            "data area ends at {} but {end} was planned",
            self.data_pos
        );
        self.out.seek(SeekFrom::Start(self.base + end))?;
        self.out.flush().context("flushing the erofs image")?;
        Ok(())
    }
}

/// Fills `buf` from `src`; `done` and `total` describe the position for the error message.
pub fn read_full(src: &mut dyn Read, buf: &mut [u8], done: u64, total: u64) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = match src.read(&mut buf[filled..]) {
            Ok(0) => {
                anyhow::bail!(
                    "content ended after {} bytes, {total} expected",
                    done + filled as u64
                )
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading file content"),
        };
        filled += n;
    }
    Ok(())
}

/// Fails unless `src` is at its end (the content is longer than the size in the tree).
pub fn expect_eof(src: &mut dyn Read, total: u64) -> Result<()> {
    let mut probe = [0u8; 1];
    loop {
        match src.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => anyhow::bail!("content is longer than the {total} bytes in the tree"),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading file content"),
        }
    }
}
