use super::*;

/// First 0x78 bytes of the superblock written by
/// `veritysetup format --hash=sha256 --salt=000102…1f --uuid=00000000-0000-4000-8000-000000000000`
/// (cryptsetup 2.6.1) for 8 zero data blocks of 4096 bytes; the rest of the 512 bytes is zero.
/// Root hash printed by that command: `01481fa9…086d` (spec §11.2 vector).
const VERITYSETUP_SB_HEAD: &str = concat!(
    "766572697479000001000000010000000000000000004000800000000000000073686132353600000000000000000000",
    "00000000000000000000000000000000001000000010000008000000000000002000000000000000000102030405060708",
    "090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
);

const ROOT: &str = "01481fa9a68ec9fd230c9f89013058f02060bc1be69f584f2b32261fed80086d";

fn reference_sb() -> Vec<u8> {
    let mut sb = crate::hex::decode(VERITYSETUP_SB_HEAD).unwrap();
    sb.resize(SUPERBLOCK_SIZE, 0);
    sb
}

#[test]
fn parses_the_veritysetup_superblock() {
    let sb = parse_superblock(&reference_sb()).unwrap();
    assert_eq!(sb.data_block_size, 4096);
    assert_eq!(sb.hash_block_size, 4096);
    assert_eq!(sb.data_blocks, 8);
    assert_eq!(sb.salt, (0u8..32).collect::<Vec<_>>());
}

#[test]
fn builds_the_table() {
    let sb = parse_superblock(&reference_sb()).unwrap();
    let rh = RootHash::parse(ROOT).unwrap();
    let data = DevNum {
        major: 254,
        minor: 2,
    };
    let hash = DevNum {
        major: 254,
        minor: 3,
    };
    let t = table(&sb, data, hash, &rh).unwrap();
    assert_eq!(
        (t.start, t.length, t.target_type.as_str()),
        (0, 64, "verity")
    );
    assert_eq!(
        t.params,
        format!("1 254:2 254:3 4096 4096 8 1 sha256 {ROOT} 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
    );
    let unsalted = Superblock { salt: vec![], ..sb };
    assert!(table(&unsalted, data, hash, &rh)
        .unwrap()
        .params
        .ends_with(" -"));
}

type Mutation = fn(&mut Vec<u8>);

#[test]
fn rejects_malformed_superblocks() {
    let cases: [(&str, Mutation, &str); 12] = [
        ("short", |b| b.truncate(511), "need 512 bytes, have 511"),
        ("signature", |b| b[5] = b'Y', "signature"),
        ("version", |b| b[8] = 2, "version 2 at offset 8"),
        ("hash type 0", |b| b[12] = 0, "hash_type 0 at offset 12"),
        (
            "sha1",
            |b| b[32..38].copy_from_slice(b"sha1\0\0"),
            "\"sha1\"",
        ),
        ("sha2567", |b| b[38] = b'7', "\"sha2567\""),
        ("garbage after NUL", |b| b[40] = b'x', "\"sha256\""),
        (
            "dbs 3000",
            |b| b[64..68].copy_from_slice(&3000u32.to_le_bytes()),
            "data_block_size 3000",
        ),
        (
            "dbs 8192",
            |b| b[64..68].copy_from_slice(&8192u32.to_le_bytes()),
            "data_block_size 8192",
        ),
        (
            "hbs 256",
            |b| b[68..72].copy_from_slice(&256u32.to_le_bytes()),
            "hash_block_size 256",
        ),
        (
            "0 blocks",
            |b| b[72..80].fill(0),
            "data_blocks at offset 72 is 0",
        ),
        (
            "salt 257",
            |b| b[80..82].copy_from_slice(&257u16.to_le_bytes()),
            "salt_size 257",
        ),
    ];
    for (name, mutate, needle) in cases {
        let mut sb = reference_sb();
        mutate(&mut sb);
        let err = parse_superblock(&sb).expect_err(name);
        assert!(err.to_string().contains(needle), "{name}: {err}");
    }
}

#[test]
fn accepts_maximum_salt_and_no_salt() {
    for size in [0u16, 256] {
        let mut sb = reference_sb();
        sb[80..82].copy_from_slice(&size.to_le_bytes());
        assert_eq!(parse_superblock(&sb).unwrap().salt.len(), usize::from(size));
    }
}

#[test]
fn hash_device_size_matches_veritysetup() {
    // (data blocks, data block size, hash block size, size of the hash file `veritysetup format`
    // 2.6.1 wrote for a data file of that many blocks).
    let cases = [
        (1, 4096, 4096, 4096),
        (2, 4096, 4096, 8192),
        (8, 4096, 4096, 8192),
        (128, 4096, 4096, 8192),
        (129, 4096, 4096, 16384),
        (389, 4096, 4096, 24576),
        (16384, 4096, 4096, 532480),
        (16385, 4096, 4096, 544768),
        (2097153, 4096, 4096, 67657728),
        (5, 512, 1024, 2048),
    ];
    for (data_blocks, dbs, hbs, want) in cases {
        let sb = Superblock {
            data_block_size: dbs,
            hash_block_size: hbs,
            data_blocks,
            salt: vec![],
        };
        assert_eq!(sb.hash_device_bytes(), Some(want), "{data_blocks} blocks");
    }
}

#[test]
fn degenerate_hand_made_superblocks_do_not_panic_or_hang() {
    for (blocks, hbs) in [
        (0, 4096),
        (u64::MAX, 4096),
        (u64::MAX, 512),
        (10, 32),
        (10, 0),
        (10, 63),
    ] {
        let sb = Superblock {
            data_block_size: 4096,
            hash_block_size: hbs,
            data_blocks: blocks,
            salt: vec![],
        };
        let _ = sb.hash_device_bytes();
        let _ = sb.check_fits(u64::MAX, u64::MAX);
    }
}

#[test]
fn checks_that_devices_are_large_enough() {
    // 8 × 4096 data bytes; superblock block + one tree block (veritysetup wrote 8192 bytes).
    let sb = parse_superblock(&reference_sb()).unwrap();
    let cases = [
        (32768, 8192, None),
        (1 << 30, 1 << 20, None),
        (32767, 8192, Some("data partition has 32767 bytes")),
        (32768, 8191, Some("hash tree needs 8192 bytes")),
    ];
    for (data, hash, want) in cases {
        let got = sb.check_fits(data, hash).err().map(|e| e.to_string());
        match want {
            None => assert_eq!(got, None),
            Some(needle) => assert!(got.as_deref().unwrap_or("").contains(needle), "{got:?}"),
        }
    }
    let huge = Superblock {
        data_blocks: u64::MAX,
        ..sb
    };
    assert!(huge
        .check_fits(u64::MAX, u64::MAX)
        .unwrap_err()
        .to_string()
        .contains("overflows"));
}

#[test]
fn a_tree_shorter_than_the_erofs_image_is_refused() {
    let sb = parse_superblock(&reference_sb()).unwrap(); // 8 blocks of 4096 = 32 KiB
    let mut erofs = vec![0u8; 512];
    erofs[0..4].copy_from_slice(&0xE0F5_E1E2u32.to_le_bytes());
    erofs[12] = 12; // 4096-byte blocks
    erofs[36..40].copy_from_slice(&8u32.to_le_bytes());
    let size = erofs_image_bytes(&erofs).unwrap();
    assert_eq!(size, 32768);
    sb.check_covers(size).unwrap();
    erofs[36..40].copy_from_slice(&9u32.to_le_bytes());
    let e = sb
        .check_covers(erofs_image_bytes(&erofs).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("its end would be unverified"), "{e}");
    // Not erofs, or a nonsense block size: refused too.
    erofs[0] ^= 1;
    assert!(erofs_image_bytes(&erofs).is_err());
    erofs[0] ^= 1;
    erofs[12] = 40;
    assert!(erofs_image_bytes(&erofs).is_err());
}
