//! Hashing many messages in several banks at once: messages that start with the same large
//! borrowed slice (a section measured into PCR 11 and also handed to the kernel as the start
//! of its initrd) hash that slice once and fork the state; independent work runs in parallel.
//! Where the CPU allows (`crate::multihash`), the two largest streams of a bank (in a UKI: its
//! Authenticode stream and the `.initrd`) are hashed together on one core, their rounds
//! interleaved, and so on down the list of streams of at least [`PAIR_MIN`] bytes.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{Bank, Digest};

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

/// Streams shorter than this are not paired.
const PAIR_MIN: usize = 1 << 20;

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

/// Work for one thread: one group, or two hashed together (`Task::pair`).
struct Task<'g> {
    groups: Vec<&'g Group>,
    bank: usize,
    cost: usize,
}

/// The digest of every message in every bank: `result[message][bank index]`.
pub(crate) fn hash_all(messages: &[Vec<Chunk<'_>>], banks: &[Bank]) -> Vec<Vec<Digest>> {
    hash_all_with(messages, banks, true)
}

fn hash_all_with(
    messages: &[Vec<Chunk<'_>>],
    banks: &[Bank],
    allow_pairs: bool,
) -> Vec<Vec<Digest>> {
    let groups = groups(messages);
    let tasks = plan(messages, &groups, banks, allow_pairs);
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(messages.len() * banks.len()));
    let work = || {
        while let Some(t) = tasks.get(next.fetch_add(1, Ordering::Relaxed)) {
            let r = hash_task(messages, t, banks[t.bank]);
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

/// The work list: per bank, groups largest first, consecutive ones paired where both leads
/// are at least [`PAIR_MIN`] and the CPU has the bank's two-stream kernel; sorted by cost.
fn plan<'g>(
    messages: &[Vec<Chunk<'_>>],
    groups: &'g [Group],
    banks: &[Bank],
    allow_pairs: bool,
) -> Vec<Task<'g>> {
    let mut by_size: Vec<&Group> = groups.iter().collect();
    by_size.sort_by_key(|g| std::cmp::Reverse(g.size));
    let lead = |g: &Group| lead(messages, g).iter().map(Chunk::len).sum::<usize>();
    // SHA-384 costs about twice as much per byte as SHA-256 (which has CPU instructions); a
    // pair costs about two thirds of its two streams hashed one after the other.
    let mut tasks: Vec<Task<'g>> = Vec::new();
    for (b, &bank) in banks.iter().enumerate() {
        let weight = if bank == Bank::Sha384 { 2 } else { 1 };
        let pairs = allow_pairs && Partial::pairs_available(bank);
        let mut rest = by_size.iter().copied().peekable();
        while let Some(g) = rest.next() {
            match rest.peek() {
                Some(h) if pairs && lead(h) >= PAIR_MIN && lead(g) >= PAIR_MIN => {
                    let h = rest.next().expect("peeked");
                    tasks.push(Task {
                        groups: vec![g, h],
                        bank: b,
                        cost: (g.size + h.size) * 2 / 3 * weight,
                    });
                }
                _ => tasks.push(Task {
                    groups: vec![g],
                    bank: b,
                    cost: g.size * weight,
                }),
            }
        }
    }
    // Largest first, handed out one by one to as many threads as there are cores (longest
    // processing time first): the big hashes start at once and small ones fill the gaps.
    tasks.sort_by_key(|t| std::cmp::Reverse((t.cost, t.bank)));
    tasks
}

/// What a group hashes before its members part: the shared first chunk, or the whole message
/// of a one-member group.
fn lead<'c, 'a>(messages: &'c [Vec<Chunk<'a>>], g: &Group) -> &'c [Chunk<'a>] {
    let m = &messages[g.members[0]];
    if g.shared {
        &m[..1.min(m.len())]
    } else {
        m
    }
}

fn hash_task(messages: &[Vec<Chunk<'_>>], t: &Task<'_>, bank: Bank) -> Vec<(usize, usize, Digest)> {
    let states: Vec<Partial> = match t.groups[..] {
        [g, h] => {
            let (a, b) = Partial::pair(bank, lead(messages, g), lead(messages, h));
            vec![a, b]
        }
        _ => t
            .groups
            .iter()
            .map(|g| {
                let mut p = Partial::new(bank);
                for c in lead(messages, g) {
                    p.feed(c);
                }
                p
            })
            .collect(),
    };
    let mut out = Vec::new();
    for (g, base) in t.groups.iter().zip(states) {
        if !g.shared {
            out.push((g.members[0], t.bank, base.finish()));
            continue;
        }
        for &m in &g.members {
            let mut h = base.clone();
            for c in messages[m].iter().skip(1) {
                h.feed(c);
            }
            out.push((m, t.bank, h.finish()));
        }
    }
    out
}

/// A SHA-256 or SHA-384 computation held as its state words, so that the two-stream kernels
/// can advance it: the state, the bytes of an incomplete block and the length so far.
#[derive(Clone)]
struct Partial {
    state: State,
    buf: [u8; 128],
    fill: usize,
    len: u64,
}

#[derive(Clone)]
enum State {
    Sha256([u32; 8]),
    Sha384([u64; 8]),
}

impl Partial {
    fn new(bank: Bank) -> Partial {
        Partial {
            state: match bank {
                Bank::Sha256 => State::Sha256(crate::multihash::IV256),
                Bank::Sha384 => State::Sha384(crate::multihash::IV384),
            },
            buf: [0; 128],
            fill: 0,
            len: 0,
        }
    }

    fn block(&self) -> usize {
        match self.state {
            State::Sha256(_) => 64,
            State::Sha384(_) => 128,
        }
    }

    /// Whether this CPU has the two-stream kernel for `bank`.
    fn pairs_available(bank: Bank) -> bool {
        #[cfg(target_arch = "x86_64")]
        return match bank {
            Bank::Sha256 => crate::multihash::sha256_available(),
            Bank::Sha384 => crate::multihash::sha512_available(),
        };
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = bank;
            false
        }
    }

    /// Compresses whole blocks (`fill` must be 0).
    fn compress(&mut self, blocks: &[u8]) {
        use sha2::digest::generic_array::GenericArray;
        debug_assert!(self.fill == 0 && blocks.len().is_multiple_of(self.block()));
        self.len += blocks.len() as u64;
        match &mut self.state {
            // SAFETY: GenericArray<u8, N> is `repr(transparent)` over [u8; N] (alignment 1),
            // and `blocks` holds exactly len / N of them.
            State::Sha256(s) => sha2::compress256(s, unsafe {
                std::slice::from_raw_parts(
                    blocks
                        .as_ptr()
                        .cast::<GenericArray<u8, sha2::digest::consts::U64>>(),
                    blocks.len() / 64,
                )
            }),
            State::Sha384(s) => sha2::compress512(s, unsafe {
                std::slice::from_raw_parts(
                    blocks
                        .as_ptr()
                        .cast::<GenericArray<u8, sha2::digest::consts::U128>>(),
                    blocks.len() / 128,
                )
            }),
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        let b = self.block();
        if self.fill > 0 {
            let k = (b - self.fill).min(data.len());
            self.buf[self.fill..self.fill + k].copy_from_slice(&data[..k]);
            self.fill += k;
            data = &data[k..];
            if self.fill < b {
                return;
            }
            let block = self.buf;
            self.fill = 0;
            self.compress(&block[..b]);
        }
        let whole = data.len() / b * b;
        self.compress(&data[..whole]);
        let rest = &data[whole..];
        self.buf[..rest.len()].copy_from_slice(rest);
        self.fill = rest.len();
    }

    fn feed(&mut self, c: &Chunk<'_>) {
        match c {
            Chunk::Bytes(b) => self.update(b),
            Chunk::Zeros(mut n) => {
                const ZEROS: [u8; 4096] = [0; 4096];
                while n > 0 {
                    let k = n.min(ZEROS.len());
                    self.update(&ZEROS[..k]);
                    n -= k;
                }
            }
        }
    }

    fn finish(mut self) -> Digest {
        let b = self.block();
        let bits = u128::from(self.len + self.fill as u64) * 8;
        let len_field = if b == 64 { 8 } else { 16 };
        let mut pad = vec![0x80u8];
        let used = self.fill + 1;
        let zeros = (2 * b - used - len_field) % b;
        pad.resize(1 + zeros, 0);
        pad.extend_from_slice(&bits.to_be_bytes()[16 - len_field..]);
        self.update(&pad);
        debug_assert_eq!(self.fill, 0);
        match self.state {
            State::Sha256(s) => {
                let mut d = [0u8; 32];
                for (w, o) in s.iter().zip(d.chunks_exact_mut(4)) {
                    o.copy_from_slice(&w.to_be_bytes());
                }
                Digest::Sha256(d)
            }
            State::Sha384(s) => {
                let mut d = [0u8; 48];
                for (w, o) in s.iter().zip(d.chunks_exact_mut(8)) {
                    o.copy_from_slice(&w.to_be_bytes());
                }
                Digest::Sha384(d)
            }
        }
    }

    /// Hashes `a` and `b` (whole messages or leads) into two fresh states of `bank`, their
    /// common whole blocks with the two-stream kernel; `pairs_available(bank)` must be true.
    #[cfg(target_arch = "x86_64")]
    fn pair(bank: Bank, a: &[Chunk<'_>], b: &[Chunk<'_>]) -> (Partial, Partial) {
        assert!(Partial::pairs_available(bank));
        let (mut pa, mut pb) = (Partial::new(bank), Partial::new(bank));
        let bl = pa.block();
        let (mut ra, mut rb) = (Reader::new(a), Reader::new(b));
        let (mut ba, mut bb) = ([0u8; 128], [0u8; 128]);
        // At most this much per kernel call, so that one long run does not starve the other
        // stream's readers of their copy buffers (and the states are stored now and then).
        const RUN_MAX: usize = 4 << 20;
        while ra.left >= bl && rb.left >= bl {
            let (x, y) = (ra.run(bl), rb.run(bl));
            let n = x.len().min(y.len()).min(RUN_MAX);
            let copied = n == 0;
            let (x, y): (&[u8], &[u8]) = if copied {
                ra.copy_block(&mut ba[..bl]);
                rb.copy_block(&mut bb[..bl]);
                (&ba[..bl], &bb[..bl])
            } else {
                (&x[..n], &y[..n])
            };
            let n = x.len();
            match (&mut pa.state, &mut pb.state) {
                (State::Sha256(sa), State::Sha256(sb)) => {
                    let mut st = [*sa, *sb];
                    // SAFETY: `pairs_available` (asserted above).
                    unsafe { crate::multihash::sha256_compress(&mut st, [x, y]) };
                    [*sa, *sb] = st;
                }
                (State::Sha384(sa), State::Sha384(sb)) => {
                    let mut st = [*sa, *sb];
                    // SAFETY: `pairs_available` (asserted above).
                    unsafe { crate::multihash::sha512_compress2(&mut st, [x, y]) };
                    [*sa, *sb] = st;
                }
                _ => unreachable!("both states are of `bank`"),
            }
            pa.len += n as u64;
            pb.len += n as u64;
            if !copied {
                ra.advance(n);
                rb.advance(n);
            }
        }
        ra.rest(&mut pa);
        rb.rest(&mut pb);
        (pa, pb)
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn pair(_: Bank, _: &[Chunk<'_>], _: &[Chunk<'_>]) -> (Partial, Partial) {
        unreachable!("no two-stream kernels here (pairs_available is false)")
    }
}

/// A position in a message's chunks.
struct Reader<'c, 'a> {
    chunks: &'c [Chunk<'a>],
    /// Current chunk and offset in it.
    i: usize,
    off: usize,
    /// Bytes from here to the end.
    left: usize,
}

impl<'c, 'a> Reader<'c, 'a> {
    fn new(chunks: &'c [Chunk<'a>]) -> Self {
        let mut r = Reader {
            chunks,
            i: 0,
            off: 0,
            left: chunks.iter().map(Chunk::len).sum(),
        };
        r.skip_empty();
        r
    }

    fn skip_empty(&mut self) {
        while self.i < self.chunks.len() && self.off == self.chunks[self.i].len() {
            self.i += 1;
            self.off = 0;
        }
    }

    /// The whole `block`-byte blocks the current chunk holds from here, in place (empty for
    /// zeros or when less than a block is left in it).
    fn run(&self, block: usize) -> &'c [u8] {
        match self.chunks.get(self.i) {
            Some(Chunk::Bytes(b)) => {
                let b: &'c [u8] = match b {
                    Cow::Borrowed(s) => s,
                    Cow::Owned(v) => v.as_slice(),
                };
                let n = (b.len() - self.off) / block * block;
                &b[self.off..self.off + n]
            }
            _ => &[],
        }
    }

    fn advance(&mut self, mut n: usize) {
        self.left -= n;
        while n > 0 {
            let k = (self.chunks[self.i].len() - self.off).min(n);
            self.off += k;
            n -= k;
            self.skip_empty();
        }
    }

    /// Copies the next `out.len()` bytes (across chunks, zeros included) and moves past them.
    fn copy_block(&mut self, out: &mut [u8]) {
        let mut at = 0;
        while at < out.len() {
            let c = &self.chunks[self.i];
            let k = (c.len() - self.off).min(out.len() - at);
            match c {
                Chunk::Bytes(b) => out[at..at + k].copy_from_slice(&b[self.off..self.off + k]),
                Chunk::Zeros(_) => out[at..at + k].fill(0),
            }
            at += k;
            self.advance(k);
        }
    }

    /// Feeds everything from here to `p`.
    fn rest(self, p: &mut Partial) {
        for (n, c) in self.chunks.iter().enumerate().skip(self.i) {
            let skip = if n == self.i { self.off } else { 0 };
            match c {
                Chunk::Bytes(b) => p.update(&b[skip..]),
                Chunk::Zeros(z) => p.feed(&Chunk::Zeros(z - skip)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_noise as bytes;

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

    fn flat(m: &[Chunk<'_>]) -> Vec<u8> {
        let mut v = Vec::new();
        for c in m {
            match c {
                Chunk::Bytes(b) => v.extend_from_slice(b),
                Chunk::Zeros(n) => v.resize(v.len() + n, 0),
            }
        }
        v
    }

    #[test]
    fn the_state_hasher_pads_like_sha2_at_every_edge() {
        for bank in Bank::ALL {
            for len in [0, 1, 55, 56, 63, 64, 65, 111, 112, 119, 127, 128, 129, 1000] {
                let data = bytes(len, len as u64);
                let mut p = Partial::new(bank);
                // Fed in two uneven pieces, to cross the partial block.
                p.update(&data[..len / 3]);
                p.update(&data[len / 3..]);
                assert_eq!(p.finish(), bank.hash(&data), "{bank} {len} bytes");
            }
        }
    }

    /// Streams of at least PAIR_MIN bytes, with chunk boundaries inside blocks, zero runs,
    /// owned and borrowed bytes, and a shared prefix: the paired hashing (where this CPU has
    /// the kernels), the unpaired one and plain hashing agree.
    #[test]
    fn paired_streams_give_the_same_digests() {
        let big = bytes(3 * PAIR_MIN + 5, 1);
        let mid = bytes(2 * PAIR_MIN + 77, 2);
        let odd = bytes(PAIR_MIN + 333, 3);
        let msgs: Vec<Vec<Chunk>> = vec![
            vec![Chunk::Bytes(Cow::Borrowed(&big))],
            vec![
                Chunk::Bytes(Cow::Borrowed(&big)),
                Chunk::Bytes(Cow::Owned(b"tail".to_vec())),
            ],
            vec![
                Chunk::Bytes(Cow::Owned(bytes(100, 4))),
                Chunk::Zeros(70_001),
                Chunk::Bytes(Cow::Borrowed(&mid)),
                Chunk::Bytes(Cow::Owned(bytes(33, 5))),
                Chunk::Zeros(PAIR_MIN + 3),
            ],
            vec![
                Chunk::Bytes(Cow::Borrowed(&odd[..7])),
                Chunk::Bytes(Cow::Borrowed(&odd[7..])),
            ],
            vec![Chunk::Zeros(PAIR_MIN * 2 + 1)],
            vec![Chunk::Bytes(Cow::Owned(bytes(10, 6)))],
        ];
        let banks = [Bank::Sha256, Bank::Sha384];
        // Where the CPU has a bank's kernel, the pairs are really formed.
        let g = groups(&msgs);
        for (b, bank) in banks.iter().enumerate() {
            let pairs = plan(&msgs, &g, &banks, true)
                .iter()
                .filter(|t| t.bank == b && t.groups.len() == 2)
                .count();
            assert_eq!(
                pairs,
                if Partial::pairs_available(*bank) {
                    2
                } else {
                    0
                },
                "{bank}"
            );
        }
        let paired = hash_all_with(&msgs, &banks, true);
        let single = hash_all_with(&msgs, &banks, false);
        for (i, m) in msgs.iter().enumerate() {
            let data = flat(m);
            for (b, bank) in banks.iter().enumerate() {
                let want = bank.hash(&data);
                assert_eq!(paired[i][b], want, "message {i} {bank}, paired");
                assert_eq!(single[i][b], want, "message {i} {bank}, one stream each");
            }
        }
    }
}
