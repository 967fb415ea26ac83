//! One-line, human-readable summaries of event data, for mismatch reports.

use super::LogEvent;
use crate::pcr::EventType;

/// Summarises `e.data` according to its type.
pub(super) fn summary(e: &LogEvent) -> String {
    let d = &e.data;
    match e.event_type {
        EventType::EFI_ACTION | EventType(0x5) => quoted_ascii(d),
        EventType::IPL => utf16_or_ascii(d),
        EventType::EVENT_TAG => tagged(d),
        EventType::EFI_BOOT_SERVICES_APPLICATION => image_load(d),
        EventType::SEPARATOR => hex::encode(d),
        _ => format!("{} bytes of event data", d.len()),
    }
}

fn quoted_ascii(d: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(d).trim_end_matches('\0'))
}

/// systemd-stub logs its descriptions as UTF-16LE with a NUL; GRUB and others use ASCII.
fn utf16_or_ascii(d: &[u8]) -> String {
    let looks_utf16 = d.len() >= 2 && d.len().is_multiple_of(2) && d.chunks(2).all(|p| p[1] == 0);
    if looks_utf16 {
        format!("{:?}", utf16_text(d))
    } else {
        quoted_ascii(d)
    }
}

/// UTF-16LE text up to the first NUL.
fn utf16_text(d: &[u8]) -> String {
    let units: Vec<u16> = d
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// `u32 taggedEventID; u32 taggedEventDataSize; data`.
fn tagged(d: &[u8]) -> String {
    match (d.get(0..4), d.get(8..)) {
        (Some(id), Some(rest)) => format!(
            "tag {:#010x} {}",
            u32::from_le_bytes([id[0], id[1], id[2], id[3]]),
            quoted_ascii(rest)
        ),
        _ => format!("{} bytes of tagged event data", d.len()),
    }
}

/// `UEFI_IMAGE_LOAD_EVENT`: u64 location, u64 length, u64 link-time address, u64 device-path
/// length, device path.
fn image_load(d: &[u8]) -> String {
    let u64_at = |at: usize| {
        d.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let (Some(len), Some(dp_len)) = (u64_at(8), u64_at(24)) else {
        return format!("{} bytes of image load event", d.len());
    };
    let dp = d.get(32..).unwrap_or(&[]);
    let dp = &dp[..dp.len().min(dp_len as usize)];
    format!("image of {len} bytes, device path {}", device_path(dp))
}

/// The file-path and vendor-media nodes of a device path (others as `type/subtype`).
fn device_path(mut dp: &[u8]) -> String {
    let mut parts = Vec::new();
    while dp.len() >= 4 {
        let (t, s) = (dp[0], dp[1]);
        let len = usize::from(u16::from_le_bytes([dp[2], dp[3]]));
        if len < 4 || len > dp.len() || t == 0x7f {
            break;
        }
        let body = &dp[4..len];
        parts.push(match (t, s) {
            (4, 4) => utf16_text(body),
            (4, 3) if body.len() >= 16 => format!("VenMedia({})", guid(&body[..16])),
            _ => format!("{t:#04x}/{s:#04x}"),
        });
        dp = &dp[len..];
    }
    if parts.is_empty() {
        "(none)".into()
    } else {
        parts.join("/")
    }
}

/// A mixed-endian GUID as text.
fn guid(b: &[u8]) -> String {
    format!(
        "{:08x}-{:04x}-{:04x}-{}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        hex::encode(&b[8..10]),
        hex::encode(&b[10..16])
    )
}
