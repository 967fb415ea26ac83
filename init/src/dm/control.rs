//! Device-mapper ioctls on `/dev/mapper/control`.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{decode_reply, encode, Command, Reply, Request, Target, READONLY_FLAG};
use crate::devnum::DevNum;
use crate::error::{Context, Error};
use crate::sys;

/// Path of the control node.
pub const CONTROL_PATH: &str = "/dev/mapper/control";

/// An open `/dev/mapper/control`.
#[derive(Debug)]
pub struct Control {
    file: File,
}

impl Control {
    /// Opens the control node, creating it from sysfs if devtmpfs has not.
    pub fn open() -> Result<Control, Error> {
        let path = Path::new(CONTROL_PATH);
        if !path.exists() {
            create_control_node(path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .ctx(|| format!("opening {CONTROL_PATH}"))?;
        Ok(Control { file })
    }

    fn call(&self, cmd: Command, req: &Request<'_>) -> Result<Reply, Error> {
        let what = || format!("device-mapper {cmd:?} {:?}", req.name);
        let mut buf = encode(req).map_err(|e| Error::msg(what(), e.to_string()))?;
        sys::ioctl_buf(&self.file, cmd.request(), &mut buf).ctx(what)?;
        decode_reply(&buf).map_err(|e| Error::msg(what(), e.to_string()))
    }

    /// `DM_VERSION`: checks that the kernel speaks interface version 4.
    pub fn version(&self) -> Result<[u32; 3], Error> {
        let v = self.call(Command::Version, &Request::default())?.version;
        if v[0] != 4 {
            return Err(Error::msg(
                "device-mapper version",
                format!("kernel interface {}.{}.{}, expected 4.x", v[0], v[1], v[2]),
            ));
        }
        Ok(v)
    }

    /// `DM_DEV_CREATE`: creates an empty device and returns its number.
    pub fn create(&self, name: &str, uuid: &str) -> Result<DevNum, Error> {
        let reply = self.call(
            Command::DevCreate,
            &Request {
                name,
                uuid,
                ..Request::default()
            },
        )?;
        Ok(DevNum::from_dev_t(reply.dev as libc::dev_t))
    }

    /// `DM_TABLE_LOAD` into the inactive slot.
    pub fn load(&self, name: &str, targets: &[Target], read_only: bool) -> Result<(), Error> {
        let flags = if read_only { READONLY_FLAG } else { 0 };
        self.call(
            Command::TableLoad,
            &Request {
                name,
                flags,
                targets,
                ..Request::default()
            },
        )?;
        Ok(())
    }

    /// `DM_DEV_SUSPEND` without the suspend flag: activates the loaded table.
    pub fn resume(&self, name: &str) -> Result<(), Error> {
        self.call(
            Command::DevSuspend,
            &Request {
                name,
                ..Request::default()
            },
        )?;
        Ok(())
    }

    /// `DM_DEV_REMOVE`.
    pub fn remove(&self, name: &str) -> Result<(), Error> {
        self.call(
            Command::DevRemove,
            &Request {
                name,
                ..Request::default()
            },
        )?;
        Ok(())
    }
}

fn create_control_node(path: &Path) -> Result<(), Error> {
    let sysfs = "/sys/class/misc/device-mapper/dev";
    let text = fs::read_to_string(sysfs).ctx(|| format!("reading {sysfs} (is dm-mod loaded?)"))?;
    let dev = DevNum::parse(&text)
        .ok_or_else(|| Error::msg(format!("reading {sysfs}"), format!("unexpected {text:?}")))?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    sys::mknod_char(path, dev, 0o600).ctx(|| format!("creating {}", path.display()))
}

/// Creates and activates a device with `targets`, returning its number.
///
/// On any failure after `DM_DEV_CREATE` the half-made device is removed again.
pub fn create_device(
    name: &str,
    uuid: &str,
    targets: &[Target],
    read_only: bool,
) -> Result<DevNum, Error> {
    super::check_name(name).map_err(|e| Error::msg("device-mapper", e.to_string()))?;
    let ctl = Control::open()?;
    ctl.version()?;
    let dev = ctl.create(name, uuid)?;
    if let Err(e) = ctl
        .load(name, targets, read_only)
        .and_then(|()| ctl.resume(name))
    {
        let _ = ctl.remove(name);
        return Err(e);
    }
    Ok(dev)
}

/// Removes device `name`.
pub fn remove_device(name: &str) -> Result<(), Error> {
    Control::open()?.remove(name)
}

/// Makes `/dev/mapper/<name>` a block node for `dev` (devtmpfs only creates `/dev/dm-N`).
///
/// An existing node (or a udev symlink) is accepted when it resolves to the same device.
pub fn ensure_node(name: &str, dev: DevNum) -> Result<PathBuf, Error> {
    let path = PathBuf::from("/dev/mapper").join(name);
    let what = || format!("creating {}", path.display());
    fs::create_dir_all("/dev/mapper").ctx(what)?;
    match sys::mknod_block(&path, dev, 0o600) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let meta = fs::metadata(&path).ctx(what)?;
            let found = DevNum::from_dev_t(meta.rdev() as libc::dev_t);
            if meta.file_type().is_block_device() && found == dev {
                Ok(path)
            } else {
                Err(Error::msg(
                    what(),
                    format!("exists and is not block device {dev}"),
                ))
            }
        }
        Err(e) => Err(Error::io(what(), &e)),
    }
}
