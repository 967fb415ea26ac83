//! SHA-256 of many equal-length blocks under one salt — `SHA-256(salt ‖ block)`, the digest
//! dm-verity (format 1) stores for every data and hash block.
//!
//! Where the CPU has the SHA extensions, blocks are hashed two at a time: the two messages'
//! rounds are interleaved so that one's `sha256rnds2` runs while the other's result is still in
//! flight. One SHA-256 stream is bound by that instruction's latency, not by the core's
//! throughput, so two independent streams on one core go faster than one (measured by
//! `scripts/bench.sh`'s verity row). Elsewhere (or with `NODEIMG_SHA256_GENERIC=1`, for tests
//! and comparisons) every block goes through the `sha2` crate. Both give the same bytes; the unit
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
    pub fn accelerated(&self) -> bool {
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
        assert!(block > 0 && data.len() % block == 0, "whole blocks");
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
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        is_x86_feature_detected!("sha")
            && is_x86_feature_detected!("sse4.1")
            && is_x86_feature_detected!("ssse3")
    }

    /// FIPS 180-4 §4.2.2.
    #[rustfmt::skip]
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ];
    /// FIPS 180-4 §5.3.3.
    const IV: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];

    /// The state after the salt's whole 64-byte blocks, and the salt's remaining bytes.
    #[derive(Clone, Debug)]
    pub struct Prefix {
        state: State,
        tail: Vec<u8>,
        /// Length of the whole salt in bytes (the message length counts it).
        salt_len: u64,
    }

    impl Prefix {
        /// # Safety
        /// The CPU must have SHA, SSE4.1 and SSSE3 (`available()`).
        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
        pub unsafe fn new(salt: &[u8]) -> Self {
            let whole = salt.len() / 64 * 64;
            let mut state = unsafe { [load_state(&IV)] };
            unsafe { compress(&mut state, [&salt[..whole]]) };
            let [state] = state;
            Self {
                state,
                tail: salt[whole..].to_vec(),
                salt_len: salt.len() as u64,
            }
        }

        /// `SHA-256(salt ‖ m[i])` into `out[i]` for `N` messages of one length.
        ///
        /// # Safety
        /// The CPU must have SHA, SSE4.1 and SSSE3 (`available()`).
        #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
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
                unsafe { compress(&mut st, bufs.each_ref().map(|b| &b[..])) };
                o = 64 - r;
            }
            // Whole blocks straight from the data.
            let whole = (n - o) / 64 * 64;
            unsafe { compress(&mut st, m.map(|m| &m[o..o + whole])) };
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
            unsafe {
                compress(&mut st, bufs.each_ref().map(|b| &b[..len]));
                for (s, d) in st.into_iter().zip(out) {
                    store_digest(s, d);
                }
            }
        }
    }

    /// The state as the SHA instructions take it: (ABEF, CDGH), A and C in the top lane.
    type State = (__m128i, __m128i);

    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn load_state(h: &[u32; 8]) -> State {
        unsafe {
            let dcba = _mm_loadu_si128(h.as_ptr().cast());
            let hgfe = _mm_loadu_si128(h.as_ptr().add(4).cast());
            let cdab = _mm_shuffle_epi32(dcba, 0xB1);
            let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
            (
                _mm_alignr_epi8(cdab, efgh, 8),
                _mm_blend_epi16(efgh, cdab, 0xF0),
            )
        }
    }

    /// Writes the big-endian digest of a final state.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn store_digest((abef, cdgh): State, out: &mut [u8]) {
        assert_eq!(out.len(), 32);
        unsafe {
            let feba = _mm_shuffle_epi32(abef, 0x1B);
            let dchg = _mm_shuffle_epi32(cdgh, 0xB1);
            let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
            let hgfe = _mm_alignr_epi8(dchg, feba, 8);
            let swap = bswap_mask();
            _mm_storeu_si128(out.as_mut_ptr().cast(), _mm_shuffle_epi8(dcba, swap));
            _mm_storeu_si128(
                out.as_mut_ptr().add(16).cast(),
                _mm_shuffle_epi8(hgfe, swap),
            );
        }
    }

    /// Byte order of each 32-bit lane reversed (message words are big-endian).
    #[inline(always)]
    unsafe fn bswap_mask() -> __m128i {
        unsafe { _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203) }
    }

    /// Compresses each stream's 64-byte blocks into its state (all streams of one length), the
    /// streams' instructions interleaved.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn compress<const N: usize>(st: &mut [State; N], m: [&[u8]; N]) {
        let len = m[0].len();
        assert!(len % 64 == 0 && m.iter().all(|x| x.len() == len));
        unsafe {
            let swap = bswap_mask();
            let k = K.as_ptr();
            let mut s0: [__m128i; N] = st.map(|s| s.0);
            let mut s1: [__m128i; N] = st.map(|s| s.1);
            for at in (0..len).step_by(64) {
                let (save0, save1) = (s0, s1);
                let mut w = [[_mm_setzero_si128(); 4]; N];
                // Rounds 4i..4i+4 of every stream. Message words 16 and up come from the SHA
                // message instructions: W[t..t+4] = msg2(msg1(W[t-16..], W[t-12..]) +
                // W[t-7..t-3], W[t-4..]).
                macro_rules! group {
                    ($i:expr) => {{
                        const I: usize = $i;
                        let kk = _mm_loadu_si128(k.add(4 * I).cast());
                        let mut wk = [_mm_setzero_si128(); N];
                        for j in 0..N {
                            let w = &mut w[j];
                            w[I % 4] = if I < 4 {
                                _mm_shuffle_epi8(
                                    _mm_loadu_si128(m[j].as_ptr().add(at + 16 * I).cast()),
                                    swap,
                                )
                            } else {
                                _mm_sha256msg2_epu32(
                                    _mm_add_epi32(
                                        _mm_sha256msg1_epu32(w[I % 4], w[(I + 1) % 4]),
                                        _mm_alignr_epi8(w[(I + 3) % 4], w[(I + 2) % 4], 4),
                                    ),
                                    w[(I + 3) % 4],
                                )
                            };
                            wk[j] = _mm_add_epi32(w[I % 4], kk);
                        }
                        for j in 0..N {
                            s1[j] = _mm_sha256rnds2_epu32(s1[j], s0[j], wk[j]);
                        }
                        for j in 0..N {
                            s0[j] =
                                _mm_sha256rnds2_epu32(s0[j], s1[j], _mm_shuffle_epi32(wk[j], 0x0E));
                        }
                    }};
                }
                group!(0);
                group!(1);
                group!(2);
                group!(3);
                group!(4);
                group!(5);
                group!(6);
                group!(7);
                group!(8);
                group!(9);
                group!(10);
                group!(11);
                group!(12);
                group!(13);
                group!(14);
                group!(15);
                for j in 0..N {
                    s0[j] = _mm_add_epi32(s0[j], save0[j]);
                    s1[j] = _mm_add_epi32(s1[j], save1[j]);
                }
            }
            for j in 0..N {
                st[j] = (s0[j], s1[j]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
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
