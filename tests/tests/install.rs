//! `cargo install --path builder` gives a self-contained `nodeimg`: no nodeimg-init file beside
//! it, no `--init`, no environment variable, and its images are byte-identical to those of the
//! in-tree build (the embedded init does not depend on the profile or the target directory).

use std::process::Command;

use nodeimg_tests::*;

#[test]
fn an_installed_nodeimg_builds_the_fixture_byte_identical_to_the_in_tree_one() {
    let Some(tar) = fixture_tar() else { return };
    let root = tempfile::tempdir().unwrap();
    // A target directory of its own (nothing reused from the in-tree build: the embedded init
    // is compiled again there, so its bytes must not depend on where it was built); --locked so
    // the test does not depend on crates released today.
    let target = tempfile::tempdir().unwrap();
    let st = Command::new(env!("CARGO"))
        .args([
            "install", "--locked", "--quiet", "--path", "builder", "--root",
        ])
        .arg(root.path())
        .arg("--target-dir")
        .arg(target.path())
        .current_dir(repo())
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("NODEIMG_EMBED_INIT")
        .status()
        .unwrap();
    assert!(st.success(), "cargo install --path builder failed");
    let bin = root.path().join("bin");
    let installed: Vec<String> = std::fs::read_dir(&bin)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(installed, vec!["nodeimg"], "only nodeimg is installed");
    let nodeimg_installed = bin.join("nodeimg");

    let version = |exe: &std::path::Path| {
        let o = Command::new(exe).arg("--version").output().unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap()
    };
    let v = version(&nodeimg_installed);
    assert!(v.contains("nodeimg-init sha256:"), "{v}");
    assert_eq!(
        v,
        version(nodeimg()),
        "installed and in-tree nodeimg embed different inits"
    );

    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    let build = |exe: &std::path::Path, out: &str| {
        let o = Command::new(exe)
            .arg("build")
            .arg(&cfg)
            .arg("-o")
            .arg(d.path().join(out))
            .current_dir(d.path())
            .env_remove("NODEIMG_INIT")
            .output()
            .unwrap();
        assert_ok(&o, &format!("{} build", exe.display()));
    };
    build(&nodeimg_installed, "installed");
    build(nodeimg(), "in-tree");
    for f in BUILD_OUTPUTS {
        assert!(
            std::fs::read(d.path().join("installed").join(f)).unwrap()
                == std::fs::read(d.path().join("in-tree").join(f)).unwrap(),
            "{f} differs between the installed (release) and the in-tree (debug) nodeimg"
        );
    }
    let m = manifest(&d.path().join("installed"));
    let sha = v
        .split("sha256:")
        .nth(1)
        .unwrap()
        .trim_end_matches(|c: char| c == ')' || c.is_whitespace());
    assert_eq!(
        m["inputs"]["init"]["sha256"], sha,
        "manifest records the embedded init"
    );
    assert_eq!(m["inputs"]["nodeimg"]["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn an_init_override_is_used_and_recorded() {
    let Some(tar) = fixture_tar() else { return };
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    // A static binary that is not nodeimg-init: accepted as an override, and its digest recorded.
    let busybox = std::path::Path::new("/bin/busybox");
    if !have_tool("busybox") {
        return;
    }
    let out = d.path().join("out");
    let o = Command::new(nodeimg())
        .args(["build", "--init"])
        .arg(busybox)
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&o, "build --init /bin/busybox");
    let m = manifest(&out);
    let want = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(busybox).unwrap()))
    };
    assert_eq!(m["inputs"]["init"]["sha256"], want.as_str());
    // A dynamic one is refused, naming the file.
    let o = Command::new(nodeimg())
        .args(["build", "--init", "/bin/sh"])
        .arg(&cfg)
        .arg("-o")
        .arg(d.path().join("out2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("/bin/sh") && e.contains("dynamically linked"),
        "{e}"
    );
}
