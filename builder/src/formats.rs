//! Cloud disk formats written from `disk.raw`: qcow2 (v3), fixed VHD (Azure's rules), the GCE
//! import tarball and streamOptimized VMDK. Each writer streams the raw image (qcow2 reads the
//! data twice, the others once; holes of a sparse `disk.raw` are never read), is deterministic
//! (no clock, no host data: the same `disk.raw` and epoch give the same bytes) and hashes what it
//! writes on another core ([`Sink`]). Memory: a few 4 MiB buffers plus one byte per 64 KiB of
//! disk (qcow2) or 4 bytes per grain (VMDK).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

/// A format `nodeimg build` writes besides `disk.raw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Format {
    /// qcow2 v3, zero clusters unallocated (QEMU, OpenStack, libvirt).
    Qcow2,
    /// Fixed VHD: the raw disk padded to a whole MiB plus a 512-byte footer (Azure).
    Vhd,
    /// `disk.raw` (padded to a whole GiB) in a gzip'd tar, as Compute Engine imports it.
    Gce,
    /// VMDK streamOptimized: deflated grains with markers (AWS VM Import, VMware).
    Vmdk,
}

/// Every format, in the order outputs are listed.
pub const ALL: [Format; 4] = [Format::Qcow2, Format::Vhd, Format::Gce, Format::Vmdk];

impl Format {
    /// The output file name.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Qcow2 => "disk.qcow2",
            Format::Vhd => "disk.vhd",
            Format::Gce => "disk.tar.gz",
            Format::Vmdk => "disk.vmdk",
        }
    }

    /// The config name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Qcow2 => "qcow2",
            Format::Vhd => "vhd",
            Format::Gce => "gce",
            Format::Vmdk => "vmdk",
        }
    }

    /// The format named `name` (`raw` is not one: it is always written).
    pub fn from_name(name: &str) -> Option<Format> {
        ALL.into_iter().find(|f| f.name() == name)
    }

    /// Writes `raw` in this format to the new file `out`; returns (SHA-256 hex, size).
    /// `raw_sha256` names the image (the VHD's unique id, the VMDK's CID): pass it when it is
    /// known; otherwise it is computed (for the VHD in the same pass: the raw disk is the VHD's
    /// prefix). `epoch` dates it.
    pub fn write(
        self,
        raw: &Path,
        raw_sha256: Option<&[u8; 32]>,
        epoch: u64,
        out: &Path,
    ) -> Result<(String, u64)> {
        let ctx = || format!("writing {} from {}", out.display(), raw.display());
        let raw_sha = match (self, raw_sha256) {
            (Format::Vmdk, None) => Some(crate::signing::sha256_file(raw)?),
            (_, known) => known.copied(),
        };
        let source = Raw::open(raw, true).with_context(ctx)?;
        self.write_from(&source, raw_sha.as_ref(), epoch, out)
            .map_err(|e| {
                // A system call that reads the mapping past the file's new end fails (EFAULT)
                // where a plain access would raise SIGBUS; a read comes up short. Either way,
                // say what happened rather than "Bad address".
                match source.file.metadata().map(|m| m.len()) {
                    Ok(now) if now < source.size => e.context(format!(
                        "{}: the file shrank from {} to {now} bytes while nodeimg was reading it \
                         (another process truncated or rewrote it); run again once nothing else \
                         writes to it",
                        raw.display(),
                        source.size
                    )),
                    _ => e,
                }
            })
            .with_context(ctx)
    }

    fn write_from(
        self,
        raw: &Raw,
        raw_sha256: Option<&[u8; 32]>,
        epoch: u64,
        out: &Path,
    ) -> Result<(String, u64)> {
        let mut w = Sink::new(File::create(out)?);
        match self {
            Format::Qcow2 => qcow2(raw, &mut w),
            Format::Vhd => vhd(raw, raw_sha256, epoch, &mut w),
            Format::Gce => gce(raw, epoch, &mut w),
            Format::Vmdk => vmdk(raw, &raw_sha256.copied().unwrap_or_default(), &mut w),
        }
        .and_then(|()| w.finish())
        .map(|(digest, size)| (hex::encode(digest), size))
    }
}

/// Where a writer's output goes. Bytes are gathered into 4 MiB buffers; each full buffer is
/// written to the file and then hashed on another thread (the SHA-256 of the whole output, in
/// order) while the next one fills. [`Sink::zeros`] leaves a hole in the file (it reads as the
/// zeros the hasher hashes). Every 64 MiB the kernel is asked to start writing back (never
/// waited for), so the final `fsync` does not wait for the whole file. Memory: at most
/// [`SINK_BUFFERS`] buffers, whatever the image size.
struct Sink {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    at: u64,
    /// Where the range not yet handed to writeback starts.
    synced: u64,
    to_hasher: Option<std::sync::mpsc::SyncSender<Chunk>>,
    free: std::sync::mpsc::Receiver<Vec<u8>>,
    hasher: Option<std::thread::JoinHandle<[u8; 32]>>,
}

enum Chunk {
    Data(Vec<u8>),
    /// `len` bytes of a mapped input from `offset`, written out unchanged.
    Mapped(std::sync::Arc<crate::mmap::Mapping>, usize, usize),
    Zeros(u64),
    /// Asks for the digest of everything hashed so far.
    Snapshot(std::sync::mpsc::SyncSender<[u8; 32]>),
}

const SINK_BUF: usize = 4 << 20;
const SINK_BUFFERS: usize = 4;
const WRITEBACK_EVERY: u64 = 64 << 20;

impl Sink {
    fn new(file: File) -> Sink {
        let (to_hasher, chunks) = std::sync::mpsc::sync_channel::<Chunk>(SINK_BUFFERS);
        let (give_back, free) = std::sync::mpsc::sync_channel::<Vec<u8>>(SINK_BUFFERS);
        for _ in 1..SINK_BUFFERS {
            let _ = give_back.send(Vec::with_capacity(SINK_BUF));
        }
        let hasher = std::thread::spawn(move || {
            let mut h = Sha256::new();
            let zeros = vec![0u8; 1 << 16];
            for c in chunks {
                match c {
                    Chunk::Data(mut b) => {
                        h.update(&b);
                        b.clear();
                        let _ = give_back.try_send(b);
                    }
                    Chunk::Mapped(m, offset, len) => h.update(&m.bytes()[offset..offset + len]),
                    Chunk::Zeros(mut n) => {
                        while n > 0 {
                            let k = n.min(zeros.len() as u64);
                            h.update(&zeros[..k as usize]);
                            n -= k;
                        }
                    }
                    Chunk::Snapshot(reply) => {
                        let _ = reply.send(h.clone().finalize().into());
                    }
                }
            }
            h.finalize().into()
        });
        Sink {
            file,
            buf: Vec::with_capacity(SINK_BUF),
            at: 0,
            synced: 0,
            to_hasher: Some(to_hasher),
            free,
            hasher: Some(hasher),
        }
    }

    fn send(&self, c: Chunk) -> std::io::Result<()> {
        self.to_hasher
            .as_ref()
            .and_then(|t| t.send(c).ok())
            .ok_or_else(|| std::io::Error::other("the output hashing thread stopped"))
    }

    /// Writes the gathered bytes out and hands them to the hasher.
    fn flush_buf(&mut self) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.buf, self.at)?;
        self.at += self.buf.len() as u64;
        let next = self
            .free
            .recv()
            .unwrap_or_else(|_| Vec::with_capacity(SINK_BUF));
        let full = std::mem::replace(&mut self.buf, next);
        self.send(Chunk::Data(full))?;
        self.start_writeback();
        Ok(())
    }

    /// Starts writeback of what was written since the last call, every [`WRITEBACK_EVERY`].
    fn start_writeback(&mut self) {
        use std::os::fd::AsRawFd;
        if self.at - self.synced < WRITEBACK_EVERY {
            return;
        }
        // SAFETY: sync_file_range on a descriptor we own; no memory is passed. A failure only
        // means the final fsync does all the work.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.synced as libc::off64_t,
                (self.at - self.synced) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.synced = self.at;
    }

    /// Appends `n` bytes of `raw` from `offset`: written from its mapping (and hashed there), or
    /// read straight into the buffer.
    fn copy_from(&mut self, raw: &Raw, mut offset: u64, mut n: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if let Some(m) = &raw.map {
            self.flush_buf()?;
            while n > 0 {
                let k = n.min(SINK_BUF as u64) as usize;
                let at = offset as usize;
                if !copy_range(&raw.file, offset, &self.file, self.at, k) {
                    self.file.write_all_at(&m.bytes()[at..at + k], self.at)?;
                }
                self.at += k as u64;
                self.send(Chunk::Mapped(m.clone(), at, k))?;
                self.start_writeback();
                (offset, n) = (offset + k as u64, n - k as u64);
            }
            return Ok(());
        }
        let f = &raw.file;
        while n > 0 {
            let old = self.buf.len();
            let k = n.min((SINK_BUF - old) as u64) as usize;
            self.buf.resize(old + k, 0);
            f.read_exact_at(&mut self.buf[old..], offset)?;
            (offset, n) = (offset + k as u64, n - k as u64);
            if self.buf.len() == SINK_BUF {
                self.flush_buf()?;
            }
        }
        Ok(())
    }

    /// Appends `n` zero bytes: a hole in the file when it is at least a buffer long.
    fn zeros(&mut self, n: u64) -> std::io::Result<()> {
        if n < SINK_BUF as u64 {
            return std::io::copy(&mut std::io::repeat(0).take(n), self).map(|_| ());
        }
        self.flush_buf()?;
        self.send(Chunk::Zeros(n))?;
        self.at += n;
        Ok(())
    }

    /// The SHA-256 of everything appended so far.
    fn snapshot(&mut self) -> std::io::Result<[u8; 32]> {
        self.flush_buf()?;
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.send(Chunk::Snapshot(reply))?;
        answer
            .recv()
            .map_err(|_| std::io::Error::other("the output hashing thread stopped"))
    }

    /// Writes what is left, sets the length (a trailing hole), waits for the digest and
    /// `fsync`s; returns (SHA-256, size).
    fn finish(&mut self) -> Result<([u8; 32], u64)> {
        self.flush_buf()?;
        self.file.set_len(self.at)?;
        drop(self.to_hasher.take());
        let digest = self
            .hasher
            .take()
            .context("the output hashing thread")?
            .join()
            .map_err(|_| anyhow::anyhow!("the output hashing thread panicked"))?;
        self.file.sync_all()?;
        Ok((digest, self.at))
    }
}

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let k = data.len().min(SINK_BUF - self.buf.len());
        self.buf.extend_from_slice(&data[..k]);
        if self.buf.len() == SINK_BUF {
            self.flush_buf()?;
        }
        Ok(k)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Sink {
    /// On an error path: stops the hasher (its digest is not wanted).
    fn drop(&mut self) {
        drop(self.to_hasher.take());
        if let Some(h) = self.hasher.take() {
            let _ = h.join();
        }
    }
}

const CLUSTER: u64 = 1 << 16;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// Copies `len` bytes of `from` at `from_at` to `to` at `to_at` inside the kernel
/// (`copy_file_range`: no copy through this process); `false` (nothing or part copied, the
/// caller writes the range itself) where the kernel or filesystem cannot.
fn copy_range(from: &File, from_at: u64, to: &File, to_at: u64, len: usize) -> bool {
    use std::os::fd::AsRawFd;
    let (Ok(mut off_in), Ok(mut off_out)) = (
        libc::loff_t::try_from(from_at),
        libc::loff_t::try_from(to_at),
    ) else {
        return false;
    };
    let mut left = len;
    while left > 0 {
        // SAFETY: both descriptors are open files we own; the offsets are our own variables.
        let n = unsafe {
            libc::copy_file_range(
                from.as_raw_fd(),
                &mut off_in,
                to.as_raw_fd(),
                &mut off_out,
                left,
                0,
            )
        };
        if n <= 0 {
            return false;
        }
        left -= n as usize;
    }
    true
}

/// Whether `b` is all zero bytes (an OR over 16-byte words, then the tail).
fn is_zero(b: &[u8]) -> bool {
    let words = b.chunks_exact(16);
    let tail = words.remainder();
    let acc = words.fold(0u128, |a, w| {
        a | u128::from_ne_bytes(w.try_into().expect("a 16-byte chunk"))
    });
    acc == 0 && tail.iter().all(|&x| x == 0)
}

/// The raw disk being converted: mapped read-only where the kernel allows it, so the zero checks,
/// the write and the hash read the page cache directly (no copy into buffers); read otherwise.
/// A disk another process truncates while it is converted ends the conversion with an error
/// naming it (`mmap.rs`); nothing is renamed, and `convert` removes its temporary output.
struct Raw {
    path: std::path::PathBuf,
    file: File,
    size: u64,
    map: Option<std::sync::Arc<crate::mmap::Mapping>>,
}

impl Raw {
    /// Opens `path`, mapped when `map` (and the kernel allows).
    fn open(path: &Path, map: bool) -> Result<Raw> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        let map = usize::try_from(size)
            .ok()
            .filter(|_| map)
            .and_then(|len| crate::mmap::Mapping::new(&file, size, 0, len))
            .map(std::sync::Arc::new);
        Ok(Raw {
            path: path.to_path_buf(),
            file,
            size,
            map,
        })
    }

    /// `buf.len()` bytes at `offset`, zero-padded past the end: a slice of the mapping, or read
    /// into `buf`.
    fn view<'a>(&'a self, offset: u64, buf: &'a mut [u8]) -> std::io::Result<&'a [u8]> {
        use std::os::unix::fs::FileExt;
        let end = offset + buf.len() as u64;
        if let (Some(m), true) = (&self.map, end <= self.size) {
            return Ok(&m.bytes()[offset as usize..end as usize]);
        }
        let n = self.size.saturating_sub(offset).min(buf.len() as u64) as usize;
        self.file.read_exact_at(&mut buf[..n], offset)?;
        buf[n..].fill(0);
        Ok(buf)
    }
}

/// The byte ranges of `f` (of `size` bytes) that may hold data: its extents as
/// `SEEK_DATA`/`SEEK_HOLE` report them, or the whole file where the filesystem cannot tell.
fn data_ranges(f: &File, size: u64) -> Vec<(u64, u64)> {
    use std::os::unix::io::AsRawFd;
    let fd = f.as_raw_fd();
    let whole = vec![(0, size)];
    let mut out = Vec::new();
    let mut off: u64 = 0;
    while off < size {
        let Ok(at) = libc::off_t::try_from(off) else {
            return whole;
        };
        // SAFETY: lseek on a file descriptor this function borrows; no memory is touched.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::ENXIO) => out, // no data after `off`
                _ => whole,
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            size
        } else {
            (hole as u64).min(size)
        };
        out.push((data as u64, end));
        if end <= data as u64 {
            return whole;
        }
        off = end;
    }
    out
}

/// qcow2 v3 with 64 KiB clusters and 16-bit refcounts: header, L1 table, refcount table and
/// blocks, the L2 tables that map anything, then the non-zero clusters in guest order. Every
/// allocated cluster has refcount 1 (`COPIED` set in L1/L2); all-zero clusters stay
/// unallocated and read as zeros.
fn qcow2(raw: &Raw, w: &mut Sink) -> Result<()> {
    let (size, f) = (raw.size, &raw.file);
    let guest = size.div_ceil(CLUSTER);
    let per_l2 = CLUSTER / 8;
    // Pass 1: which guest clusters hold data. Clusters wholly inside holes of a sparse file
    // are zero without reading them; the others are checked 4 MiB at a time, the clusters of
    // each 4 MiB on every core (the disk is mapped: nothing is copied) or read first.
    let mut nonzero = vec![false; guest as usize];
    let mut buf = vec![0u8; SINK_BUF];
    let per_read = SINK_BUF as u64 / CLUSTER;
    for (start, end) in data_ranges(f, size) {
        let (mut c, last) = (start / CLUSTER, end.div_ceil(CLUSTER).min(guest));
        while c < last {
            let n = per_read.min(last - c);
            let chunk = raw.view(c * CLUSTER, &mut buf[..(n * CLUSTER) as usize])?;
            nonzero[c as usize..(c + n) as usize]
                .par_iter_mut()
                .zip(chunk.par_chunks_exact(CLUSTER as usize))
                .for_each(|(nz, cluster)| *nz = !is_zero(cluster));
            c += n;
        }
    }
    drop(buf);
    let l1_size = guest.div_ceil(per_l2);
    let l2_used: Vec<bool> = (0..l1_size)
        .map(|t| {
            let from = (t * per_l2) as usize;
            let to = ((t + 1) * per_l2).min(guest) as usize;
            nonzero[from..to].iter().any(|&b| b)
        })
        .collect();
    let n_l2 = l2_used.iter().filter(|&&u| u).count() as u64;
    let n_data = nonzero.iter().filter(|&&u| u).count() as u64;
    let l1_clusters = (l1_size * 8).div_ceil(CLUSTER).max(1);
    // Refcount blocks cover 32768 clusters each; the table 8192 blocks per cluster.
    let (mut rt_clusters, mut rb_clusters) = (1u64, 1u64);
    let total = loop {
        let total = 1 + l1_clusters + rt_clusters + rb_clusters + n_l2 + n_data;
        let rb = total.div_ceil(CLUSTER / 2);
        let rt = rb.div_ceil(CLUSTER / 8).max(1);
        if (rb, rt) == (rb_clusters, rt_clusters) {
            break total;
        }
        (rb_clusters, rt_clusters) = (rb, rt);
    };
    let l1_at = 1;
    let rt_at = l1_at + l1_clusters;
    let rb_at = rt_at + rt_clusters;
    let l2_at = rb_at + rb_clusters;
    let data_at = l2_at + n_l2;
    const COPIED: u64 = 1 << 63;

    // Header cluster.
    let mut h = vec![0u8; CLUSTER as usize];
    let put32 = |h: &mut [u8], at: usize, v: u32| h[at..at + 4].copy_from_slice(&v.to_be_bytes());
    let put64 = |h: &mut [u8], at: usize, v: u64| h[at..at + 8].copy_from_slice(&v.to_be_bytes());
    put32(&mut h, 0, 0x5146_49fb);
    put32(&mut h, 4, 3);
    put32(&mut h, 20, 16);
    put64(&mut h, 24, size);
    put32(
        &mut h,
        36,
        u32::try_from(l1_size).context("the image is too large for qcow2")?,
    );
    put64(&mut h, 40, l1_at * CLUSTER);
    put64(&mut h, 48, rt_at * CLUSTER);
    put32(&mut h, 56, rt_clusters as u32);
    put32(&mut h, 96, 4); // refcount_order: 16-bit
    put32(&mut h, 100, 104); // header_length; the end-of-extensions marker follows (zeros)
    w.write_all(&h)?;

    // L1 table.
    let mut l1 = vec![0u8; (l1_clusters * CLUSTER) as usize];
    let mut next_l2 = l2_at;
    for (t, used) in l2_used.iter().enumerate() {
        if *used {
            l1[t * 8..t * 8 + 8].copy_from_slice(&((next_l2 * CLUSTER) | COPIED).to_be_bytes());
            next_l2 += 1;
        }
    }
    w.write_all(&l1)?;

    // Refcount table and blocks: every one of the `total` clusters is referenced once.
    let mut rt = vec![0u8; (rt_clusters * CLUSTER) as usize];
    for b in 0..rb_clusters {
        let at = (b * 8) as usize;
        rt[at..at + 8].copy_from_slice(&((rb_at + b) * CLUSTER).to_be_bytes());
    }
    w.write_all(&rt)?;
    let mut rb = vec![0u8; CLUSTER as usize];
    for b in 0..rb_clusters {
        rb.fill(0);
        for k in 0..CLUSTER / 2 {
            if b * (CLUSTER / 2) + k < total {
                rb[(k * 2) as usize..(k * 2 + 2) as usize].copy_from_slice(&1u16.to_be_bytes());
            }
        }
        w.write_all(&rb)?;
    }

    // L2 tables, data clusters numbered in guest order.
    let mut next_data = data_at;
    let mut l2 = vec![0u8; CLUSTER as usize];
    for (t, used) in l2_used.iter().enumerate() {
        if !*used {
            continue;
        }
        l2.fill(0);
        let from = t as u64 * per_l2;
        for k in 0..per_l2.min(guest - from) {
            if nonzero[(from + k) as usize] {
                let at = (k * 8) as usize;
                l2[at..at + 8].copy_from_slice(&((next_data * CLUSTER) | COPIED).to_be_bytes());
                next_data += 1;
            }
        }
        w.write_all(&l2)?;
    }

    // Pass 2: the data, each run of consecutive data clusters read straight into the output
    // buffer (the last cluster zero-padded to a whole one).
    let mut i = 0u64;
    while i < guest {
        if !nonzero[i as usize] {
            i += 1;
            continue;
        }
        let run = nonzero[i as usize..].iter().take_while(|&&b| b).count() as u64;
        let (from, to) = (i * CLUSTER, (i + run) * CLUSTER);
        w.copy_from(raw, from, to.min(size) - from)?;
        w.zeros(to - to.min(size))?;
        i += run;
    }
    Ok(())
}

/// Seconds from 2000-01-01T00:00:00Z (the VHD epoch) to `epoch`.
const VHD_EPOCH: u64 = 946_684_800;

/// The VHD footer (Virtual Hard Disk Image Format Specification, "Hard Disk Footer Format").
pub fn vhd_footer(size: u64, unique_id: [u8; 16], epoch: u64) -> [u8; 512] {
    let mut f = [0u8; 512];
    f[0..8].copy_from_slice(b"conectix");
    f[8..12].copy_from_slice(&2u32.to_be_bytes()); // features: reserved bit set
    f[12..16].copy_from_slice(&0x0001_0000u32.to_be_bytes()); // format version 1.0
    f[16..24].copy_from_slice(&u64::MAX.to_be_bytes()); // data offset: none (fixed)
    let stamp = epoch.saturating_sub(VHD_EPOCH).min(u64::from(u32::MAX)) as u32;
    f[24..28].copy_from_slice(&stamp.to_be_bytes());
    // Not "vpc " or "qemu": readers (QEMU, Hyper-V, Azure) then take the size from
    // current_size rather than from the CHS geometry.
    f[28..32].copy_from_slice(b"nimg");
    f[32..36].copy_from_slice(&0x0001_0000u32.to_be_bytes());
    f[36..40].copy_from_slice(b"Wi2k");
    f[40..48].copy_from_slice(&size.to_be_bytes());
    f[48..56].copy_from_slice(&size.to_be_bytes());
    let (c, h, s) = chs(size / 512);
    f[56..58].copy_from_slice(&c.to_be_bytes());
    f[58] = h;
    f[59] = s;
    f[60..64].copy_from_slice(&2u32.to_be_bytes()); // fixed
    f[68..84].copy_from_slice(&unique_id);
    let sum: u32 = f.iter().map(|&b| u32::from(b)).sum();
    f[64..68].copy_from_slice(&(!sum).to_be_bytes());
    f
}

/// The spec's CHS geometry for `sectors` (its appendix algorithm, capped at 65535/16/255).
pub fn chs(sectors: u64) -> (u16, u8, u8) {
    let total = sectors.min(65535 * 16 * 255);
    let (spt, heads, cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        let mut s = 17;
        let mut c = total / s;
        let mut h = c.div_ceil(1024).max(4);
        if c >= h * 1024 || h > 16 {
            s = 31;
            h = 16;
            c = total / s;
        }
        if c >= h * 1024 {
            s = 63;
            h = 16;
            c = total / s;
        }
        spt = s;
        heads = h;
        cth = c;
    }
    ((cth / heads) as u16, heads as u8, spt as u8)
}

/// Fixed VHD: the raw disk padded to a whole MiB (Azure's rule for the virtual size), then the
/// footer. The unique id is derived from the raw image's digest (reproducible); when the caller
/// does not know it, it is the output's digest after the raw bytes (the VHD's prefix). Holes of
/// a sparse raw disk and the padding stay holes in the output file.
fn vhd(raw: &Raw, raw_sha256: Option<&[u8; 32]>, epoch: u64, w: &mut Sink) -> Result<()> {
    let size = raw.size;
    let virtual_size = size.div_ceil(MIB) * MIB;
    if virtual_size == 0 {
        bail!("{} is empty", raw.path.display());
    }
    let mut at = 0;
    for (start, end) in data_ranges(&raw.file, size) {
        w.zeros(start - at)?;
        w.copy_from(raw, start, end - start)?;
        at = end;
    }
    w.zeros(size - at)?;
    let raw_sha = match raw_sha256 {
        Some(d) => *d,
        None => w.snapshot()?,
    };
    w.zeros(virtual_size - size)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(
        &Sha256::new()
            .chain_update(b"nodeimg vhd unique id\0")
            .chain_update(raw_sha)
            .finalize()[..16],
    );
    w.write_all(&vhd_footer(virtual_size, id, epoch))?;
    Ok(())
}

/// The Compute Engine import tarball: one member `disk.raw` (GNU tar, mode 0644, owner 0,
/// mtime `epoch`), its size rounded up to a whole GiB as image import requires, gzip'd with
/// no name and mtime 0 in the gzip header.
fn gce(raw: &Raw, epoch: u64, w: &mut Sink) -> Result<()> {
    let size = raw.size;
    let padded = size.div_ceil(GIB).max(1) * GIB;
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(w, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut h = tar::Header::new_gnu();
    h.set_path("disk.raw")?;
    h.set_size(padded);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(epoch);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let data = (&raw.file)
        .take(size)
        .chain(std::io::repeat(0).take(padded - size));
    tar.append(&h, data)?;
    let gz = tar.into_inner()?;
    gz.finish()?;
    Ok(())
}

const SECTOR: u64 = 512;
/// 64 KiB grains, 512 entries per grain table (32 MiB), as VMware and qemu-img write them.
const GRAIN_SECTORS: u64 = 128;
const GT_ENTRIES: u64 = 512;
const VMDK_DESCRIPTOR_SECTORS: u64 = 20;
const MARKER_GT: u32 = 1;
const MARKER_GD: u32 = 2;
const MARKER_FOOTER: u32 = 3;

/// The sparse extent header (VMware Virtual Disk Format 5.0, "Sparse Extent Header").
fn vmdk_header(capacity: u64, gd_offset: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[0..4].copy_from_slice(b"KDMV");
    h[4..8].copy_from_slice(&3u32.to_le_bytes());
    // Valid newline test, compressed grains, markers.
    h[8..12].copy_from_slice(&(1u32 | (1 << 16) | (1 << 17)).to_le_bytes());
    h[12..20].copy_from_slice(&capacity.to_le_bytes());
    h[20..28].copy_from_slice(&GRAIN_SECTORS.to_le_bytes());
    h[28..36].copy_from_slice(&1u64.to_le_bytes()); // descriptor at sector 1
    h[36..44].copy_from_slice(&VMDK_DESCRIPTOR_SECTORS.to_le_bytes());
    h[44..48].copy_from_slice(&(GT_ENTRIES as u32).to_le_bytes());
    // rgdOffset 0 (no redundant directory)
    h[56..64].copy_from_slice(&gd_offset.to_le_bytes());
    h[64..72].copy_from_slice(&GRAIN_SECTORS.to_le_bytes()); // overHead: data from sector 128
    h[73] = b'\n';
    h[74] = b' ';
    h[75] = b'\r';
    h[76] = b'\n';
    h[77..79].copy_from_slice(&1u16.to_le_bytes()); // deflate
    h
}

/// A metadata marker sector: `sectors` of `kind` follow.
fn vmdk_marker(sectors: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[0..8].copy_from_slice(&sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

/// Writes `bytes` padded to whole sectors; advances `at` (in sectors).
fn put_sectors(w: &mut impl Write, at: &mut u64, bytes: &[u8]) -> Result<()> {
    w.write_all(bytes)?;
    let pad = (SECTOR - bytes.len() as u64 % SECTOR) % SECTOR;
    w.write_all(&vec![0u8; pad as usize])?;
    *at += (bytes.len() as u64 + pad) / SECTOR;
    Ok(())
}

/// VMDK streamOptimized: header (grain directory "at end"), the embedded descriptor, every
/// non-zero 64 KiB grain deflated (zlib) behind a marker naming its LBA, then the grain tables,
/// the grain directory, a footer (the header with the directory's offset) and the
/// end-of-stream marker. The descriptor's CID comes from the raw image's digest.
fn vmdk(raw: &Raw, raw_sha256: &[u8; 32], w: &mut impl Write) -> Result<()> {
    let size = raw.size;
    let capacity = size.div_ceil(SECTOR);
    let grains = capacity.div_ceil(GRAIN_SECTORS);
    let tables = grains.div_ceil(GT_ENTRIES);
    let cid = u32::from_be_bytes([raw_sha256[0], raw_sha256[1], raw_sha256[2], raw_sha256[3]]);
    let cylinders = (capacity / (16 * 63)).min(16383);
    let descriptor = format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid:08x}\nparentCID=ffffffff\n\
         createType=\"streamOptimized\"\n\n# Extent description\nRW {capacity} SPARSE \"disk.vmdk\"\n\n\
         # The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = \"4\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\nddb.geometry.heads = \"16\"\n\
         ddb.geometry.sectors = \"63\"\nddb.adapterType = \"ide\"\n"
    );
    let mut sector_at: u64 = 0;
    put_sectors(w, &mut sector_at, &vmdk_header(capacity, u64::MAX))?;
    let mut d = descriptor.into_bytes();
    d.resize((VMDK_DESCRIPTOR_SECTORS * SECTOR) as usize, 0);
    put_sectors(w, &mut sector_at, &d)?;
    put_sectors(
        w,
        &mut sector_at,
        &vec![0u8; ((GRAIN_SECTORS - 1 - VMDK_DESCRIPTOR_SECTORS) * SECTOR) as usize],
    )?;

    // Grains are read 64 at a time (4 MiB), the non-zero ones deflated on every core, and
    // written in order.
    let mut buf = vec![0u8; SINK_BUF];
    let per_read = SINK_BUF as u64 / CLUSTER;
    let mut table = vec![0u32; (tables * GT_ENTRIES) as usize];
    let mut g0 = 0;
    while g0 < grains {
        let n = per_read.min(grains - g0);
        let chunk = raw.view(g0 * CLUSTER, &mut buf[..(n * CLUSTER) as usize])?;
        let deflated: Vec<Option<Vec<u8>>> = chunk
            .par_chunks(CLUSTER as usize)
            .map(|grain| -> std::io::Result<Option<Vec<u8>>> {
                if is_zero(grain) {
                    return Ok(None);
                }
                let mut z =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(grain)?;
                z.finish().map(Some)
            })
            .collect::<std::io::Result<_>>()?;
        for (k, data) in deflated.into_iter().enumerate() {
            let Some(data) = data else { continue };
            let g = g0 + k as u64;
            table[g as usize] = u32::try_from(sector_at).context("the VMDK exceeds 2 TiB")?;
            let mut grain = Vec::with_capacity(12 + data.len());
            grain.extend((g * GRAIN_SECTORS).to_le_bytes());
            grain.extend((data.len() as u32).to_le_bytes());
            grain.extend(&data);
            put_sectors(w, &mut sector_at, &grain)?;
        }
        g0 += n;
    }
    let gt_sectors = GT_ENTRIES * 4 / SECTOR;
    let mut directory = Vec::new();
    for t in 0..tables as usize {
        put_sectors(w, &mut sector_at, &vmdk_marker(gt_sectors, MARKER_GT))?;
        directory.push(u32::try_from(sector_at).context("the VMDK exceeds 2 TiB")?);
        let entries: Vec<u8> = table[t * GT_ENTRIES as usize..(t + 1) * GT_ENTRIES as usize]
            .iter()
            .flat_map(|e| e.to_le_bytes())
            .collect();
        put_sectors(w, &mut sector_at, &entries)?;
    }
    let gd: Vec<u8> = directory.iter().flat_map(|e| e.to_le_bytes()).collect();
    put_sectors(
        w,
        &mut sector_at,
        &vmdk_marker((gd.len() as u64).div_ceil(SECTOR), MARKER_GD),
    )?;
    let gd_at = sector_at;
    put_sectors(w, &mut sector_at, &gd)?;
    put_sectors(w, &mut sector_at, &vmdk_marker(1, MARKER_FOOTER))?;
    put_sectors(w, &mut sector_at, &vmdk_header(capacity, gd_at))?;
    put_sectors(w, &mut sector_at, &[0u8; 512])?; // end of stream
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparse_raw_gives_the_same_qcow2_as_a_dense_one() {
        use std::io::{Seek, SeekFrom, Write as _};
        let d = tempfile::tempdir().unwrap();
        let (sparse, dense) = (d.path().join("s.raw"), d.path().join("d.raw"));
        let mut f = File::create(&sparse).unwrap();
        f.write_all(&[1u8; 5000]).unwrap();
        f.seek(SeekFrom::Start(10 << 20)).unwrap();
        f.write_all(&[2u8; 70000]).unwrap();
        f.set_len(20 << 20).unwrap();
        drop(f);
        std::fs::write(&dense, std::fs::read(&sparse).unwrap()).unwrap();
        let ranges = data_ranges(&File::open(&sparse).unwrap(), 20 << 20);
        assert!(
            ranges.iter().all(|(a, b)| a < b && *b <= 20 << 20),
            "{ranges:?}"
        );
        // The hole is reported (ext4 and tmpfs report holes; on a filesystem that cannot, qcow2
        // still comes out right but reads everything, and this assertion says so).
        assert!(
            ranges.iter().all(|(a, b)| *b <= 5 << 20 || *a >= 6 << 20),
            "no hole reported between 5 and 6 MiB: {ranges:?}"
        );
        let a = Format::Qcow2
            .write(&sparse, None, 0, &d.path().join("a.qcow2"))
            .unwrap();
        let b = Format::Qcow2
            .write(&dense, None, 0, &d.path().join("b.qcow2"))
            .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn every_format_hashes_what_it_wrote_and_the_vhd_id_needs_no_second_pass() {
        use std::io::{Seek, SeekFrom, Write as _};
        let d = tempfile::tempdir().unwrap();
        let raw = d.path().join("r.raw");
        let mut f = File::create(&raw).unwrap();
        // Data, a 9 MiB hole (a hole in the VHD too), data crossing a buffer boundary, a
        // partial last cluster.
        f.write_all(&[1u8; 70_000]).unwrap();
        f.seek(SeekFrom::Start(9 << 20)).unwrap();
        let tail: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&tail).unwrap();
        drop(f);
        let raw_sha: [u8; 32] = Sha256::digest(std::fs::read(&raw).unwrap()).into();
        // (GCE pads to a whole GiB: tests/tests/formats.rs covers it in release speed.)
        for format in ALL.into_iter().filter(|f| *f != Format::Gce) {
            let out = d.path().join(format.file_name());
            let (sha, size) = format.write(&raw, Some(&raw_sha), 7, &out).unwrap();
            let bytes = std::fs::read(&out).unwrap();
            assert_eq!(bytes.len() as u64, size, "{format:?}");
            assert_eq!(hex::encode(Sha256::digest(&bytes)), sha, "{format:?}");
            // Unknown raw digest: computed, the same output.
            let again = d.path().join(format!("again-{}", format.file_name()));
            assert_eq!(
                format.write(&raw, None, 7, &again).unwrap(),
                (sha, size),
                "{format:?}"
            );
        }
        let vhd = std::fs::read(d.path().join("disk.vhd")).unwrap();
        assert_eq!(&vhd[..70_000], &[1u8; 70_000][..]);
        assert!(is_zero(&vhd[70_000..9 << 20]));
        assert_eq!(&vhd[9 << 20..(9 << 20) + tail.len()], &tail[..]);
    }

    #[test]
    fn read_and_mapped_input_give_the_same_files() {
        use std::io::{Seek, SeekFrom, Write as _};
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("r.raw");
        let mut f = File::create(&path).unwrap();
        f.write_all(&[3u8; 100_000]).unwrap();
        f.seek(SeekFrom::Start(6 << 20)).unwrap();
        f.write_all(&(0..3_000_000u32).map(|i| i as u8).collect::<Vec<u8>>())
            .unwrap();
        drop(f);
        let (mapped, read) = (
            Raw::open(&path, true).unwrap(),
            Raw::open(&path, false).unwrap(),
        );
        assert!(mapped.map.is_some() && read.map.is_none());
        for format in [Format::Qcow2, Format::Vhd, Format::Vmdk] {
            let a = d.path().join(format!("a-{}", format.file_name()));
            let b = d.path().join(format!("b-{}", format.file_name()));
            let x = format.write_from(&mapped, Some(&[9; 32]), 5, &a).unwrap();
            let y = format.write_from(&read, Some(&[9; 32]), 5, &b).unwrap();
            assert_eq!(x, y, "{format:?}");
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&b).unwrap(),
                "{format:?}"
            );
        }
    }

    #[test]
    fn is_zero_sees_any_byte() {
        let mut b = vec![0u8; 65_557];
        assert!(is_zero(&b));
        for at in [0, 15, 16, 65_535, 65_540, 65_556] {
            b[at] = 1;
            assert!(!is_zero(&b), "{at}");
            b[at] = 0;
        }
    }

    #[test]
    fn chs_follows_the_spec() {
        // 127 GiB and more: the cap.
        assert_eq!(chs(u64::MAX), (65535, 16, 255));
        // 1 GiB = 2097152 sectors: 17 spt gives 123361 cylinders*heads, too many; 31 too;
        // 63 sectors, 16 heads: 2080 cylinders.
        assert_eq!(chs(2_097_152), (2080, 16, 63));
        // A small disk: 17 sectors, 4 heads.
        assert_eq!(chs(2048), (30, 4, 17));
    }

    #[test]
    fn the_footer_checksum_is_the_complement_of_the_byte_sum() {
        let f = vhd_footer(64 * MIB, [7; 16], VHD_EPOCH + 10);
        let stored = u32::from_be_bytes([f[64], f[65], f[66], f[67]]);
        let mut z = f;
        z[64..68].fill(0);
        let sum: u32 = z.iter().map(|&b| u32::from(b)).sum();
        assert_eq!(stored, !sum);
        assert_eq!(&f[0..8], b"conectix");
        assert_eq!(u32::from_be_bytes([f[24], f[25], f[26], f[27]]), 10);
        assert_eq!(u64::from_be_bytes(f[48..56].try_into().unwrap()), 64 * MIB);
    }
}
