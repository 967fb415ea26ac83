//! Tier 3: the qcow2 output boots like disk.raw — under QEMU + OVMF + swtpm the PCRs the guest
//! reads equal the manifest's, in both banks.

use nodeimg_tests::*;

#[test]
fn qcow2_boots_and_attests_like_the_raw_disk() {
    let Some(tar) = fixture_tar() else { return };
    if !have_tool("qemu-system-x86_64") || !have_tool("swtpm") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let cfg = fixture_config(d.path(), &tar, "");
    let out = d.path().join("out");
    assert_ok(
        &run_nodeimg(&[
            "build",
            cfg.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--format",
            "qcow2",
        ]),
        "build --format qcow2",
    );
    let o = run_nodeimg(&[
        "boot",
        out.join("disk.qcow2").to_str().unwrap(),
        "--tpm",
        "--accel",
        "tcg",
        "--timeout",
        "300",
        "--manifest",
        out.join("manifest.json").to_str().unwrap(),
    ]);
    assert_ok(&o, "boot disk.qcow2 --tpm --manifest");
}
