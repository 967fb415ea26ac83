use super::*;

// Offsets and request numbers below were printed by a C program including <linux/dm-ioctl.h>
// (Debian bookworm linux-libc-dev) with sizeof/offsetof and the DM_* macros.

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_ne_bytes(b[off..off + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_ne_bytes(b[off..off + 8].try_into().unwrap())
}

fn cstr(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap();
    std::str::from_utf8(&b[..end]).unwrap()
}

fn target(params: &str) -> Target {
    Target {
        start: 0,
        length: 64,
        target_type: "verity".into(),
        params: params.into(),
    }
}

#[test]
fn request_numbers_match_the_kernel_header() {
    let cases = [
        (Command::Version, 0xc138_fd00),
        (Command::DevCreate, 0xc138_fd03),
        (Command::DevRemove, 0xc138_fd04),
        (Command::DevSuspend, 0xc138_fd06),
        (Command::DevStatus, 0xc138_fd07),
        (Command::TableLoad, 0xc138_fd09),
    ];
    for (cmd, want) in cases {
        assert_eq!(cmd.request(), want, "{cmd:?}");
    }
}

#[test]
fn encodes_a_header_only_request() {
    let buf = encode(&Request {
        name: "root",
        uuid: "NODEIMG-root",
        flags: READONLY_FLAG,
        targets: &[],
    })
    .unwrap();
    assert_eq!(buf.len(), DM_IOCTL_SIZE);
    assert_eq!(
        [u32_at(&buf, 0), u32_at(&buf, 4), u32_at(&buf, 8)],
        [4, 0, 0]
    );
    assert_eq!(u32_at(&buf, 12), 312); // data_size
    assert_eq!(u32_at(&buf, 16), 312); // data_start
    assert_eq!(u32_at(&buf, 20), 0); // target_count
    assert_eq!(u32_at(&buf, 28), 1); // flags
    assert_eq!(cstr(&buf[48..176]), "root");
    assert_eq!(cstr(&buf[176..305]), "NODEIMG-root");
}

#[test]
fn encodes_table_targets_with_aligned_next_offsets() {
    // 40-byte spec + 5 bytes "a b c" + NUL = 46 → 48; 40 + 8 + NUL = 49 → 56.
    let targets = [
        target("a b c"),
        Target {
            start: 64,
            ..target("12345678")
        },
    ];
    let buf = encode(&Request {
        name: "t",
        targets: &targets,
        ..Request::default()
    })
    .unwrap();
    assert_eq!(buf.len(), 312 + 48 + 56);
    assert_eq!(u32_at(&buf, 12) as usize, buf.len());
    assert_eq!(u32_at(&buf, 20), 2);
    let first = &buf[312..];
    assert_eq!((u64_at(first, 0), u64_at(first, 8)), (0, 64));
    assert_eq!(u32_at(first, 16), 0); // status
    assert_eq!(u32_at(first, 20), 48); // next
    assert_eq!(cstr(&first[24..40]), "verity");
    assert_eq!(cstr(&first[40..]), "a b c");
    let second = &buf[312 + 48..];
    assert_eq!(u64_at(second, 0), 64);
    assert_eq!(u32_at(second, 20), 56);
    assert_eq!(cstr(&second[40..]), "12345678");
}

#[test]
fn rejects_what_the_kernel_would_reject() {
    let long = "x".repeat(128);
    let long_type = Target {
        target_type: "x".repeat(16),
        ..target("")
    };
    let nul_params = target("a\0b");
    let cases: [(Request<'_>, &str); 4] = [
        (
            Request {
                name: &long,
                ..Request::default()
            },
            "device name",
        ),
        (
            Request {
                uuid: &"u".repeat(129),
                ..Request::default()
            },
            "device uuid",
        ),
        (
            Request {
                name: "t",
                targets: std::slice::from_ref(&long_type),
                ..Request::default()
            },
            "target type",
        ),
        (
            Request {
                name: "t",
                targets: std::slice::from_ref(&nul_params),
                ..Request::default()
            },
            "NUL",
        ),
    ];
    for (req, needle) in cases {
        let err = encode(&req).expect_err(needle);
        assert!(err.to_string().contains(needle), "{err}");
    }
    assert!(encode(&Request {
        name: &"x".repeat(127),
        ..Request::default()
    })
    .is_ok());
}

#[test]
fn checks_device_names() {
    for ok in ["root", "nodeimg-test-123", &"n".repeat(127)] {
        assert!(check_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", ".", "..", "a/b", "a\0b", &"n".repeat(128)] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn decodes_replies() {
    let mut buf = encode(&Request {
        name: "root",
        ..Request::default()
    })
    .unwrap();
    buf[0..12].copy_from_slice(&[4u32, 47, 0].map(u32::to_ne_bytes).concat());
    buf[24..28].copy_from_slice(&2i32.to_ne_bytes());
    buf[40..48].copy_from_slice(&((254u64 << 8) | 3).to_ne_bytes());
    let r = decode_reply(&buf).unwrap();
    assert_eq!(r.version, [4, 47, 0]);
    assert_eq!(r.open_count, 2);
    let dev = crate::devnum::DevNum::from_dev_t(r.dev);
    assert_eq!((dev.major, dev.minor), (254, 3));
    assert!(decode_reply(&buf[..311]).is_err());
}
