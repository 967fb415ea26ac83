//! The boot recipe: each step is one call; any error ends the boot (see [`crate::console::fatal`]).

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

use crate::activate;
use crate::cmdline::{self, Cmdline};
use crate::config::{self, Config};
use crate::console;
use crate::discover::{self, Layout};
use crate::error::{Context, Error};
use crate::pcr;
use crate::quote;
use crate::rootfs;
use crate::sys;

/// Device-mapper name of the verified root (`/dev/mapper/root`).
pub const DM_NAME: &str = "root";

/// Runs the whole boot; returns only with the error that stopped it.
pub fn run(init_args: &[OsString]) -> Error {
    match prepare() {
        Ok(config) => {
            console::print_line(&pcr::format_line(&pcr::read_banks(Path::new(
                pcr::TPM_SYSFS,
            ))));
            report_event_log();
            report_quote();
            console::info(&format!(
                "root verified, switching to {}",
                config.init.display()
            ));
            rootfs::switch_root(config.root_mode, &config.init, init_args)
        }
        Err(e) => e,
    }
}

/// Prints the firmware event log as framed base64 lines (`docs/boot-protocol.md`).
fn report_event_log() {
    match pcr::read_event_log() {
        Ok(log) => {
            for line in pcr::eventlog_lines(&log) {
                console::print_line(&line);
            }
        }
        Err(why) => {
            console::print_line(&pcr::eventlog_none_line(&why));
        }
    }
}

/// Answers a quote request disk (`nodeimg boot --quote`), if one is attached.
fn report_quote() {
    let Some(request) = quote::find_request(Path::new("/sys/class/block"), Path::new("/dev"))
    else {
        return;
    };
    let line = match request {
        Ok(nonce) => {
            let rm = Path::new("/dev/tpmrm0");
            let tpm = if rm.exists() {
                rm
            } else {
                Path::new("/dev/tpm0")
            };
            quote::line(tpm, &nonce)
        }
        Err(why) => format!("{}{why}", quote::ERROR_LINE),
    };
    console::print_line(&line);
}

/// Everything up to a mounted, verified `/sysroot`.
fn prepare() -> Result<Config, Error> {
    rootfs::mount_api_filesystems()?;
    ensure_console();
    let config = read_config()?;
    load_modules(&config)?;
    let cmdline = read_cmdline()?;
    let parts = discover::wait_for_root(
        &Layout::default(),
        cmdline.roothash.data_partuuid(),
        cmdline.roothash.verity_partuuid(),
        cmdline.rootwait,
        &mut |why| {
            console::info(&format!(
                "waiting up to {}s: {why}",
                cmdline.rootwait.as_secs()
            ))
        },
    )?;
    if parts.by_type {
        console::warn(&format!(
            "no partition has the PARTUUIDs derived from roothash=; using DPS-typed {} and {}",
            parts.data.name, parts.hash.name
        ));
    }
    let dev = activate::open_verity(DM_NAME, &parts.data, &parts.hash, &cmdline.roothash)?;
    rootfs::mount_root(config.root_mode, &dev.node)?;
    Ok(config)
}

/// If the kernel could not give us a console (no `/dev/console` in the initrd), open it now.
fn ensure_console() {
    if !sys::fd_is_open(1) {
        if let Ok(f) = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/console")
        {
            sys::redirect_stdio(&f);
        }
    }
}

fn read_config() -> Result<Config, Error> {
    let text = fs::read_to_string(config::CONFIG_PATH)
        .ctx(|| format!("reading {}", config::CONFIG_PATH))?;
    config::parse(&text).map_err(|e| Error::msg(config::CONFIG_PATH, e.to_string()))
}

fn read_cmdline() -> Result<Cmdline, Error> {
    let text = fs::read_to_string("/proc/cmdline").ctx(|| "reading /proc/cmdline".to_string())?;
    cmdline::parse(&text).map_err(|e| Error::msg("kernel command line", e.to_string()))
}

/// Loads each module in order; one that is already loaded (`EEXIST`) is fine.
pub fn load_modules(config: &Config) -> Result<(), Error> {
    for path in &config.modules {
        let what = || format!("loading module {}", path.display());
        let file = File::open(path).ctx(what)?;
        match sys::finit_module(&file) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
            other => other.ctx(what)?,
        }
    }
    Ok(())
}
