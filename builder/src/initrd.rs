//! The initrd: nodeimg-init as `/init`, its config, and the kernel modules it loads (with
//! their dependencies from the rootfs's `modules.dep`), as a deterministic newc cpio.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context, Result};
use image_config::RootMode;

use crate::rootfs::Tree;

/// Where modules live inside the initrd (and what `module` lines in the config point at).
const MODULES_DIR: &str = "lib/modules";

/// What goes into the initrd.
#[derive(Debug)]
pub struct Spec<'a> {
    pub init: &'a [u8],
    pub kernel_release: &'a str,
    pub modules: &'a [String],
    pub root_mode: RootMode,
    pub mtime: u64,
}

/// The modules that will be loaded, in order, as paths relative to the modules directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub load_order: Vec<String>,
    pub builtin: Vec<String>,
}

/// Builds the cpio archive.
pub fn build(tree: &Tree, spec: &Spec<'_>) -> Result<(Vec<u8>, Resolved)> {
    let mdir = modules_dir(tree, spec.kernel_release)?;
    let dep_text = text(tree, &format!("{mdir}/modules.dep"))?;
    let builtin_text = match tree.resolve(&format!("{mdir}/modules.builtin")) {
        Some(p) => String::from_utf8_lossy(&tree.read_file(&p)?).into_owned(),
        None => String::new(),
    };
    let resolved = resolve_modules(&dep_text, &builtin_text, spec.modules)
        .with_context(|| format!("resolving initrd modules from /{mdir}/modules.dep"))?;
    let mut conf = String::from("# written by nodeimg\n");
    conf += &format!("root-mode {}\n", spec.root_mode.as_str());
    let mut files: Vec<(String, Vec<u8>, u32)> = Vec::new();
    for rel in &resolved.load_order {
        if !rel.ends_with(".ko") {
            bail!("module /{mdir}/{rel} is compressed; only uncompressed .ko modules are supported for now");
        }
        let inside = format!("{MODULES_DIR}/{}/{rel}", spec.kernel_release);
        let data = tree
            .resolve(&format!("{mdir}/{rel}"))
            .map(|p| tree.read_file(&p))
            .transpose()?
            .with_context(|| {
                format!("module /{mdir}/{rel} is listed in modules.dep but missing")
            })?;
        conf += &format!("module /{inside}\n");
        files.push((inside, data, 0o644));
    }
    files.push(("init".into(), spec.init.to_vec(), 0o755));
    files.push(("etc/nodeimg-init.conf".into(), conf.into_bytes(), 0o644));
    Ok((newc(&files, spec.mtime), resolved))
}

/// The rootfs path (resolved, relative) of `lib/modules/<release>`.
fn modules_dir(tree: &Tree, release: &str) -> Result<String> {
    ["usr/lib/modules", "lib/modules"]
        .iter()
        .find_map(|d| tree.resolve(&format!("{d}/{release}")))
        .with_context(|| format!("no /usr/lib/modules/{release} in the rootfs (the kernel's modules must be installed)"))
}

fn text(tree: &Tree, path: &str) -> Result<String> {
    let p = tree
        .resolve(path)
        .with_context(|| format!("/{path} is missing (run depmod for the kernel in the rootfs)"))?;
    String::from_utf8(tree.read_file(&p)?).with_context(|| format!("/{path} is not UTF-8"))
}

/// `dm_verity` and `dm-verity` name the same module.
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// Resolves names against `modules.dep` (`path: dep dep…`, deps listed so that loading them
/// last-to-first works, as modprobe does) and `modules.builtin`.
pub fn resolve_modules(dep: &str, builtin: &str, wanted: &[String]) -> Result<Resolved> {
    let mut by_name: HashMap<String, (&str, Vec<&str>)> = HashMap::new();
    for (n, line) in dep.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (path, deps) = line
            .split_once(':')
            .with_context(|| format!("modules.dep line {}: no `:`", n + 1))?;
        by_name.insert(
            module_name(path),
            (path.trim(), deps.split_whitespace().collect()),
        );
    }
    let builtins: HashSet<String> = builtin.lines().map(module_name).collect();
    let mut out = Resolved {
        load_order: Vec::new(),
        builtin: Vec::new(),
    };
    for w in wanted {
        let name = module_name(w);
        let Some((path, deps)) = by_name.get(&name) else {
            if builtins.contains(&name) {
                out.builtin.push(w.clone());
                continue;
            }
            bail!("module `{w}` is neither in modules.dep nor built in (check kernel.modules)");
        };
        for m in deps.iter().rev().chain(std::iter::once(path)) {
            if !out.load_order.iter().any(|x| x == m) {
                out.load_order.push((*m).to_string());
            }
        }
    }
    Ok(out)
}

/// (path, st_mode, data, (rdev major, rdev minor)) of one cpio member.
type CpioItem<'a> = (&'a str, u32, &'a [u8], (u32, u32));

/// A newc cpio with parent directories, `/dev/console`, then `files`, sorted by path; owner
/// root, every timestamp `mtime`, inode numbers in order.
pub fn newc(files: &[(String, Vec<u8>, u32)], mtime: u64) -> Vec<u8> {
    let mut dirs: Vec<String> = vec!["dev".into()];
    for (p, _, _) in files {
        let mut cur = p.as_str();
        while let Some((parent, _)) = cur.rsplit_once('/') {
            dirs.push(parent.to_string());
            cur = parent;
        }
    }
    dirs.sort();
    dirs.dedup();
    let mut items: Vec<CpioItem<'_>> = dirs
        .iter()
        .map(|d| (d.as_str(), 0o040755, &[][..], (0, 0)))
        .collect();
    items.push(("dev/console", 0o020600, &[], (5, 1)));
    items.extend(
        files
            .iter()
            .map(|(p, d, m)| (p.as_str(), 0o100000 | m, &d[..], (0, 0))),
    );
    items.sort_by(|a, b| crate::rootfs::path_cmp(a.0, b.0));
    let mut out = Vec::new();
    for (ino, (name, mode, data, rdev)) in items.iter().enumerate() {
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        header(
            &mut out,
            name,
            ino as u32 + 1,
            *mode,
            nlink,
            mtime,
            data.len() as u32,
            *rdev,
        );
        out.extend_from_slice(data);
        pad4(&mut out);
    }
    header(&mut out, "TRAILER!!!", 0, 0, 1, 0, 0, (0, 0));
    out
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    name: &str,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u64,
    size: u32,
    rdev: (u32, u32),
) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        mtime as u32,
        size,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(4) * 4, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko kernel/drivers/md/dm-mod.ko\n\
        kernel/drivers/md/dm-mod.ko:\nkernel/drivers/md/dm-bufio.ko:\nkernel/fs/erofs/erofs.ko:\n\
        kernel/drivers/block/virtio_blk.ko:\n";

    #[test]
    fn dependencies_load_first_and_once() {
        let r = resolve_modules(
            DEP,
            "kernel/drivers/virtio/virtio_pci.ko\n",
            &[
                "virtio_pci".into(),
                "dm_verity".into(),
                "dm-mod".into(),
                "erofs".into(),
            ],
        )
        .unwrap();
        assert_eq!(
            r.load_order,
            [
                "kernel/drivers/md/dm-mod.ko",
                "kernel/drivers/md/dm-bufio.ko",
                "kernel/drivers/md/dm-verity.ko",
                "kernel/fs/erofs/erofs.ko"
            ]
        );
        assert_eq!(r.builtin, ["virtio_pci"]);
        let e = resolve_modules(DEP, "", &["nope".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`nope`"), "{e}");
    }

    #[test]
    fn newc_is_deterministic_and_well_formed() {
        let files = vec![
            ("init".to_string(), b"#!x".to_vec(), 0o755),
            ("etc/a.conf".to_string(), b"abcde".to_vec(), 0o644),
        ];
        let a = newc(&files, 7);
        assert_eq!(a, newc(&files, 7));
        assert!(a.starts_with(b"070701"));
        assert_eq!(a.len() % 4, 0);
        assert!(a.windows(10).any(|w| w == b"TRAILER!!!"));
        // `cpio -t` lists exactly our entries (when cpio is installed).
        if crate::tool::which("cpio").is_none() {
            eprintln!("SKIP: cpio not installed; newc listing not cross-checked");
            return;
        }
        let mut child = std::process::Command::new("cpio")
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &a).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "dev\ndev/console\netc\netc/a.conf\ninit\n"
        );
    }
}
