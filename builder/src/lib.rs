//! nodeimg: turns a root filesystem into a GPT disk image with an erofs root protected by
//! dm-verity, booted by a Unified Kernel Image, and records what a verifier will measure.
//!
//! The build recipe is [`pipeline`]; each stage is one module:
//! [`rootfs`] → [`erofs`] → [`verity`] → [`initrd`] → [`uki`] → [`esp`] → [`disk`].

pub mod cli;
pub mod diff;
pub mod disk;
pub mod erofs;
pub mod esp;
pub mod formats;
pub mod infile;
pub mod initbin;
pub mod initrd;
pub mod launch;
pub mod measure;
pub mod mmap;
pub mod outfile;
pub mod pipeline;
pub mod pkcs11;
pub mod qemu;
pub mod rootfs;
pub mod sbom;
pub mod secureboot;
pub mod signing;
pub mod snp_id;
pub mod tool;
pub mod uki;
pub mod verity;
