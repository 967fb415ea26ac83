//! Golden round-trip, documentation coverage and error-message tests for image.toml.

use std::path::{Path, PathBuf};

use image_config::{parse, resolve_raw, ConfigError, Env, RootMode, RootfsSource, StubSource};

const FULL: &str = include_str!("golden/full.toml");

/// A directory holding the files the golden config refers to.
fn fixture_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for f in [
        "rootfs.tar",
        "linuxx64.efi.stub",
        "os-release",
        "OVMF.fd",
        "signing.key",
        "signing_config.json",
        "trusted_root.json",
        "platform.json",
        "id.pem",
        "author.pem",
    ] {
        std::fs::write(d.path().join(f), b"x").unwrap();
    }
    d
}

fn resolve_text(text: &str, dir: &Path) -> Result<image_config::ImageConfig, ConfigError> {
    let file = dir.join("image.toml");
    resolve_raw(parse(text, &file)?, &file, dir, &Env::default())
}

#[test]
fn golden_round_trip_sets_every_key() {
    let raw = parse(FULL, Path::new("full.toml")).unwrap();
    let again = toml::to_string(&raw).unwrap();
    assert_eq!(
        again.trim(),
        FULL.trim(),
        "update tests/golden/full.toml if the schema changed on purpose"
    );
    let d = fixture_dir();
    let cfg = resolve_text(FULL, d.path()).unwrap();
    assert_eq!(cfg.source_date_epoch, 1700000000);
    assert_eq!(cfg.root.mode, RootMode::VolatileOverlay);
    assert_eq!(cfg.rootfs, RootfsSource::Tar(d.path().join("rootfs.tar")));
    assert_eq!(
        cfg.uki.stub,
        StubSource::Host(d.path().join("linuxx64.efi.stub"))
    );
    assert_eq!(
        cfg.verity.salt.as_deref(),
        Some(&(0u8..16).collect::<Vec<_>>()[..])
    );
    assert_eq!((cfg.disk.esp_size, cfg.disk.alignment), (64 << 20, 1 << 20));
    let snp = cfg.measurements.snp.unwrap();
    assert_eq!(snp.policy.flags, ["smt", "single-socket"]);
    assert_eq!((snp.policy.abi_major, snp.policy.abi_minor), (1, 51));
    let id = snp.id_block.unwrap();
    assert_eq!(id.id_key, d.path().join("id.pem"));
    assert_eq!(id.family_id[1], 0x11);
    assert_eq!((id.image_id[0], id.guest_svn), (0xff, 3));
}

/// Every key path of the full config, e.g. `verity.data-block-size`.
fn key_paths(v: &toml::Value, prefix: &str, out: &mut Vec<String>) {
    if let toml::Value::Table(t) = v {
        for (k, v) in t {
            let p = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            if v.is_table() {
                key_paths(v, &p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[test]
fn docs_list_every_key() {
    let docs_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/config.md");
    let docs = std::fs::read_to_string(&docs_path).unwrap();
    let mut keys = Vec::new();
    key_paths(&FULL.parse::<toml::Value>().unwrap(), "", &mut keys);
    keys.extend(
        [
            "rootfs.directory",
            "rootfs.debian.suite",
            "rootfs.debian.mirror",
            "rootfs.debian.variant",
            "rootfs.debian.packages",
            "rootfs.oci",
            "signing.keyless",
            "signing.identity-token-file",
        ]
        .map(String::from),
    );
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !docs.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/config.md does not document {missing:?}"
    );
}

#[test]
fn defaults_for_a_minimal_config() {
    let d = fixture_dir();
    let cfg = resolve_text(
        "[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n",
        d.path(),
    )
    .unwrap();
    assert_eq!(cfg.version, "0");
    assert_eq!(cfg.source_date_epoch, 0);
    assert_eq!(cfg.root.mode, RootMode::ReadOnly);
    assert_eq!(cfg.kernel.modules, image_config::DEFAULT_MODULES);
    assert_eq!(cfg.uki.stub, StubSource::Auto);
    assert_eq!(cfg.verity.salt, None);
    assert_eq!(cfg.verity.data_block_size, 4096);
}

#[test]
fn volatile_overlay_adds_the_overlay_module() {
    let d = fixture_dir();
    let t = "[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[root]\nmode = \"volatile-overlay\"\n";
    assert!(resolve_text(t, d.path())
        .unwrap()
        .kernel
        .modules
        .contains(&"overlay".to_string()));
}

#[test]
fn environment_epoch_is_used_when_the_key_is_absent() {
    let d = fixture_dir();
    let file = d.path().join("image.toml");
    let raw = parse(
        "[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n",
        &file,
    )
    .unwrap();
    let env = Env {
        source_date_epoch: Some("42".into()),
    };
    assert_eq!(
        resolve_raw(raw.clone(), &file, d.path(), &env)
            .unwrap()
            .source_date_epoch,
        42
    );
    let bad = Env {
        source_date_epoch: Some("soon".into()),
    };
    let e = resolve_raw(raw, &file, d.path(), &bad).unwrap_err();
    assert_eq!(e.key, "image.source-date-epoch");
}

/// (config text, expected key path, expected fragment of the message)
const BAD: &[(&str, &str, &str)] = &[
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[measurements.snp]\novmf = [\"OVMF.fd\"]\nid-key = \"id.pem\"\nfamily-id = \"0011\"\n", "measurements.snp.family-id", "not 16 bytes of hex"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[measurements.snp]\novmf = [\"OVMF.fd\"]\nguest-svn = 2\n", "measurements.snp.guest-svn", "no id-key"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[measurements.snp]\novmf = [\"OVMF.fd\"]\nid-key = \"nope.pem\"\n", "measurements.snp.id-key", "nope.pem"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[measurements.snp.policy]\ndebug = 1\n", "measurements.snp.policy.debug", "invalid type"),
    ("[image]\nname = \"n\"\ncolour = 1\n[rootfs]\ntar = \"rootfs.tar\"\n", "image.colour", "unknown field `colour`"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[verity]\ndata-block-size = \"big\"\n", "verity.data-block-size", "invalid type"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[verity]\ndata-block-size = 3000\n", "verity.data-block-size", "power of two"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"missing.tar\"\n", "rootfs.tar", "missing.tar"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\ndirectory = \".\"\n", "rootfs", "both"),
    ("[image]\nname = \"n\"\n[rootfs]\n", "rootfs", "no rootfs source"),
    ("[image]\nname = \"a b\"\n[rootfs]\ntar = \"rootfs.tar\"\n", "image.name", "not a valid image name"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[kernel]\ncmdline = [\"roothash=00\"]\n", "kernel.cmdline[0]", "roothash"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[kernel]\ncmdline = [\"a b\"]\n", "kernel.cmdline[0]", "printable"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[kernel]\npath = \"boot/vmlinuz\"\n", "kernel.path", "absolute"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[verity]\nsalt = \"xyz\"\n", "verity.salt", "not hex"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[disk]\nesp-size = \"1MiB\"\n", "disk.esp-size", "too small"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[disk]\nalignment = \"3 furlongs\"\n", "disk.alignment", "unit"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[root]\nmode = \"rw\"\n", "root.mode", "unknown variant"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[uki]\nstub = \"nope.efi\"\n", "uki.stub", "nope.efi"),
    ("[image\n", "(file)", "line 1"),
    ("[image]\nname = \"n\"\n[rootfs]\ndebian = { packages = [\"a b\"] }\n", "rootfs.debian.packages[0]", "not a valid Debian name"),
    ("[image]\nname = \"n\"\n[rootfs]\ndebian = { variant = \"huge\" }\n", "rootfs.debian.variant", "unknown mmdebstrap variant"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[signing]\nkey = \"signing.key\"\nkeyless = true\n", "signing.keyless", "ephemeral key"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[signing]\ntlog-upload = true\n", "signing.tlog-upload", "no signing.key"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[signing]\nkey = \"signing.key\"\nrekor-url = \"https://r\"\n", "signing.rekor-url", "only used with"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[signing]\nkeyless = true\nrekor-url = \"rekor.example\"\n", "signing.rekor-url", "not an http(s) URL"),
    ("[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\n[signing]\nkey = \"signing.key\"\ntlog-upload = true\nidentity-token-file = \"t\"\n", "signing.identity-token-file", "keyless"),
];

#[test]
fn bad_configs_name_file_key_and_hint() {
    let d = fixture_dir();
    for (text, key, fragment) in BAD {
        let e = resolve_text(text, d.path()).expect_err(text);
        let shown = e.to_string();
        assert_eq!(e.key, *key, "{text}\n→ {shown}");
        assert!(shown.contains(fragment), "{text}\n→ {shown}");
        assert!(shown.contains("image.toml"), "{shown}");
        assert!(
            e.hint.is_some() || e.key == "rootfs.tar" || e.key == "uki.stub",
            "no hint: {shown}"
        );
    }
}

#[test]
fn oci_source_splits_dir_and_tag() {
    let d = fixture_dir();
    let layout = d.path().join("img:x");
    std::fs::create_dir(&layout).unwrap();
    std::fs::write(layout.join("oci-layout"), b"{}").unwrap();
    std::fs::create_dir(d.path().join("plain")).unwrap();
    type Want = Result<(&'static str, Option<&'static str>), &'static str>;
    let table: [(&str, Want); 6] = [
        ("img:x", Ok(("img:x", None))),
        ("img:x:v1", Ok(("img:x", Some("v1")))),
        ("img:x:reg/name:1.0", Ok(("img:x", Some("reg/name:1.0")))),
        ("img:x:", Err("empty tag")),
        ("plain:v1", Err("no `oci-layout`")),
        ("nope:v1", Err("no such directory")),
    ];
    for (value, want) in table {
        let text = format!("[image]\nname = \"n\"\n[rootfs]\noci = \"{value}\"\n");
        match (resolve_text(&text, d.path()), want) {
            (Ok(cfg), Ok((dir, tag))) => assert_eq!(
                cfg.rootfs,
                RootfsSource::Oci {
                    dir: d.path().join(dir),
                    tag: tag.map(str::to_string)
                },
                "{value}"
            ),
            (Err(e), Err(frag)) => {
                assert_eq!(e.key, "rootfs.oci", "{value}");
                assert!(e.to_string().contains(frag), "{value}: {e}");
            }
            (got, _) => panic!("{value}: unexpected {got:?}"),
        }
    }
    let both = "[image]\nname = \"n\"\n[rootfs]\ntar = \"rootfs.tar\"\noci = \"img:x\"\n";
    let e = resolve_text(both, d.path()).unwrap_err();
    assert!(e.to_string().contains("both `tar` and `oci`"), "{e}");
}
