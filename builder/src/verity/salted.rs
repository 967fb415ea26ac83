//! SHA-256 of many equal-length blocks under one salt — `SHA-256(salt ‖ block)`, the digest
//! dm-verity (format 1) stores for every data and hash block.
//!
//! Where the CPU has the SHA extensions, blocks are hashed two at a time: the two messages'
//! rounds are interleaved so that one's `sha256rnds2` runs while the other's result is still in
//! flight. One SHA-256 stream is bound by that instruction's latency, not by the core's
//! throughput, so two independent streams on one core go faster than one (measured by
//! `scripts/bench.sh`'s verity row). Elsewhere (or with `NODEIMG_SHA256_GENERIC=1`, for tests
//! and comparisons) every block goes through the `sha2` crate. The interleaved compression
//! function is `measurements::multihash`'s. Both give the same bytes; the unit
//! tests compare them over every salt length and block-size edge.

use sha2::{Digest, Sha256};

/// Messages hashed together on one core.
const WAYS: usize = 2;

/// Hashes `SHA-256(salt ‖ block)` for a fixed salt.
#[derive(Clone, Debug)]
pub struct SaltedSha256 {
    /// `sha2`'s state after the salt: the generic path and the reference.
    generic: Sha256,
    #[cfg(target_arch = "x86_64")]
    ni: Option<ni::Prefix>,
}

impl SaltedSha256 {
    pub fn new(salt: &[u8]) -> Self {
        let generic = Sha256::new_with_prefix(salt);
        #[cfg(target_arch = "x86_64")]
        {
            let ni = (std::env::var_os("NODEIMG_SHA256_GENERIC").is_none_or(|v| v != "1")
                && ni::available())
            // SAFETY: the CPU has the features (`available()`).
            .then(|| unsafe { ni::Prefix::new(salt) });
            Self { generic, ni }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self { generic }
    }

    /// The generic (`sha2` crate) hasher for the same salt, whatever the CPU has.
    #[cfg(test)]
    fn generic_only(salt: &[u8]) -> Self {
        Self {
            generic: Sha256::new_with_prefix(salt),
            #[cfg(target_arch = "x86_64")]
            ni: None,
        }
    }

    /// True when the two-way SHA extension path is in use.
    #[cfg(test)]
    fn accelerated(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return self.ni.is_some();
        #[cfg(not(target_arch = "x86_64"))]
        false
    }

    /// The digest of one block.
    pub fn one(&self, block: &[u8]) -> [u8; 32] {
        self.generic.clone().chain_update(block).finalize().into()
    }

    /// The digests of `data`'s consecutive `block`-byte blocks into `out`, 32 bytes each.
    /// `data.len()` must be a multiple of `block` and `out` 32 bytes per block.
    pub fn blocks(&self, data: &[u8], block: usize, out: &mut [u8]) {
        assert!(
            block > 0 && data.len().is_multiple_of(block),
            "whole blocks"
        );
        assert_eq!(out.len(), data.len() / block * 32, "one digest per block");
        #[cfg(target_arch = "x86_64")]
        if let Some(p) = &self.ni {
            const W: usize = WAYS;
            let mut groups = data.chunks_exact(W * block);
            let mut dst = out.chunks_exact_mut(W * 32);
            for (g, d) in (&mut groups).zip(&mut dst) {
                let m: [&[u8]; W] = std::array::from_fn(|i| &g[i * block..(i + 1) * block]);
                let mut o = d.chunks_exact_mut(32);
                let o: [&mut [u8]; W] = std::array::from_fn(|_| o.next().expect("W digests"));
                // SAFETY: `p` exists only when `ni::available()` said the CPU has the
                // features `hash` is compiled for.
                unsafe { p.hash(m, o) };
            }
            let rest = groups.remainder();
            for (b, d) in rest
                .chunks_exact(block)
                .zip(dst.into_remainder().chunks_exact_mut(32))
            {
                // SAFETY: as above.
                unsafe { p.hash([b], [d]) };
            }
            return;
        }
        for (b, d) in data.chunks_exact(block).zip(out.chunks_exact_mut(32)) {
            d.copy_from_slice(&self.one(b));
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod ni {
    use measurements::multihash::{sha256_compress, IV256};

    pub fn available() -> bool {
        measurements::multihash::sha256_available()
    }

    /// The state after the salt's whole 64-byte blocks, and the salt's remaining bytes.
    #[derive(Clone, Debug)]
    pub struct Prefix {
        state: [u32; 8],
        tail: Vec<u8>,
        /// Length of the whole salt in bytes (the message length counts it).
        salt_len: u64,
    }

    impl Prefix {
        /// # Safety
        /// The CPU must have the SHA extensions (`available()`).
        pub unsafe fn new(salt: &[u8]) -> Self {
            let whole = salt.len() / 64 * 64;
            let mut state = [IV256];
            // SAFETY: the caller checked `available()`.
            unsafe { sha256_compress(&mut state, [&salt[..whole]]) };
            Self {
                state: state[0],
                tail: salt[whole..].to_vec(),
                salt_len: salt.len() as u64,
            }
        }

        /// `SHA-256(salt ‖ m[i])` into `out[i]` for `N` messages of one length.
        ///
        /// # Safety
        /// The CPU must have the SHA extensions (`available()`).
        pub unsafe fn hash<const N: usize>(&self, m: [&[u8]; N], out: [&mut [u8]; N]) {
            let n = m[0].len();
            assert!(m.iter().all(|x| x.len() == n));
            let r = self.tail.len();
            let bits = (self.salt_len + n as u64) * 8;
            let mut st = [self.state; N];
            // The block that joins the salt's tail to the data's head.
            let mut o = 0;
            let joined = r > 0 && r + n >= 64;
            if joined {
                let mut bufs = [[0u8; 64]; N];
                for (buf, m) in bufs.iter_mut().zip(m) {
                    buf[..r].copy_from_slice(&self.tail);
                    buf[r..].copy_from_slice(&m[..64 - r]);
                }
                // SAFETY: the caller checked `available()`.
                unsafe { sha256_compress(&mut st, bufs.each_ref().map(|b| &b[..])) };
                o = 64 - r;
            }
            // Whole blocks straight from the data.
            let whole = (n - o) / 64 * 64;
            // SAFETY: as above.
            unsafe { sha256_compress(&mut st, m.map(|m| &m[o..o + whole])) };
            o += whole;
            // The rest, 0x80, zeros and the bit length: one or two blocks.
            let pre: &[u8] = if joined || r == 0 { &[] } else { &self.tail };
            let rest = pre.len() + (n - o);
            let len = if rest + 9 <= 64 { 64 } else { 128 };
            let mut bufs = [[0u8; 128]; N];
            for (buf, m) in bufs.iter_mut().zip(m) {
                buf[..pre.len()].copy_from_slice(pre);
                buf[pre.len()..rest].copy_from_slice(&m[o..]);
                buf[rest] = 0x80;
                buf[len - 8..len].copy_from_slice(&bits.to_be_bytes());
            }
            // SAFETY: as above.
            unsafe { sha256_compress(&mut st, bufs.each_ref().map(|b| &b[..len])) };
            for (s, d) in st.iter().zip(out) {
                for (w, o) in s.iter().zip(d.chunks_exact_mut(4)) {
                    o.copy_from_slice(&w.to_be_bytes());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Test payload: SHA-256 in counter mode (any bytes do; these are not all alike).
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        (0u64..)
            .flat_map(|i| {
                Sha256::new()
                    .chain_update(seed.to_le_bytes())
                    .chain_update(i.to_le_bytes())
                    .finalize()
            })
            .take(n)
            .collect()
    }

    fn reference(salt: &[u8], data: &[u8], block: usize) -> Vec<u8> {
        data.chunks(block)
            .flat_map(|b| Sha256::new().chain_update(salt).chain_update(b).finalize())
            .collect()
    }

    fn check(salt_len: usize, block: usize, count: usize) {
        let salt = bytes(salt_len, salt_len as u64 + 1);
        let data = bytes(block * count, (block * 131 + count) as u64);
        let want = reference(&salt, &data, block);
        for h in [SaltedSha256::new(&salt), SaltedSha256::generic_only(&salt)] {
            let mut got = vec![0u8; count * 32];
            h.blocks(&data, block, &mut got);
            assert_eq!(
                got,
                want,
                "salt {salt_len} B, block {block} B, {count} blocks, accelerated {}",
                h.accelerated()
            );
        }
    }

    #[test]
    fn equals_sha2_for_every_salt_length_and_block_edge() {
        // Block sizes around the padding edges (55/56 bytes left, one or two final blocks),
        // with salts that end inside, at and past a 64-byte block.
        for salt_len in 0..=130 {
            for block in [1, 8, 23, 24, 55, 56, 63, 64, 65, 119, 120, 128, 512, 4096] {
                check(salt_len, block, 3);
            }
        }
        for salt_len in [192, 255, 256] {
            check(salt_len, 4096, 5);
        }
    }

    #[test]
    fn verity_sizes_many_blocks() {
        for count in [1, 2, 7, 64] {
            check(32, 4096, count);
            check(32, 512, count);
        }
    }

    #[test]
    fn known_answer() {
        // SHA-256("abc"), FIPS 180-4 example, as salt "a" and block "bc" and as salt "" and
        // block "abc".
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        for (salt, block) in [(&b"a"[..], &b"bc"[..]), (b"", b"abc")] {
            let h = SaltedSha256::new(salt);
            let mut out = [0u8; 64];
            h.blocks(&[block, block].concat(), block.len(), &mut out);
            assert_eq!(hex::encode(&out[..32]), want);
            assert_eq!(hex::encode(&out[32..]), want);
        }
    }

    #[test]
    fn the_acceleration_is_used_where_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        if std::env::var_os("NODEIMG_SHA256_GENERIC").is_none() {
            assert_eq!(SaltedSha256::new(b"s").accelerated(), ni::available());
        }
    }
}
