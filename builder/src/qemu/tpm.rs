//! A software TPM 2.0 (swtpm) for one boot, with its own state directory and the SHA-256
//! and SHA-384 PCR banks active. Killed when dropped; the caller owns the directory.

use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::supervise::ChildGuard;
use crate::tool;

/// How long swtpm may take to create its control socket.
const SOCKET_WAIT: Duration = Duration::from_secs(10);
/// Longest path a Unix socket address holds (108 bytes including the NUL).
const SOCKET_PATH_MAX: usize = 107;

/// A running `swtpm socket --tpm2`; QEMU connects to [`Swtpm::socket`].
#[derive(Debug)]
pub(crate) struct Swtpm {
    /// Held for its `Drop`, which kills swtpm.
    _process: ChildGuard,
    socket: PathBuf,
}

impl Swtpm {
    /// Manufactures a fresh TPM state in `dir` (created, mode 0700) with `swtpm_setup`, then
    /// starts `swtpm` on it and waits for its control socket.
    pub(crate) fn start(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating the swtpm state directory {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
        if dir.to_string_lossy().contains(',') {
            bail!(
                "swtpm state directory {} contains a comma, which swtpm options cannot carry",
                dir.display()
            );
        }
        let socket = dir.join("sock");
        if socket.as_os_str().len() > SOCKET_PATH_MAX {
            bail!(
                "swtpm socket path {} is too long for a Unix socket; use a shorter work directory",
                socket.display()
            );
        }
        tool::run(
            Command::new("swtpm_setup")
                .args(["--tpm2", "--pcr-banks", "sha256,sha384", "--tpmstate"])
                .arg(dir),
        )
        .context("manufacturing the software TPM state")?;
        let log = File::create(dir.join("swtpm.stderr")).context("creating the swtpm log")?;
        let mut cmd = Command::new("swtpm");
        cmd.args(["socket", "--tpm2", "--tpmstate"])
            .arg(opt_value("dir=", dir))
            .arg("--ctrl")
            .arg(opt_value("type=unixio,path=", &socket))
            .stdout(Stdio::null())
            .stderr(log);
        let mut child = ChildGuard::spawn(&mut cmd)?;
        wait_for_socket(&mut child, &socket, dir)?;
        tracing::info!(pid = child.id(), socket = %socket.display(), "swtpm running");
        Ok(Self {
            _process: child,
            socket,
        })
    }

    /// The control socket QEMU's `-chardev socket` connects to.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }
}

/// `prefix` followed by `path`, for swtpm options (paths must not contain commas there).
fn opt_value(prefix: &str, path: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(prefix);
    s.push(path);
    s
}

fn wait_for_socket(child: &mut ChildGuard, socket: &Path, dir: &Path) -> Result<()> {
    let start = Instant::now();
    while !socket.exists() {
        if let Some(status) = child.try_wait()? {
            let log = fs::read(dir.join("swtpm.stderr")).unwrap_or_default();
            bail!(
                "`{}` exited ({status}) before creating its socket: {}",
                child.argv(),
                tool::stderr_tail(&log)
            );
        }
        if start.elapsed() > SOCKET_WAIT {
            bail!(
                "`{}` did not create {} within {SOCKET_WAIT:?}",
                child.argv(),
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
