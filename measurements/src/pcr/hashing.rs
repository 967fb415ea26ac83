//! Hashing many messages in several banks at once: messages that start with the same large
//! borrowed slice (a section measured into PCR 11 and also handed to the kernel as the start
//! of its initrd) hash that slice once and fork the state; independent work runs in parallel.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Bank, Digest, Hasher};

/// Part of a message.
#[derive(Debug, Clone)]
pub(crate) enum Chunk<'a> {
    /// Bytes, borrowed from the image or generated.
    Bytes(Cow<'a, [u8]>),
    /// This many zero bytes.
    Zeros(usize),
}

impl Chunk<'_> {
    fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::Zeros(n) => *n,
        }
    }

    fn feed(&self, h: &mut Hasher) {
        match self {
            Chunk::Bytes(b) => h.update(b),
            Chunk::Zeros(n) => h.update_zeros(*n),
        }
    }

    /// Identity of a borrowed slice (address and length), for prefix sharing.
    fn key(&self) -> Option<(usize, usize)> {
        match self {
            Chunk::Bytes(Cow::Borrowed(b)) if b.len() >= SHARE_MIN => {
                Some((b.as_ptr() as usize, b.len()))
            }
            _ => None,
        }
    }
}

/// Shared first chunks smaller than this are simply hashed twice.
const SHARE_MIN: usize = 64 << 10;

/// Messages whose first chunk is the same borrowed slice.
struct Group {
    members: Vec<usize>,
    /// Whether `members` share their first chunk (else the group has one member).
    shared: bool,
    size: usize,
}

fn groups(messages: &[Vec<Chunk<'_>>]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let size = m.iter().map(Chunk::len).sum();
        let key = m.first().and_then(Chunk::key);
        let existing = key.and_then(|k| {
            out.iter_mut().find(|g| {
                g.shared && messages[g.members[0]].first().and_then(Chunk::key) == Some(k)
            })
        });
        match existing {
            Some(g) => {
                g.members.push(i);
                g.size += size;
            }
            None => out.push(Group {
                members: vec![i],
                shared: key.is_some(),
                size,
            }),
        }
    }
    out
}

/// The digest of every message in every bank: `result[message][bank index]`.
pub(crate) fn hash_all(messages: &[Vec<Chunk<'_>>], banks: &[Bank]) -> Vec<Vec<Digest>> {
    let groups = groups(messages);
    let mut tasks: Vec<(&Group, usize)> = groups
        .iter()
        .flat_map(|g| (0..banks.len()).map(move |b| (g, b)))
        .collect();
    // Largest first, handed out one by one to as many threads as there are cores (longest
    // processing time first): the big hashes start at once and small ones fill the gaps.
    // SHA-384 costs about twice as much per byte as SHA-256 (which has CPU instructions).
    let cost = |g: &Group, b: usize| g.size * if banks[b] == Bank::Sha384 { 2 } else { 1 };
    tasks.sort_by_key(|(g, b)| std::cmp::Reverse((cost(g, *b), *b)));
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(tasks.len()));
    let work = || {
        while let Some((g, b)) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
            let r = hash_group(messages, g, banks[*b], *b);
            done.lock().unwrap_or_else(|e| e.into_inner()).extend(r);
        }
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(tasks.len());
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    let done = done.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut out: Vec<Vec<Option<Digest>>> = vec![vec![None; banks.len()]; messages.len()];
    for (m, b, d) in done {
        out[m][b] = Some(d);
    }
    out.into_iter()
        .map(|row| row.into_iter().flatten().collect())
        .collect()
}

fn hash_group(
    messages: &[Vec<Chunk<'_>>],
    g: &Group,
    bank: Bank,
    bank_index: usize,
) -> Vec<(usize, usize, Digest)> {
    let mut base = bank.hasher();
    let skip = usize::from(g.shared);
    if g.shared {
        if let Some(first) = messages[g.members[0]].first() {
            first.feed(&mut base);
        }
    }
    g.members
        .iter()
        .map(|&m| {
            let mut h = base.clone();
            for c in messages[m].iter().skip(skip) {
                c.feed(&mut h);
            }
            (m, bank_index, h.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_prefixes_give_the_same_digests_as_plain_hashing() {
        let big = vec![0x5au8; SHARE_MIN + 3];
        let other = vec![1u8; 10];
        let msgs: Vec<Vec<Chunk>> = vec![
            vec![Chunk::Bytes(Cow::Borrowed(&big))],
            vec![
                Chunk::Bytes(Cow::Borrowed(&big)),
                Chunk::Zeros(1),
                Chunk::Bytes(Cow::Owned(b"tail".to_vec())),
            ],
            vec![Chunk::Bytes(Cow::Borrowed(&other)), Chunk::Zeros(5000)],
            vec![],
        ];
        let banks = [Bank::Sha256, Bank::Sha384];
        let got = hash_all(&msgs, &banks);
        let mut with_tail = big.clone();
        with_tail.extend_from_slice(b"\0tail");
        let mut padded = other.clone();
        padded.resize(5010, 0);
        let plain: [&[u8]; 4] = [&big, &with_tail, &padded, b""];
        for (i, data) in plain.iter().enumerate() {
            for (b, bank) in banks.iter().enumerate() {
                assert_eq!(got[i][b], bank.hash(data), "message {i} {bank}");
            }
        }
        assert_eq!(groups(&msgs).len(), 3);
    }
}
