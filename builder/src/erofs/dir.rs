//! Directory data: blocks of `erofs_dirent` records followed by their names. Entries (including
//! `.` and `..`) are sorted by name bytes across the whole directory, because the kernel looks
//! names up by binary search over blocks and then within a block. A block holds as many whole
//! entries as fit; the last block is only as long as its contents (it becomes the inline tail).

use super::format::{push_dirent, FileType, BLOCK_SIZE, DIRENT_SIZE};

/// One entry of a directory.
#[derive(Debug, Clone)]
pub struct Dirent<'a> {
    pub name: &'a [u8],
    pub nid: u64,
    pub ft: FileType,
}

/// Sorts entries into the on-disk order (byte order of names).
pub fn sort(entries: &mut [Dirent<'_>]) {
    entries.sort_unstable_by(|a, b| a.name.cmp(b.name));
}

/// Splits sorted name lengths into blocks; yields the entry count of each block.
fn block_counts(name_lens: impl Iterator<Item = usize>) -> Vec<(usize, u64)> {
    let mut blocks = Vec::new();
    let (mut count, mut used) = (0usize, 0u64);
    for len in name_lens {
        let need = DIRENT_SIZE + len as u64;
        if used + need > BLOCK_SIZE {
            blocks.push((count, used));
            (count, used) = (0, 0);
        }
        count += 1;
        used += need;
    }
    if count > 0 {
        blocks.push((count, used));
    }
    blocks
}

/// `i_size` of a directory whose sorted entry names have these lengths.
pub fn size(name_lens: impl Iterator<Item = usize>) -> u64 {
    let blocks = block_counts(name_lens);
    match blocks.split_last() {
        Some(((_, last_used), full)) => full.len() as u64 * BLOCK_SIZE + last_used,
        None => 0,
    }
}

/// The directory's data (`size()` bytes): full blocks zero-padded, the last one unpadded.
pub fn encode(sorted: &[Dirent<'_>]) -> Vec<u8> {
    let blocks = block_counts(sorted.iter().map(|d| d.name.len()));
    let mut out = Vec::with_capacity(blocks.len() * BLOCK_SIZE as usize);
    let mut rest = sorted;
    for (i, &(count, _)) in blocks.iter().enumerate() {
        let (these, tail) = rest.split_at(count);
        rest = tail;
        let start = out.len();
        let mut nameoff = DIRENT_SIZE as usize * count;
        for d in these {
            // nameoff < BLOCK_SIZE by construction of block_counts.
            push_dirent(&mut out, d.nid, nameoff as u16, d.ft);
            nameoff += d.name.len();
        }
        for d in these {
            out.extend_from_slice(d.name);
        }
        if i + 1 < blocks.len() {
            out.resize(start + BLOCK_SIZE as usize, 0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("{i:0len$}").into_bytes()).collect()
    }

    #[test]
    fn sizes_match_greedy_block_packing() {
        // (entries, name length, expected i_size): each entry takes 12 + len bytes.
        let table = [
            (2, 1, 26),                 // "." and ".."-sized
            (256, 4, 4096),             // exactly one full block (16 * 256)
            (257, 4, 4096 + 16),        // one entry spills
            (500, 20, 3 * 4096 + 3712), // 128 per block (32 * 128 = 4096)
        ];
        for (n, len, want) in table {
            let lens = names(n, len).into_iter().map(|v| v.len());
            assert_eq!(size(lens), want, "{n} x {len}");
        }
    }

    #[test]
    fn encode_sorts_and_splits() {
        let owned = names(300, 4);
        let mut ents: Vec<Dirent> = owned
            .iter()
            .rev()
            .map(|n| Dirent {
                name: n,
                nid: 99,
                ft: FileType::Regular,
            })
            .collect();
        ents.push(Dirent {
            name: b".",
            nid: 36,
            ft: FileType::Dir,
        });
        ents.push(Dirent {
            name: b"..",
            nid: 36,
            ft: FileType::Dir,
        });
        sort(&mut ents);
        assert_eq!(ents[0].name, b".");
        assert_eq!(ents[1].name, b"..");
        assert_eq!(ents[2].name, b"0000");
        let data = encode(&ents);
        let want = size(ents.iter().map(|d| d.name.len()));
        assert_eq!(data.len() as u64, want);
        // First block: 256 entries minus the dot entries' savings; its first nameoff says how
        // many dirents the block holds.
        let nameoff0 = u16::from_le_bytes([data[8], data[9]]) as usize;
        assert_eq!(nameoff0 % 12, 0);
        assert_eq!(&data[nameoff0..nameoff0 + 3], b"...");
        let second = &data[4096..];
        let off = u16::from_le_bytes([second[8], second[9]]) as usize;
        assert_eq!(off / 12, 300 + 2 - nameoff0 / 12);
    }
}
