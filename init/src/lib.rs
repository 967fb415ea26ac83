//! `nodeimg-init`: PID 1 of the nodeimg initrd.
//!
//! It mounts the API filesystems, loads the kernel modules listed in
//! `/etc/nodeimg-init.conf`, finds the root and verity partitions by the PARTUUIDs derived from
//! `roothash=`, creates `/dev/mapper/root` with dm-verity, mounts the erofs root (optionally
//! under a tmpfs overlay), prints a `NODEIMG-PCRS {json}` line and switches root. Any failure
//! prints one `nodeimg-init: error: <what>: <why>` line and powers off.
//!
//! Pure parsing and encoding (unit-tested without privileges):
//! [`config`], [`cmdline`], [`guid`], [`gpt`], [`verity`], [`dm`] (buffers), [`discover::pick`],
//! [`pcr`] (line format), [`devnum`], [`hex`].
//!
//! System calls: [`sys`], [`dm::control`], [`block`], [`discover`], [`activate`], [`rootfs`],
//! [`console`], and the recipe in [`boot`].

pub mod activate;
pub mod block;
pub mod boot;
pub mod cmdline;
pub mod config;
pub mod console;
pub mod devnum;
pub mod discover;
pub mod dm;
pub mod error;
pub mod gpt;
pub mod guid;
pub mod hex;
pub mod pcr;
pub mod quote;
pub mod rootfs;
pub mod sys;
pub mod verity;

pub use error::Error;
