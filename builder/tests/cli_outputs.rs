//! Review findings on the CLI's outputs and messages, through the real binary: `sign -o` onto
//! special files, `-o -`, plain (uncoloured) logs when stderr is not a terminal, and no
//! private-key permission warning for a public key.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::process::{Command, Output};

const NODEIMG: &str = env!("CARGO_BIN_EXE_nodeimg");
const MANIFEST: &[u8] = include_bytes!("../../measurements/src/signing/testdata/manifest.json");

fn nodeimg(dir: &Path, args: &[&str]) -> Output {
    Command::new(NODEIMG)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn setup() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("manifest.json"), MANIFEST).unwrap();
    let k = nodeimg(d.path(), &["keygen", "-o", "key"]);
    assert!(k.status.success(), "{k:?}");
    d
}

#[test]
fn sign_to_dev_null_keeps_the_device_and_dash_is_stdout() {
    let d = setup();
    let r = nodeimg(
        d.path(),
        &["sign", "manifest.json", "--key", "key", "-o", "/dev/null"],
    );
    assert!(r.status.success(), "{r:?}");
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device(),
        "/dev/null was replaced"
    );
    let r = nodeimg(
        d.path(),
        &["sign", "manifest.json", "--key", "key", "-o", "-"],
    );
    assert!(r.status.success(), "{r:?}");
    let bundle: serde_json::Value = serde_json::from_slice(&r.stdout).expect("bundle on stdout");
    assert!(bundle["dsseEnvelope"].is_object());
    assert!(String::from_utf8_lossy(&r.stderr).contains("signed manifest.json"));
    assert!(!d.path().join("-").exists());
    // A directory is refused, naming it.
    std::fs::create_dir(d.path().join("dir")).unwrap();
    let r = nodeimg(
        d.path(),
        &["sign", "manifest.json", "--key", "key", "-o", "dir"],
    );
    assert_eq!(r.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("dir is a directory"),
        "{r:?}"
    );
}

#[test]
fn logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let r = nodeimg(d.path(), &["-v", "keygen", "-o", "k"]);
    assert!(r.status.success(), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("generated a key pair"), "{err}");
    assert!(
        !err.contains('\x1b'),
        "ANSI escapes in a captured log: {err:?}"
    );
}

#[test]
fn a_public_key_given_to_sign_is_an_error_without_a_permission_warning() {
    let d = setup();
    let r = nodeimg(d.path(), &["sign", "manifest.json", "--key", "key.pub"]);
    assert_eq!(r.status.code(), Some(1), "{r:?}");
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("key.pub"), "{err}");
    assert!(!err.contains("accessible to group or others"), "{err}");
}
