//! Cloud disk formats written from `disk.raw`: qcow2 (v3), fixed VHD (Azure's rules) and the
//! GCE import tarball. Each writer streams the raw image (two passes at most, one 64 KiB
//! cluster in memory plus per-cluster bookkeeping), is deterministic (no clock, no host
//! data: the same `disk.raw` and epoch give the same bytes) and hashes what it writes.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
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
    /// `raw_sha256` names the image (the VHD's unique id); `epoch` dates it.
    pub fn write(
        self,
        raw: &Path,
        raw_sha256: &[u8; 32],
        epoch: u64,
        out: &Path,
    ) -> Result<(String, u64)> {
        let ctx = || format!("writing {} from {}", out.display(), raw.display());
        let file = File::create(out).with_context(ctx)?;
        let mut w = Hashing::new(BufWriter::with_capacity(1 << 20, file));
        match self {
            Format::Qcow2 => qcow2(raw, &mut w),
            Format::Vhd => vhd(raw, raw_sha256, epoch, &mut w),
            Format::Gce => gce(raw, epoch, &mut w),
            Format::Vmdk => vmdk(raw, raw_sha256, &mut w),
        }
        .with_context(ctx)?;
        let (inner, digest, size) = w.finish();
        inner
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(ctx)?;
        Ok((hex::encode(digest), size))
    }
}

/// A writer that hashes and counts what passes through.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }
    fn finish(mut self) -> (W, [u8; 32], u64) {
        let _ = self.inner.flush();
        (self.inner, self.hash.finalize().into(), self.len)
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

const CLUSTER: u64 = 1 << 16;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn raw_size(raw: &Path) -> Result<u64> {
    Ok(std::fs::metadata(raw)
        .with_context(|| format!("reading {}", raw.display()))?
        .len())
}

/// Reads cluster `i` (zero-filled past the end) into `buf`.
fn read_cluster(f: &mut File, size: u64, i: u64, buf: &mut [u8]) -> Result<()> {
    buf.fill(0);
    let start = i * CLUSTER;
    let n = (size - start).min(CLUSTER) as usize;
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut buf[..n])?;
    Ok(())
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
fn qcow2(raw: &Path, w: &mut impl Write) -> Result<()> {
    let size = raw_size(raw)?;
    let mut f = File::open(raw)?;
    let guest = size.div_ceil(CLUSTER);
    let per_l2 = CLUSTER / 8;
    // Pass 1: which guest clusters hold data. Clusters wholly inside holes of a sparse file
    // are zero without reading them.
    let mut nonzero = vec![false; guest as usize];
    for (start, end) in data_ranges(&f, size) {
        let (first, last) = (start / CLUSTER, end.div_ceil(CLUSTER).min(guest));
        nonzero[first as usize..last as usize].fill(true);
    }
    let mut buf = vec![0u8; CLUSTER as usize];
    for (i, nz) in nonzero.iter_mut().enumerate() {
        if *nz {
            read_cluster(&mut f, size, i as u64, &mut buf)?;
            *nz = buf.iter().any(|&b| b != 0);
        }
    }
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

    // Pass 2: the data.
    for (i, nz) in nonzero.iter().enumerate() {
        if *nz {
            read_cluster(&mut f, size, i as u64, &mut buf)?;
            w.write_all(&buf)?;
        }
    }
    Ok(())
}

/// Copies `raw` to `w` and then `pad` zero bytes.
fn copy_padded(raw: &Path, pad: u64, w: &mut impl Write) -> Result<()> {
    let mut f = File::open(raw)?;
    std::io::copy(&mut f, w)?;
    std::io::copy(&mut std::io::repeat(0).take(pad), w)?;
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
/// footer. The unique id is derived from the raw image's digest (reproducible).
fn vhd(raw: &Path, raw_sha256: &[u8; 32], epoch: u64, w: &mut impl Write) -> Result<()> {
    let size = raw_size(raw)?;
    let virtual_size = size.div_ceil(MIB) * MIB;
    if virtual_size == 0 {
        bail!("{} is empty", raw.display());
    }
    copy_padded(raw, virtual_size - size, w)?;
    let mut id = [0u8; 16];
    id.copy_from_slice(
        &Sha256::new()
            .chain_update(b"nodeimg vhd unique id\0")
            .chain_update(raw_sha256)
            .finalize()[..16],
    );
    w.write_all(&vhd_footer(virtual_size, id, epoch))?;
    Ok(())
}

/// The Compute Engine import tarball: one member `disk.raw` (GNU tar, mode 0644, owner 0,
/// mtime `epoch`), its size rounded up to a whole GiB as image import requires, gzip'd with
/// no name and mtime 0 in the gzip header.
fn gce(raw: &Path, epoch: u64, w: &mut impl Write) -> Result<()> {
    let size = raw_size(raw)?;
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
    let f = File::open(raw)?;
    let data = f.take(size).chain(std::io::repeat(0).take(padded - size));
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
fn vmdk(raw: &Path, raw_sha256: &[u8; 32], w: &mut impl Write) -> Result<()> {
    let size = raw_size(raw)?;
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

    let mut f = File::open(raw)?;
    let mut buf = vec![0u8; CLUSTER as usize];
    let mut table = vec![0u32; (tables * GT_ENTRIES) as usize];
    for g in 0..grains {
        read_cluster(&mut f, size, g, &mut buf)?;
        if buf.iter().all(|&b| b == 0) {
            continue;
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&buf)?;
        let data = z.finish()?;
        table[g as usize] = u32::try_from(sector_at).context("the VMDK exceeds 2 TiB")?;
        let mut grain = Vec::with_capacity(12 + data.len());
        grain.extend((g * GRAIN_SECTORS).to_le_bytes());
        grain.extend((data.len() as u32).to_le_bytes());
        grain.extend(&data);
        put_sectors(w, &mut sector_at, &grain)?;
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
        use std::io::Write as _;
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
        let sha = [0u8; 32];
        let a = Format::Qcow2
            .write(&sparse, &sha, 0, &d.path().join("a.qcow2"))
            .unwrap();
        let b = Format::Qcow2
            .write(&dense, &sha, 0, &d.path().join("b.qcow2"))
            .unwrap();
        assert_eq!(a, b);
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
