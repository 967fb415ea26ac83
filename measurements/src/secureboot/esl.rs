//! `EFI_SIGNATURE_LIST` (`.esl`): what PK, KEK, db and dbx hold. A list is
//! `SignatureType` (GUID) · `SignatureListSize` (u32) · `SignatureHeaderSize` (u32) ·
//! `SignatureSize` (u32) · header · `EFI_SIGNATURE_DATA` entries (`SignatureOwner` GUID +
//! data), and a variable is a concatenation of lists (UEFI 2.10 §32.4.1).

use super::{Guid, SecureBootError, EFI_CERT_SHA256, EFI_CERT_X509};

/// Size of the list header before the signature header.
pub const LIST_HEADER: usize = 28;

/// One `EFI_SIGNATURE_DATA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `SignatureOwner`.
    pub owner: Guid,
    /// `SignatureData` (a DER certificate for `EFI_CERT_X509`, a digest for hash types).
    pub data: Vec<u8>,
}

impl Entry {
    /// The `EFI_SIGNATURE_DATA` bytes (owner + data): what PCR 7's authority event carries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.owner.0.to_vec();
        v.extend_from_slice(&self.data);
        v
    }
}

/// One `EFI_SIGNATURE_LIST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureList {
    /// `SignatureType`.
    pub signature_type: Guid,
    /// Its entries (all of one size).
    pub entries: Vec<Entry>,
}

/// One list of X.509 certificates (each its own list, as certificates differ in size).
pub fn x509(owner: Guid, cert_der: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(LIST_HEADER + 16 + cert_der.len());
    let size = (LIST_HEADER + 16 + cert_der.len()) as u32;
    out.extend_from_slice(&EFI_CERT_X509.0);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&((16 + cert_der.len()) as u32).to_le_bytes());
    out.extend_from_slice(&owner.0);
    out.extend_from_slice(cert_der);
    out
}

/// Parses a variable's worth of signature lists. Every size is checked against the input.
pub fn parse(bytes: &[u8]) -> Result<Vec<SignatureList>, SecureBootError> {
    let err = |at: usize, why: String| {
        SecureBootError::Format(format!("EFI_SIGNATURE_LIST at byte {at:#x}: {why}"))
    };
    let u32_at = |at: usize| -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().expect("checked length"))
    };
    let mut lists = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        if bytes.len() - at < LIST_HEADER {
            return Err(err(
                at,
                format!("{} bytes left, a list header needs 28", bytes.len() - at),
            ));
        }
        let signature_type = Guid::from_bytes(&bytes[at..]).expect("16 bytes");
        let list_size = u32_at(at + 16) as usize;
        let header_size = u32_at(at + 20) as usize;
        let sig_size = u32_at(at + 24) as usize;
        if list_size > bytes.len() - at || list_size < LIST_HEADER {
            return Err(err(
                at,
                format!(
                    "SignatureListSize {list_size:#x} does not fit the {:#x} bytes left",
                    bytes.len() - at
                ),
            ));
        }
        let body = list_size - LIST_HEADER;
        if header_size > body || sig_size < 16 || !(body - header_size).is_multiple_of(sig_size) {
            return Err(err(
                at,
                format!(
                    "SignatureHeaderSize {header_size:#x} and SignatureSize {sig_size:#x} do not \
                     divide the list body ({body:#x} bytes)"
                ),
            ));
        }
        if signature_type == EFI_CERT_SHA256 && sig_size != 48 {
            return Err(err(
                at,
                format!("an EFI_CERT_SHA256 entry of {sig_size} bytes (48 expected)"),
            ));
        }
        let first = at + LIST_HEADER + header_size;
        let entries = (first..at + list_size)
            .step_by(sig_size)
            .map(|e| Entry {
                owner: Guid::from_bytes(&bytes[e..]).expect("16 bytes"),
                data: bytes[e + 16..e + sig_size].to_vec(),
            })
            .collect();
        lists.push(SignatureList {
            signature_type,
            entries,
        });
        at += list_size;
    }
    Ok(lists)
}

/// Every entry of the X.509 lists in `bytes`.
pub fn x509_entries(bytes: &[u8]) -> Result<Vec<Entry>, SecureBootError> {
    Ok(parse(bytes)?
        .into_iter()
        .filter(|l| l.signature_type == EFI_CERT_X509)
        .flat_map(|l| l.entries)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_parse_round_trip() {
        let owner = Guid([7; 16]);
        let mut v = x509(owner, b"certificate-bytes");
        v.extend(x509(Guid([8; 16]), b"second"));
        let lists = parse(&v).unwrap();
        assert_eq!(lists.len(), 2);
        assert_eq!(lists[0].signature_type, EFI_CERT_X509);
        assert_eq!(
            lists[0].entries,
            vec![Entry {
                owner,
                data: b"certificate-bytes".to_vec()
            }]
        );
        assert_eq!(x509_entries(&v).unwrap().len(), 2);
        assert_eq!(lists[0].entries[0].to_bytes().len(), 16 + 17);
        assert!(parse(&[]).unwrap().is_empty());
    }

    #[test]
    fn corrupt_lists_name_the_offset() {
        let good = x509(Guid([7; 16]), b"abc");
        let mut cases: Vec<(Vec<u8>, &str)> = vec![(good[..20].to_vec(), "list header needs 28")];
        let mut big = good.clone();
        big[16..20].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        cases.push((big, "does not fit"));
        let mut zero_sig = good.clone();
        zero_sig[24..28].copy_from_slice(&0u32.to_le_bytes());
        cases.push((zero_sig, "do not divide"));
        let mut two = good.clone();
        two.extend_from_slice(&good[..27]);
        cases.push((two, "at byte 0x"));
        for (bytes, want) in cases {
            let e = parse(&bytes).unwrap_err().to_string();
            assert!(
                e.contains(want) && e.contains("EFI_SIGNATURE_LIST at byte"),
                "{e}"
            );
        }
    }
}
