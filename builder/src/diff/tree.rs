//! The erofs root: superblock identity fields, then the file tree path by path (type, mode,
//! owner, content digest and size, symlink target, device numbers, xattrs, mtime, links).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use anyhow::{Context, Result};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::disk::{both, Side};
use super::{Component, Diffs, Options};
use crate::disk::TYPE_ROOT_X86_64;
use crate::erofs::read::{FileRegion, Image, Inode, InodeKind, Node, ReadAt};
use crate::rootfs::path_cmp;

type Img = Image<FileRegion>;

fn open(s: &Side) -> Result<Img> {
    let p = s
        .part(TYPE_ROOT_X86_64)
        .context("no root-x86-64 partition")?;
    let region = FileRegion {
        file: s.file.try_clone()?,
        offset: p.offset,
        len: p.size,
    };
    Image::open(region).context("opening the erofs root")
}

/// What is compared for one path; `None` fields do not apply to its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub path: String,
    pub kind: &'static str,
    pub mode: String,
    pub owner: String,
    pub content: Option<String>,
    pub target: Option<String>,
    pub device: Option<String>,
    pub xattrs: String,
    pub mtime: String,
    pub links: Option<String>,
}

fn kind_name(k: InodeKind) -> &'static str {
    match k {
        InodeKind::Dir => "directory",
        InodeKind::File => "file",
        InodeKind::Symlink => "symlink",
        InodeKind::CharDev { .. } => "char device",
        InodeKind::BlockDev { .. } => "block device",
        InodeKind::Fifo => "fifo",
        InodeKind::Socket => "socket",
    }
}

fn xattrs(i: &Inode) -> String {
    let shown: Vec<String> = i
        .xattrs
        .iter()
        .map(|x| {
            let v = if x.value.len() <= 16 {
                hex::encode(&x.value)
            } else {
                format!("sha256:{}", &hex::encode(Sha256::digest(&x.value))[..16])
            };
            format!("{}={v}", String::from_utf8_lossy(&x.name))
        })
        .collect();
    if shown.is_empty() {
        "none".into()
    } else {
        shown.join(" ")
    }
}

fn file_digest<S: ReadAt>(img: &Image<S>, ino: &Inode) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 17];
    let mut r = img.reader(ino);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(format!(
                "sha256 {}, {} bytes",
                hex::encode(h.finalize()),
                ino.size
            ));
        }
        h.update(&buf[..n]);
    }
}

/// Summaries of every path of `img`, sorted; file contents hashed once per inode, in parallel.
pub fn summaries<S: ReadAt>(img: &Image<S>) -> Result<Vec<Summary>> {
    let nodes = img.walk()?;
    let mut first: HashMap<u64, &str> = HashMap::new();
    let mut files: BTreeMap<u64, &Inode> = BTreeMap::new();
    for n in &nodes {
        if n.inode.kind != InodeKind::Dir {
            first.entry(n.inode.nid).or_insert(&n.path);
        }
        if n.inode.kind == InodeKind::File {
            files.insert(n.inode.nid, &n.inode);
        }
    }
    let digests: HashMap<u64, String> = files
        .into_par_iter()
        .map(|(nid, ino)| {
            Ok((
                nid,
                file_digest(img, ino).with_context(|| format!("reading nid {nid}"))?,
            ))
        })
        .collect::<Result<_>>()?;
    nodes
        .iter()
        .map(|n| summary(img, n, &first, &digests))
        .collect()
}

fn summary<S: ReadAt>(
    img: &Image<S>,
    n: &Node,
    first: &HashMap<u64, &str>,
    digests: &HashMap<u64, String>,
) -> Result<Summary> {
    let i = &n.inode;
    let target = match i.kind {
        InodeKind::Symlink => Some(String::from_utf8_lossy(&img.symlink_target(i)?).into_owned()),
        _ => None,
    };
    let device = match i.kind {
        InodeKind::CharDev { major, minor } | InodeKind::BlockDev { major, minor } => {
            Some(format!("{major}:{minor}"))
        }
        _ => None,
    };
    let links = (i.kind != InodeKind::Dir).then(|| match first.get(&i.nid) {
        Some(f) if *f != n.path => format!("{} links, hardlink of /{f}", i.nlink),
        _ => format!("{} links", i.nlink),
    });
    let mtime = if i.mtime_nsec == 0 {
        i.mtime.to_string()
    } else {
        format!("{}.{:09}", i.mtime, i.mtime_nsec)
    };
    Ok(Summary {
        path: n.path.clone(),
        kind: kind_name(i.kind),
        mode: format!("{:04o}", i.mode & 0o7777),
        owner: format!("{}:{}", i.uid, i.gid),
        content: digests.get(&i.nid).cloned(),
        target,
        device,
        xattrs: xattrs(i),
        mtime,
        links,
    })
}

/// Records the differences of two sorted summary lists.
pub fn diff_trees(a: &[Summary], b: &[Summary], d: &mut Diffs) {
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ord = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => path_cmp(&x.path, &y.path),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match ord {
            std::cmp::Ordering::Less => {
                d.push(
                    &format!("/{}", a[i].path),
                    "presence",
                    Some(a[i].kind.into()),
                    None,
                );
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                d.push(
                    &format!("/{}", b[j].path),
                    "presence",
                    None,
                    Some(b[j].kind.into()),
                );
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                diff_entry(&a[i], &b[j], d);
                (i, j) = (i + 1, j + 1);
            }
        }
    }
}

fn diff_entry(a: &Summary, b: &Summary, d: &mut Diffs) {
    let item = format!("/{}", a.path);
    if a.kind != b.kind {
        return d.cmp(&item, "type", a.kind, b.kind);
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    d.cmp(&item, "content", opt(&a.content), opt(&b.content));
    d.cmp(&item, "symlink target", opt(&a.target), opt(&b.target));
    d.cmp(&item, "device", opt(&a.device), opt(&b.device));
    d.cmp(&item, "mode", &a.mode, &b.mode);
    d.cmp(&item, "owner", &a.owner, &b.owner);
    d.cmp(&item, "xattrs", &a.xattrs, &b.xattrs);
    d.cmp(&item, "mtime", &a.mtime, &b.mtime);
    d.cmp(&item, "links", opt(&a.links), opt(&b.links));
}

/// The `erofs` component: superblock, then the tree.
pub fn compare(a: &Side, b: &Side, opts: &Options) -> Vec<Component> {
    let (ia, ib) = match both("erofs", opts, open, a, b) {
        Ok(x) => x,
        Err(c) => return vec![c],
    };
    let mut d = Diffs::new(opts.limit);
    let (sa, sb) = (ia.superblock(), ib.superblock());
    let sbi = "superblock";
    d.cmp(sbi, "UUID", hex::encode(sa.uuid), hex::encode(sb.uuid));
    d.cmp(sbi, "build time", sa.build_time, sb.build_time);
    d.cmp(sbi, "blocks", sa.blocks, sb.blocks);
    d.cmp(sbi, "inodes", sa.inos, sb.inos);
    d.cmp(sbi, "block size", sa.block_size, sb.block_size);
    d.cmp(
        sbi,
        "volume name",
        String::from_utf8_lossy(&sa.volume_name),
        String::from_utf8_lossy(&sb.volume_name),
    );
    let (ta, tb) = match (summaries(&ia), summaries(&ib)) {
        (Ok(x), Ok(y)) => (x, y),
        (x, y) => {
            let show =
                |r: Result<Vec<Summary>>| r.map_or_else(|e| format!("{e:#}"), |_| "ok".into());
            d.push("tree", "readability", Some(show(x)), Some(show(y)));
            return vec![d.into_component("erofs")];
        }
    };
    diff_trees(&ta, &tb, &mut d);
    vec![d.into_component("erofs")]
}
