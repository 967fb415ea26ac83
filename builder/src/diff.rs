//! `nodeimg diff`: compares two disk images (or two build output directories) component by
//! component — GPT, ESP files, UKI sections, dm-verity, the erofs file tree, then the output
//! directory's `uki.efi` and `manifest.json` — and reports the first differences of each in
//! terms a person can act on ("erofs: /usr/bin/foo: content differs"). Everything is read in
//! user space from the image files. Byte-identical inputs are reported identical without
//! parsing; inputs that differ only in bytes no component explains get a `bytes` component
//! naming the first differing offset, so "identical" always means byte-identical.

mod disk;
mod esp;
mod manifest;
mod tree;
mod uki;

#[cfg(test)]
mod tests;

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// One difference inside a component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// What differs: `/usr/bin/foo`, `partition 2`, `.cmdline`, `root hash`, a JSON path.
    pub item: String,
    /// Which aspect: `content`, `mode`, `presence`, `uuid`, ….
    pub field: String,
    /// The value in A (`None`: absent in A).
    pub a: Option<String>,
    /// The value in B (`None`: absent in B).
    pub b: Option<String>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (item, field) = (&self.item, &self.field);
        match (&self.a, &self.b) {
            (Some(a), None) if field == "presence" => write!(f, "{item}: only in A ({a})"),
            (None, Some(b)) if field == "presence" => write!(f, "{item}: only in B ({b})"),
            (Some(a), None) => write!(f, "{item}: {field} {}", short(a)),
            (a, b) => write!(
                f,
                "{item}: {field} differs ({} vs {})",
                short(a.as_deref().unwrap_or("-")),
                short(b.as_deref().unwrap_or("-"))
            ),
        }
    }
}

/// Long values (whole command lines, os-release) are cut for the human report.
fn short(s: &str) -> String {
    const MAX: usize = 96;
    let one_line = s.replace('\n', "\\n");
    if one_line.chars().count() <= MAX {
        return one_line;
    }
    let cut: String = one_line.chars().take(MAX - 1).collect();
    format!("{cut}…")
}

/// The outcome for one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Identical,
    Different,
    /// Not compared (see the note): an earlier difference made it meaningless or it is absent.
    Skipped,
}

/// One compared component with its first differences.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    pub name: String,
    pub status: Status,
    /// All differences found (the list holds at most the limit).
    pub count: usize,
    pub differences: Vec<Difference>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub a: String,
    pub b: String,
    pub identical: bool,
    pub components: Vec<Component>,
}

/// Collects the differences of one component, keeping the first `limit` (0 = all).
#[derive(Debug)]
pub struct Diffs {
    limit: usize,
    list: Vec<Difference>,
    count: usize,
}

impl Diffs {
    pub fn new(limit: usize) -> Self {
        Diffs {
            limit,
            list: Vec::new(),
            count: 0,
        }
    }

    /// Records `item: field` with the two values.
    pub fn push(&mut self, item: &str, field: &str, a: Option<String>, b: Option<String>) {
        self.count += 1;
        if self.limit == 0 || self.list.len() < self.limit {
            self.list.push(Difference {
                item: item.to_string(),
                field: field.to_string(),
                a,
                b,
            });
        }
    }

    /// Records a difference when `a != b`.
    pub fn cmp<T: PartialEq + fmt::Display>(&mut self, item: &str, field: &str, a: T, b: T) {
        if a != b {
            self.push(item, field, Some(a.to_string()), Some(b.to_string()));
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn into_component(self, name: &str) -> Component {
        Component {
            name: name.into(),
            status: if self.count == 0 {
                Status::Identical
            } else {
                Status::Different
            },
            count: self.count,
            differences: self.list,
            note: None,
        }
    }
}

fn skipped(name: &str, note: String) -> Component {
    Component {
        name: name.into(),
        status: Status::Skipped,
        count: 0,
        differences: vec![],
        note: Some(note),
    }
}

/// What is compared.
#[derive(Debug, Clone)]
pub struct Options {
    /// Differences kept per component (0 = all).
    pub limit: usize,
}

/// A disk image, or an output directory holding `disk.raw`, `uki.efi` and `manifest.json`.
#[derive(Debug)]
struct Input {
    disk: PathBuf,
    dir: Option<PathBuf>,
}

impl Input {
    fn new(p: &Path) -> Result<Self> {
        let m = std::fs::metadata(p).with_context(|| format!("{}", p.display()))?;
        if m.is_dir() {
            let disk = p.join("disk.raw");
            if !disk.is_file() {
                bail!(
                    "{} is a directory without disk.raw (not a build output)",
                    p.display()
                );
            }
            return Ok(Input {
                disk,
                dir: Some(p.to_path_buf()),
            });
        }
        Ok(Input {
            disk: p.to_path_buf(),
            dir: None,
        })
    }
}

/// Compares `a` and `b` (disk images or output directories).
pub fn compare(a: &Path, b: &Path, opts: &Options) -> Result<Report> {
    let (ia, ib) = (Input::new(a)?, Input::new(b)?);
    let mut components = Vec::new();
    let disks_equal = same_bytes(&ia.disk, &ib.disk)?;
    if disks_equal.is_none() {
        components.push(Component {
            note: Some("byte-identical".into()),
            ..Diffs::new(0).into_component("disk")
        });
    } else {
        components.extend(disk::compare(&ia.disk, &ib.disk, opts)?);
        if components.iter().all(|c| c.status != Status::Different) {
            components.push(disk::unexplained_bytes(&ia.disk, &ib.disk, opts)?);
        }
    }
    match (&ia.dir, &ib.dir) {
        (Some(da), Some(db)) => components.extend(compare_dirs(da, db, opts)?),
        (None, None) => {}
        _ => components.push(skipped(
            "outputs",
            "only one side is an output directory; compared disk.raw only".into(),
        )),
    }
    Ok(Report {
        a: a.display().to_string(),
        b: b.display().to_string(),
        identical: components.iter().all(|c| c.status != Status::Different),
        components,
    })
}

/// `uki.efi` (by sections) and `manifest.json` (by JSON path) of two output directories.
fn compare_dirs(a: &Path, b: &Path, opts: &Options) -> Result<Vec<Component>> {
    let mut out = Vec::new();
    let (ua, ub) = (a.join("uki.efi"), b.join("uki.efi"));
    out.push(match (ua.is_file(), ub.is_file()) {
        (true, true) if same_bytes(&ua, &ub)?.is_none() => Diffs::new(0).into_component("uki.efi"),
        (true, true) => {
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            let mut d = Diffs::new(opts.limit);
            uki::compare(&read(&ua)?, &read(&ub)?, &mut d)?;
            d.into_component("uki.efi")
        }
        (x, y) => presence("uki.efi", x, y, opts),
    });
    let (ma, mb) = (a.join("manifest.json"), b.join("manifest.json"));
    out.push(match (ma.is_file(), mb.is_file()) {
        (true, true) => manifest::compare(&ma, &mb, opts)?,
        (x, y) => presence("manifest.json", x, y, opts),
    });
    Ok(out)
}

fn presence(name: &str, a: bool, b: bool, opts: &Options) -> Component {
    let mut d = Diffs::new(opts.limit);
    if a != b {
        let has = |x: bool| x.then(|| "file".to_string());
        d.push(name, "presence", has(a), has(b));
    }
    d.into_component(name)
}

/// `None` when the two files hold the same bytes, else the first differing offset (the
/// shorter length when one is a prefix of the other).
pub fn same_bytes(a: &Path, b: &Path) -> Result<Option<u64>> {
    let open = |p: &Path| -> Result<BufReader<File>> {
        let f = File::open(p).with_context(|| format!("opening {}", p.display()))?;
        Ok(BufReader::with_capacity(1 << 20, f))
    };
    first_difference(&mut open(a)?, &mut open(b)?)
}

/// The first offset where two streams differ, or `None` when they are equal.
pub fn first_difference(a: &mut dyn Read, b: &mut dyn Read) -> Result<Option<u64>> {
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut pos = 0u64;
    loop {
        let na = fill(a, &mut ba)?;
        let nb = fill(b, &mut bb)?;
        let n = na.min(nb);
        if let Some(i) = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y) {
            return Ok(Some(pos + i as u64));
        }
        if na != nb {
            return Ok(Some(pos + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        pos += n as u64;
    }
}

/// Reads until `buf` is full or the stream ends.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("reading for comparison"),
        }
    }
    Ok(n)
}

/// The human-readable report: one line per component, its first differences indented.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    for c in &r.components {
        let head = match c.status {
            Status::Identical => "identical".to_string(),
            Status::Skipped => "skipped".to_string(),
            Status::Different if c.count == 1 => "1 difference".to_string(),
            Status::Different => format!("{} differences", c.count),
        };
        let note = c
            .note
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        s.push_str(&format!("{}: {head}{note}\n", c.name));
        for d in &c.differences {
            s.push_str(&format!("  {}: {d}\n", c.name));
        }
        if c.count > c.differences.len() {
            s.push_str(&format!("  … and {} more\n", c.count - c.differences.len()));
        }
    }
    s.push_str(if r.identical {
        "identical\n"
    } else {
        "different\n"
    });
    s
}
