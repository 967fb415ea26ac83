//! PID 1 of the nodeimg initrd; see the library docs for what it does.

use std::ffi::OsString;

use nodeimg_init::{boot, console, Error};

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "{}: refusing to run: not PID 1 (this is the initrd's init)",
            console::PREFIX
        );
        std::process::exit(2);
    }
    console::install_panic_hook();
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let err: Error = boot::run(&args);
    console::fatal(&err)
}
