//! SHA-256 and SHA-512 compression of several independent messages at once, one core.
//!
//! One SHA stream is a chain of dependent rounds: the core waits on each round's latency. Two
//! streams whose instructions are interleaved fill those waits. SHA-256 uses the SHA extensions
//! (`sha256rnds2`, any number of streams; two is fastest where measured); SHA-512 (and so
//! SHA-384) runs two streams in the two 64-bit lanes of AVX-512VL vectors (rotates and
//! three-input logic in one instruction each). Both are only compression functions over whole
//! blocks with caller-held states; padding is the caller's. Each has an `*_available()` check
//! that must be true before its `unsafe` function is called. The unit tests compare them with
//! the `sha2` crate's compression functions over random states and blocks.

/// FIPS 180-4 §4.2.2.
#[rustfmt::skip]
pub const K256: [u32; 64] = [
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
pub const IV256: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];
/// FIPS 180-4 §4.2.3 (the first 64 bits of the fractional parts of the cube roots of the first
/// 80 primes).
#[rustfmt::skip]
pub const K512: [u64; 80] = [
    0x428a2f98d728ae22, 0x7137449123ef65cd, 0xb5c0fbcfec4d3b2f, 0xe9b5dba58189dbbc,
    0x3956c25bf348b538, 0x59f111f1b605d019, 0x923f82a4af194f9b, 0xab1c5ed5da6d8118,
    0xd807aa98a3030242, 0x12835b0145706fbe, 0x243185be4ee4b28c, 0x550c7dc3d5ffb4e2,
    0x72be5d74f27b896f, 0x80deb1fe3b1696b1, 0x9bdc06a725c71235, 0xc19bf174cf692694,
    0xe49b69c19ef14ad2, 0xefbe4786384f25e3, 0x0fc19dc68b8cd5b5, 0x240ca1cc77ac9c65,
    0x2de92c6f592b0275, 0x4a7484aa6ea6e483, 0x5cb0a9dcbd41fbd4, 0x76f988da831153b5,
    0x983e5152ee66dfab, 0xa831c66d2db43210, 0xb00327c898fb213f, 0xbf597fc7beef0ee4,
    0xc6e00bf33da88fc2, 0xd5a79147930aa725, 0x06ca6351e003826f, 0x142929670a0e6e70,
    0x27b70a8546d22ffc, 0x2e1b21385c26c926, 0x4d2c6dfc5ac42aed, 0x53380d139d95b3df,
    0x650a73548baf63de, 0x766a0abb3c77b2a8, 0x81c2c92e47edaee6, 0x92722c851482353b,
    0xa2bfe8a14cf10364, 0xa81a664bbc423001, 0xc24b8b70d0f89791, 0xc76c51a30654be30,
    0xd192e819d6ef5218, 0xd69906245565a910, 0xf40e35855771202a, 0x106aa07032bbd1b8,
    0x19a4c116b8d2d0c8, 0x1e376c085141ab53, 0x2748774cdf8eeb99, 0x34b0bcb5e19b48a8,
    0x391c0cb3c5c95a63, 0x4ed8aa4ae3418acb, 0x5b9cca4f7763e373, 0x682e6ff3d6b2b8a3,
    0x748f82ee5defb2fc, 0x78a5636f43172f60, 0x84c87814a1f0ab72, 0x8cc702081a6439ec,
    0x90befffa23631e28, 0xa4506cebde82bde9, 0xbef9a3f7b2c67915, 0xc67178f2e372532b,
    0xca273eceea26619c, 0xd186b8c721c0c207, 0xeada7dd6cde0eb1e, 0xf57d4f7fee6ed178,
    0x06f067aa72176fba, 0x0a637dc5a2c898a6, 0x113f9804bef90dae, 0x1b710b35131c471b,
    0x28db77f523047d84, 0x32caab7b40c72493, 0x3c9ebe0a15c9bebc, 0x431d67c49c100d4c,
    0x4cc5d4becb3e42b6, 0x597f299cfc657e2a, 0x5fcb6fab3ad6faec, 0x6c44198c4a475817
];
/// FIPS 180-4 §5.3.4 (SHA-384's initial hash value).
pub const IV384: [u64; 8] = [
    0xcbbb9d5dc1059ed8,
    0x629a292a367cd507,
    0x9159015a3070dd17,
    0x152fecd8f70e5939,
    0x67332667ffc00b31,
    0x8eb44a8768581511,
    0xdb0c2e0d64f98fa7,
    0x47b5481dbefa4fa4,
];

/// Whether [`sha256_compress`] can run here (x86-64 with SHA, SSSE3, SSE4.1).
pub fn sha256_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("sse4.1")
        && is_x86_feature_detected!("ssse3");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Whether [`sha512_compress2`] can run here (x86-64 with AVX-512F and AVX-512VL).
pub fn sha512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vl");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Compresses each message's 64-byte blocks into its state; all messages have the same
/// length, a multiple of 64.
///
/// # Safety
/// [`sha256_available`] must be true.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn sha256_compress<const N: usize>(states: &mut [[u32; 8]; N], m: [&[u8]; N]) {
    use std::arch::x86_64::*;
    let len = m[0].len();
    assert!(len.is_multiple_of(64) && m.iter().all(|x| x.len() == len));
    if len == 0 {
        return;
    }
    // The state as the SHA instructions take it: ABEF and CDGH, A and C in the top lane.
    let mut s0 = [_mm_setzero_si128(); N];
    let mut s1 = [_mm_setzero_si128(); N];
    for j in 0..N {
        // SAFETY: 8 u32 are two 16-byte loads.
        let (dcba, hgfe) = unsafe {
            (
                _mm_loadu_si128(states[j].as_ptr().cast()),
                _mm_loadu_si128(states[j].as_ptr().add(4).cast()),
            )
        };
        let cdab = _mm_shuffle_epi32(dcba, 0xB1);
        let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
        s0[j] = _mm_alignr_epi8(cdab, efgh, 8);
        s1[j] = _mm_blend_epi16(efgh, cdab, 0xF0);
    }
    // Byte order of each 32-bit lane reversed (message words are big-endian).
    let swap = _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203);
    let k = K256.as_ptr();
    for at in (0..len).step_by(64) {
        let (save0, save1) = (s0, s1);
        let mut w = [[_mm_setzero_si128(); 4]; N];
        // Rounds 4i..4i+4 of every stream. Message words 16 and up come from the SHA message
        // instructions: W[t..t+4] = msg2(msg1(W[t-16..], W[t-12..]) + W[t-7..t-3], W[t-4..]).
        macro_rules! group {
            ($i:expr) => {{
                const I: usize = $i;
                // SAFETY: K256 has 64 words; I < 16.
                let kk = unsafe { _mm_loadu_si128(k.add(4 * I).cast()) };
                let mut wk = [_mm_setzero_si128(); N];
                for j in 0..N {
                    let w = &mut w[j];
                    w[I % 4] = if I < 4 {
                        // SAFETY: at + 64 <= len, the length of m[j].
                        _mm_shuffle_epi8(
                            unsafe { _mm_loadu_si128(m[j].as_ptr().add(at + 16 * I).cast()) },
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
                    s0[j] = _mm_sha256rnds2_epu32(s0[j], s1[j], _mm_shuffle_epi32(wk[j], 0x0E));
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
        let feba = _mm_shuffle_epi32(s0[j], 0x1B);
        let dchg = _mm_shuffle_epi32(s1[j], 0xB1);
        let dcba = _mm_blend_epi16(feba, dchg, 0xF0);
        let hgfe = _mm_alignr_epi8(dchg, feba, 8);
        // SAFETY: 8 u32 are two 16-byte stores.
        unsafe {
            _mm_storeu_si128(states[j].as_mut_ptr().cast(), dcba);
            _mm_storeu_si128(states[j].as_mut_ptr().add(4).cast(), hgfe);
        }
    }
}

/// Compresses two messages' 128-byte blocks into their SHA-512-family states (SHA-384 and
/// SHA-512 differ only in the initial state); both messages have the same length, a multiple
/// of 128.
///
/// # Safety
/// [`sha512_available`] must be true.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,avx512f,avx512vl")]
pub unsafe fn sha512_compress2(states: &mut [[u64; 8]; 2], m: [&[u8]; 2]) {
    use std::arch::x86_64::*;
    let len = m[0].len();
    assert!(len.is_multiple_of(128) && m[1].len() == len);
    // Lane 0 is the first message, lane 1 the second.
    let mut s: [__m128i; 8] =
        std::array::from_fn(|i| _mm_set_epi64x(states[1][i] as i64, states[0][i] as i64));
    let word = |b: &[u8], t: usize| u64::from_be_bytes(b[8 * t..8 * t + 8].try_into().unwrap());
    for at in (0..len).step_by(128) {
        let (a, b) = (&m[0][at..at + 128], &m[1][at..at + 128]);
        let save = s;
        let mut w: [__m128i; 16] =
            std::array::from_fn(|t| _mm_set_epi64x(word(b, t) as i64, word(a, t) as i64));
        for t in 0..80 {
            let wt = if t < 16 {
                w[t]
            } else {
                let (w2, w15) = (w[(t - 2) % 16], w[(t - 15) % 16]);
                let s1 = _mm_ternarylogic_epi64(
                    _mm_ror_epi64(w2, 19),
                    _mm_ror_epi64(w2, 61),
                    _mm_srli_epi64(w2, 6),
                    0x96,
                );
                let s0 = _mm_ternarylogic_epi64(
                    _mm_ror_epi64(w15, 1),
                    _mm_ror_epi64(w15, 8),
                    _mm_srli_epi64(w15, 7),
                    0x96,
                );
                let n = _mm_add_epi64(
                    _mm_add_epi64(s1, w[(t - 7) % 16]),
                    _mm_add_epi64(s0, w[t % 16]),
                );
                w[t % 16] = n;
                n
            };
            let [a, b, c, d, e, f, g, h] = s;
            let kw = _mm_add_epi64(wt, _mm_set1_epi64x(K512[t] as i64));
            // 0x96: x ^ y ^ z; 0xCA: Ch (e ? f : g); 0xE8: Maj.
            let big1 = _mm_ternarylogic_epi64(
                _mm_ror_epi64(e, 14),
                _mm_ror_epi64(e, 18),
                _mm_ror_epi64(e, 41),
                0x96,
            );
            let ch = _mm_ternarylogic_epi64(e, f, g, 0xCA);
            let t1 = _mm_add_epi64(_mm_add_epi64(h, kw), _mm_add_epi64(big1, ch));
            let big0 = _mm_ternarylogic_epi64(
                _mm_ror_epi64(a, 28),
                _mm_ror_epi64(a, 34),
                _mm_ror_epi64(a, 39),
                0x96,
            );
            let maj = _mm_ternarylogic_epi64(a, b, c, 0xE8);
            s = [
                _mm_add_epi64(t1, _mm_add_epi64(big0, maj)),
                a,
                b,
                c,
                _mm_add_epi64(d, t1),
                e,
                f,
                g,
            ];
        }
        for i in 0..8 {
            s[i] = _mm_add_epi64(s[i], save[i]);
        }
    }
    for (i, v) in s.iter().enumerate() {
        let mut lanes = [0u64; 2];
        // SAFETY: two u64 are one 16-byte store.
        unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), *v) };
        states[0][i] = lanes[0];
        states[1][i] = lanes[1];
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use crate::test_noise as bytes;
    use sha2::digest::generic_array::GenericArray;

    #[test]
    fn sha256_streams_equal_sha2_compression() {
        if !sha256_available() {
            eprintln!("SKIP: no SHA extensions on this CPU");
            return;
        }
        for blocks in [0, 1, 2, 5] {
            let m: [Vec<u8>; 3] =
                std::array::from_fn(|i| bytes(64 * blocks, (i * 7 + blocks) as u64));
            let init: [[u32; 8]; 3] = std::array::from_fn(|i| {
                let r = bytes(32, 99 + i as u64);
                std::array::from_fn(|j| u32::from_le_bytes(r[4 * j..4 * j + 4].try_into().unwrap()))
            });
            let mut want = init;
            for (s, msg) in want.iter_mut().zip(&m) {
                let b: Vec<_> = msg
                    .chunks(64)
                    .map(|c| *GenericArray::from_slice(c))
                    .collect();
                sha2::compress256(s, &b);
            }
            let mut one = [init[0]];
            let mut two = [init[0], init[1]];
            let mut three = init;
            // SAFETY: checked above.
            unsafe {
                sha256_compress(&mut one, [&m[0]]);
                sha256_compress(&mut two, [&m[0], &m[1]]);
                sha256_compress(&mut three, [&m[0], &m[1], &m[2]]);
            }
            assert_eq!(one[0], want[0], "{blocks} blocks, one stream");
            assert_eq!(two, [want[0], want[1]], "{blocks} blocks, two streams");
            assert_eq!(three, want, "{blocks} blocks, three streams");
        }
    }

    #[test]
    fn sha512_pairs_equal_sha2_compression() {
        if !sha512_available() {
            eprintln!("SKIP: no AVX-512VL on this CPU");
            return;
        }
        for blocks in [0, 1, 3, 8] {
            let m: [Vec<u8>; 2] =
                std::array::from_fn(|i| bytes(128 * blocks, (i * 5 + blocks) as u64));
            let init: [[u64; 8]; 2] = [IV384, {
                let r = bytes(64, 7);
                std::array::from_fn(|j| u64::from_le_bytes(r[8 * j..8 * j + 8].try_into().unwrap()))
            }];
            let mut want = init;
            for (s, msg) in want.iter_mut().zip(&m) {
                let b: Vec<_> = msg
                    .chunks(128)
                    .map(|c| *GenericArray::from_slice(c))
                    .collect();
                sha2::compress512(s, &b);
            }
            let mut got = init;
            // SAFETY: checked above.
            unsafe { sha512_compress2(&mut got, [&m[0], &m[1]]) };
            assert_eq!(got, want, "{blocks} blocks");
        }
    }

    #[test]
    fn the_constants_are_the_standards() {
        // SHA-384("abc") and SHA-256("abc") (FIPS 180-4 examples) from these constants alone.
        let mut block = [0u8; 128];
        block[..3].copy_from_slice(b"abc");
        block[3] = 0x80;
        block[127] = 24;
        let mut s = [IV384, IV384];
        if sha512_available() {
            // SAFETY: checked.
            unsafe { sha512_compress2(&mut s, [&block, &block]) };
            let d: Vec<u8> = s[0][..6].iter().flat_map(|w| w.to_be_bytes()).collect();
            assert_eq!(
                hex::encode(d),
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"
            );
        }
        let mut b64 = [0u8; 64];
        b64[..3].copy_from_slice(b"abc");
        b64[3] = 0x80;
        b64[63] = 24;
        let mut s = [IV256];
        if sha256_available() {
            // SAFETY: checked.
            unsafe { sha256_compress(&mut s, [&b64]) };
            let d: Vec<u8> = s[0].iter().flat_map(|w| w.to_be_bytes()).collect();
            assert_eq!(
                hex::encode(d),
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            );
        }
    }
}
