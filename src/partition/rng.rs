//! A tiny, frozen pseudo-random generator: SplitMix64, an unbiased bounded draw
//! (Lemire's multiply-shift rejection) and a Fisher–Yates shuffle.
//!
//! # Why hand-written
//!
//! Every rank and every DataLoader worker computes the partition and the serving
//! order *independently*, and a checkpoint written by one build must resume on
//! another. The sequences below are therefore part of trajstore's cross-version,
//! cross-platform contract. The `rand` family of crates reserves the right to
//! change streams between versions (and has done so), so we do not depend on it.
//! Everything here is plain wrapping 64-bit integer arithmetic and 64×64→128-bit
//! multiplication: no floats, no platform-dependent behaviour. Changing any
//! constant or step in this file is a breaking change of the partition contract
//! (`schema/partition.md`); the golden tests in `partition.rs` will catch it.
//!
//! SplitMix64 is not cryptographic and does not need to be: it only has to be
//! well mixed and identical everywhere.

/// The SplitMix64 state increment (2^64 / φ, rounded to odd).
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function (Stafford's "Mix13" variant of the MurmurHash3
/// finalizer). A bijection on `u64`, so distinct inputs give distinct outputs.
///
/// ```text
/// z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
/// z = (z ^ (z >> 27)) * 0x94D049BB133111EB
/// z =  z ^ (z >> 31)
/// ```
pub const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives the seed of an independent sub-stream from a user seed and a list of
/// words (a purpose constant, the epoch, a rank, ...).
///
/// ```text
/// h = seed
/// for w in words:  h = mix64((h ^ w) + GOLDEN_GAMMA)      (wrapping add)
/// ```
///
/// Adding the gamma before mixing avoids the fixed point `mix64(0) == 0`, so
/// seed 0 with all-zero words still gives a well-mixed stream. Words are folded
/// in order, so `[a, b]` and `[b, a]` give different streams.
pub fn derive_seed(seed: u64, words: &[u64]) -> u64 {
    words
        .iter()
        .fold(seed, |h, &w| mix64((h ^ w).wrapping_add(GOLDEN_GAMMA)))
}

/// SplitMix64 (Steele, Lea & Flood, 2014; reference code by Vigna).
///
/// `next_u64`: `state += GOLDEN_GAMMA; return mix64(state)` (wrapping add).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is `mix64(seed + GOLDEN_GAMMA)`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for the sub-stream `derive_seed(seed, words)`.
    pub fn derived(seed: u64, words: &[u64]) -> Self {
        Self::new(derive_seed(seed, words))
    }

    /// The next 64 uniformly distributed bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }

    /// A uniform integer in `0..n`, without modulo bias.
    ///
    /// Lemire, "Fast Random Integer Generation in an Interval" (2019):
    /// `m = x * n` as a 128-bit product; the high half is the candidate and the
    /// low half tells whether `x` fell into the biased sliver. With
    /// `t = (2^64 - n) mod n`, a draw is rejected (and a fresh `x` drawn) while
    /// `low(m) < t`. The cheap pre-check `low(m) < n` skips computing `t` almost
    /// always. The number of `next_u64` calls consumed is part of the contract.
    ///
    /// # Panics
    /// If `n == 0` (the interval is empty).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below: empty interval");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// In-place Fisher–Yates (Durstenfeld) shuffle, walking from the back:
    ///
    /// ```text
    /// for i in (1..len).rev():  j = below(i + 1);  swap(i, j)
    /// ```
    ///
    /// Exactly `len - 1` bounded draws (none for `len <= 1`).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// A seeded permutation of `0..n` evaluated one index at a time, in O(1) memory: `at(i)` is
/// where position `i` goes. Serving `at(0), at(1), ...` visits every index exactly once, and a
/// resume at position `p` needs nothing but `p` (no list of `n` indices to build or keep).
///
/// A 4-round Feistel network on the smallest even number of bits `2h` with `2^(2h) >= n`,
/// cycle-walked into `0..n` (re-applied while the result is `>= n`; the domain is at most 4n,
/// so a few steps at most):
///
/// ```text
/// keys[r] = derive_seed(seed, [r])                    r = 0..4
/// (L, R)  = (x >> h, x & (2^h - 1))
/// round r: (L, R) = (R, L ^ (mix64(R ^ keys[r]) & (2^h - 1)))
/// x'      = (L << h) | R
/// ```
///
/// The order is defined by the formula alone. How it is evaluated is not part of it: up to
/// [`TABULATED_HALF_BITS`], the round function is tabulated once (`rounds`) and a round is a
/// load; above, it is computed.
#[derive(Clone, Debug)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
    rounds: Rounds,
}

/// How [`Permutation`] evaluates its round function `mix64(R ^ keys[r]) & (2^h - 1)`.
#[derive(Clone, Debug)]
enum Rounds {
    /// Up to 8 bits a half (up to 65,536 units): four tables of 256 bytes, indexed by a byte,
    /// so that a round is a load with no bounds check (1 KiB, in the L1 cache).
    Bytes(Box<[[u8; 256]; 4]>),
    /// Up to [`TABULATED_HALF_BITS`]: `table[(r << h) | R]`.
    Wide(Vec<u16>),
    /// Above: computed.
    Computed,
}

/// Half widths up to which [`Permutation`] tabulates its round function: 4 tables of `2^h`
/// entries (bytes up to `h = 8`, 16 bits above), at most 512 KiB (128 KiB at 10^8 units,
/// `h = 14`), built with `4 * 2^h` evaluations of `mix64` (under a millisecond). A round is
/// then one load from a table that stays in a core's L2 cache instead of two 64-bit
/// multiplies, which the vector units of CPUs without AVX-512 do not have (each costs several
/// instructions there): evaluating a batch's positions went from ~9 ns to ~4.5 ns a position
/// at 5 * 10^4 units, and from ~23 to ~15 at 5 * 10^6 (where cycle walking applies the
/// network 3.4 times a position).
pub const TABULATED_HALF_BITS: u32 = 16;

impl Permutation {
    /// The permutation of `0..n` drawn by `seed`.
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let keys = [0, 1, 2, 3].map(|r| derive_seed(seed, &[r]));
        let mask = (1u64 << half_bits) - 1;
        let rounds = if half_bits <= 8 {
            let mut tables = Box::new([[0u8; 256]; 4]);
            for (table, &key) in tables.iter_mut().zip(&keys) {
                for (r, entry) in table.iter_mut().enumerate().take(1 << half_bits) {
                    *entry = (mix64(r as u64 ^ key) & mask) as u8;
                }
            }
            Rounds::Bytes(tables)
        } else if half_bits <= TABULATED_HALF_BITS {
            Rounds::Wide(
                keys.iter()
                    .flat_map(|&key| (0..=mask).map(move |r| (mix64(r ^ key) & mask) as u16))
                    .collect(),
            )
        } else {
            Rounds::Computed
        };
        Permutation {
            n,
            half_bits,
            keys,
            rounds,
        }
    }

    /// Where position `i` (below `n`) goes.
    pub fn at(&self, i: u64) -> u64 {
        assert!(i < self.n, "Permutation::at: {i} is not below {}", self.n);
        let mut x = i;
        loop {
            x = self.feistel(x);
            if x < self.n {
                return x;
            }
        }
    }

    /// `out[k] = self.at(start + k)` for every `k` (all below `n`): the same values, a batch
    /// at a time, without a branch per position on whether it walks: `at` alone branches on
    /// every walk step at random (a quarter of the positions walk at 5 * 10^4 units, 60% at
    /// 10^8 where the domain is 2.7n), a mispredicted branch that stalls the next positions'
    /// work. Each chunk of positions is taken through the network once, in a loop with no
    /// work carried from one position to the next, noting those still outside `0..n`; the
    /// walk then re-applies the network to those alone, until none is left.
    pub fn at_each(&self, start: u64, out: &mut [u64]) {
        let end = start.checked_add(out.len() as u64);
        assert!(
            end.is_some_and(|end| end <= self.n),
            "Permutation::at_each: {start} + {} is not below {}",
            out.len(),
            self.n
        );
        match &self.rounds {
            Rounds::Bytes(tables) => {
                let h = self.half_bits;
                self.walk_each(start, out, |x| feistel_bytes(tables, h, x));
            }
            Rounds::Wide(table) => {
                let h = self.half_bits;
                self.walk_each(start, out, |x| feistel_tabulated(table, h, x));
            }
            Rounds::Computed => self.walk_each_computed(start, out),
        }
    }

    /// [`Permutation::at_each`] with a tabulated network `feistel`: a position's rounds are
    /// loads, so the first pass notes the positions that walk as it goes, and the walk
    /// takes them through the network and notes those still outside in the same loop.
    #[inline(always)]
    fn walk_each(&self, start: u64, out: &mut [u64], feistel: impl Fn(u64) -> u64) {
        const CHUNK: usize = 256;
        for (c, chunk) in out.chunks_mut(CHUNK).enumerate() {
            let first = start + (c * CHUNK) as u64;
            // Where in `chunk` the positions still outside 0..n are.
            let mut walking = [0u8; CHUNK];
            let mut left = 0;
            for (k, x) in chunk.iter_mut().enumerate() {
                *x = feistel(first + k as u64);
                walking[left] = k as u8;
                left += usize::from(*x >= self.n);
            }
            while left > 0 {
                let mut still = 0;
                for w in 0..left {
                    let k = usize::from(walking[w]);
                    let x = feistel(chunk[k]);
                    chunk[k] = x;
                    walking[still] = k as u8;
                    still += usize::from(x >= self.n);
                }
                left = still;
            }
        }
    }

    /// [`Permutation::at_each`] with the network computed: applied to a whole chunk in one
    /// loop ([`feistel_each`]), which the compiler turns into vector code (8 positions per
    /// instruction with AVX-512, 4 with AVX2, picked at run time), the multiplies of `mix64`
    /// being most of a position's cost; the walk then gathers the positions still outside
    /// into a list and re-applies it to those.
    fn walk_each_computed(&self, start: u64, out: &mut [u64]) {
        const CHUNK: usize = 256;
        for (c, chunk) in out.chunks_mut(CHUNK).enumerate() {
            let first = start + (c * CHUNK) as u64;
            for (k, x) in chunk.iter_mut().enumerate() {
                *x = first + k as u64;
            }
            feistel_each(&self.keys, self.half_bits, chunk);
            // Positions still outside 0..n: where they are in `chunk`, and their values.
            let (mut at, mut walking) = ([0u16; CHUNK], [0u64; CHUNK]);
            let mut left = 0;
            for (k, &x) in chunk.iter().enumerate() {
                at[left] = k as u16;
                walking[left] = x;
                left += usize::from(x >= self.n);
            }
            while left > 0 {
                feistel_each(&self.keys, self.half_bits, &mut walking[..left]);
                let mut still = 0;
                for w in 0..left {
                    let (k, x) = (usize::from(at[w]), walking[w]);
                    chunk[k] = x;
                    at[still] = k as u16;
                    walking[still] = x;
                    still += usize::from(x >= self.n);
                }
                left = still;
            }
        }
    }

    fn feistel(&self, x: u64) -> u64 {
        match &self.rounds {
            Rounds::Bytes(tables) => feistel_bytes(tables, self.half_bits, x),
            Rounds::Wide(table) => feistel_tabulated(table, self.half_bits, x),
            Rounds::Computed => feistel(&self.keys, self.half_bits, x),
        }
    }

    /// Whether the round function is read from tables rather than computed.
    #[cfg(test)]
    fn tabulated(&self) -> bool {
        !matches!(self.rounds, Rounds::Computed)
    }
}

/// [`feistel`] on halves of `half_bits <= 8` bits, the round function read from `tables`
/// ([`Rounds::Bytes`]).
#[inline(always)]
fn feistel_bytes(tables: &[[u8; 256]; 4], half_bits: u32, x: u64) -> u64 {
    let mask = (1u64 << half_bits) - 1;
    let (mut left, mut right) = ((x >> half_bits) as u8, (x & mask) as u8);
    for table in tables {
        (left, right) = (right, left ^ table[usize::from(right)]);
    }
    (u64::from(left) << half_bits) | u64::from(right)
}

/// [`feistel`] with the round function read from `rounds` ([`Rounds::Wide`]). Loads
/// of independent values overlap: a batch of positions costs a few cycles a position, though
/// each position's four rounds wait on one another.
#[inline(always)]
fn feistel_tabulated(rounds: &[u16], half_bits: u32, x: u64) -> u64 {
    let mask = (1usize << half_bits) - 1;
    let (mut left, mut right) = ((x >> half_bits) as usize, x as usize & mask);
    for r in 0..4 {
        (left, right) = (right, left ^ usize::from(rounds[(r << half_bits) | right]));
    }
    ((left as u64) << half_bits) | right as u64
}

/// One pass of the balanced Feistel network (4 rounds of [`mix64`] keyed by `keys`) over
/// `2 * half_bits`-bit values.
#[inline(always)]
fn feistel(keys: &[u64; 4], half_bits: u32, x: u64) -> u64 {
    let mask = (1u64 << half_bits) - 1;
    let (mut left, mut right) = (x >> half_bits, x & mask);
    for &key in keys {
        (left, right) = (right, left ^ (mix64(right ^ key) & mask));
    }
    (left << half_bits) | right
}

/// [`feistel`] of every value in place: independent work per value, compiled for the best
/// vector unit the CPU has (the results are the same on every CPU: integer arithmetic).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2"))]
fn feistel_each(keys: &[u64; 4], half_bits: u32, xs: &mut [u64]) {
    for x in xs {
        *x = feistel(keys, half_bits, *x);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values of SplitMix64 seeded with 0 (Vigna's `splitmix64.c`).
    #[test]
    fn splitmix64_matches_reference_outputs() {
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(rng.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut rng = SplitMix64::new(7);
        for n in [1u64, 2, 3, 5, 10, 1000] {
            let mut seen = vec![false; n as usize];
            for _ in 0..20 * n {
                let v = rng.below(n);
                assert!(v < n);
                seen[v as usize] = true;
            }
            assert!(seen.iter().all(|&s| s), "n = {n}");
        }
        assert!(rng.below(u64::MAX) < u64::MAX);
    }

    /// `n` just above 2^63 rejects about half of all draws, so this exercises the
    /// rejection loop (these four calls consume six raw outputs); the values are
    /// frozen because the number of draws consumed is part of the contract.
    #[test]
    fn below_golden_values() {
        let mut rng = SplitMix64::new(42);
        let mut got: Vec<u64> = [6u64, 1 << 63 | 1, 1_000_000_007, 1 << 63 | 1]
            .iter()
            .map(|&n| rng.below(n))
            .collect();
        // The next raw output pins down how many draws the rejections consumed.
        got.push(rng.next_u64());
        assert_eq!(got, GOLDEN_BELOW);
    }
    const GOLDEN_BELOW: [u64; 5] = [
        4,
        1_474_913_046_063_446_145,
        278_601_132,
        8_007_990_562_831_494_531,
        4_028_864_712_777_624_925,
    ];

    #[test]
    fn derive_seed_golden_values() {
        assert_eq!(derive_seed(0, &[]), 0);
        assert_eq!(derive_seed(0, &[0]), mix64(GOLDEN_GAMMA));
        assert_eq!(derive_seed(0, &[0]), 0xE220_A839_7B1D_CDAF);
        assert_ne!(derive_seed(1, &[2, 3]), derive_seed(1, &[3, 2]));
    }

    #[test]
    fn shuffle_is_a_permutation_and_golden() {
        let mut v: Vec<u32> = (0..10).collect();
        SplitMix64::new(0).shuffle(&mut v);
        let mut sorted = v.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(v, GOLDEN_SHUFFLE);
    }
    const GOLDEN_SHUFFLE: [u32; 10] = [4, 9, 2, 5, 1, 7, 6, 0, 3, 8];

    #[test]
    fn shuffle_of_short_slices_draws_nothing() {
        let mut rng = SplitMix64::new(3);
        let mut empty: [u8; 0] = [];
        rng.shuffle(&mut empty);
        rng.shuffle(&mut [1u8]);
        assert_eq!(rng, SplitMix64::new(3));
    }

    #[test]
    fn permutation_visits_every_index_once() {
        for n in [1u64, 2, 3, 5, 16, 17, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let j = p.at(i);
                assert!(!seen[j as usize], "n {n}: {j} twice");
                seen[j as usize] = true;
            }
        }
    }

    #[test]
    fn permutation_depends_on_the_seed_and_moves_things() {
        let a: Vec<u64> = (0..1000).map(|i| Permutation::new(1000, 1).at(i)).collect();
        let b: Vec<u64> = (0..1000).map(|i| Permutation::new(1000, 2).at(i)).collect();
        assert_ne!(a, b);
        let fixed = a
            .iter()
            .enumerate()
            .filter(|(i, j)| *i as u64 == **j)
            .count();
        assert!(fixed < 20, "{fixed} fixed points of 1000");
    }

    /// `at_each` is `at` over a range, whatever the batch's length and where it starts,
    /// with domains that walk little (n just below a power of four) and much (just above).
    #[test]
    fn permutation_at_each_matches_at() {
        for n in [1u64, 2, 10, 1000, 1 << 20, (1 << 20) + 1, 3 << 20] {
            let p = Permutation::new(n, 9);
            for (start, len) in [(0u64, 0usize), (0, 1), (0, 700), (n / 3, 256), (n - 1, 1)] {
                let len = len.min((n - start) as usize);
                let mut out = vec![0; len];
                p.at_each(start, &mut out);
                let expected: Vec<u64> = (start..start + len as u64).map(|i| p.at(i)).collect();
                assert_eq!(out, expected, "n {n}, start {start}, len {len}");
            }
        }
    }

    /// `Permutation::new(10, 7)` in order: part of the sampler's contract (schema/partition.md).
    const GOLDEN_PERMUTATION: [u64; 10] = [1, 3, 6, 7, 9, 5, 4, 8, 2, 0];

    #[test]
    fn permutation_golden_values() {
        let p = Permutation::new(10, 7);
        let got: Vec<u64> = (0..10).map(|i| p.at(i)).collect();
        assert_eq!(got, GOLDEN_PERMUTATION);
    }

    /// The formula of schema/partition.md §1.5, evaluated the slow way: what the tabulated
    /// round function must give.
    fn at_by_formula(n: u64, seed: u64, i: u64) -> u64 {
        let bits = 64 - (n - 1).leading_zeros();
        let h = bits.div_ceil(2).max(1);
        let mask = (1u64 << h) - 1;
        let keys = [0, 1, 2, 3].map(|r| derive_seed(seed, &[r]));
        let mut x = i;
        loop {
            let (mut left, mut right) = (x >> h, x & mask);
            for key in keys {
                (left, right) = (right, left ^ (mix64(right ^ key) & mask));
            }
            x = (left << h) | right;
            if x < n {
                return x;
            }
        }
    }

    /// Tabulated (half widths up to `TABULATED_HALF_BITS`) and computed (above) round
    /// functions give the order of the formula, one position at a time and a batch at a
    /// time, on both sides of the threshold.
    #[test]
    fn tabulated_and_computed_rounds_follow_the_formula() {
        let mut rng = SplitMix64::new(11);
        let limit = 1u64 << (2 * TABULATED_HALF_BITS);
        for n in [
            3u64,
            50_000,
            5_000_000,
            100_000_000,
            limit - 1,
            limit,
            limit + 1,
            1 << 40,
        ] {
            let p = Permutation::new(n, 5);
            assert_eq!(p.tabulated(), n <= limit, "n {n}");
            let start = rng.below(n - n.min(300) + 1);
            let mut batch = vec![0; n.min(300) as usize];
            p.at_each(start, &mut batch);
            for (k, &got) in batch.iter().enumerate() {
                let i = start + k as u64;
                assert_eq!(got, at_by_formula(n, 5, i), "n {n}, position {i}");
                assert_eq!(p.at(i), got, "n {n}, position {i}");
            }
        }
    }

    /// Positions of stores of 5 * 10^4 to 10^8 steps and of more than 2^32 (where the round
    /// function is computed rather than tabulated), as the sampler served them before the
    /// tabulation: a resumed epoch continues the same order.
    #[test]
    fn permutation_golden_values_at_scale() {
        let golden: [(u64, [u64; 5]); 5] = [
            (50_000, [15227, 45259, 9505, 1370, 30029]),
            (5_000_000, [2852208, 1753310, 588078, 3699786, 495493]),
            (
                100_000_000,
                [49721017, 15940840, 41840525, 88287259, 89710640],
            ),
            (
                (1 << 32) + 3,
                [1864687317, 3452269225, 820158755, 2211556064, 3154800908],
            ),
            (
                (1 << 33) + 1,
                [4707052269, 3452269225, 5015430265, 7968582246, 3468656181],
            ),
        ];
        for (n, expected) in golden {
            let p = Permutation::new(n, 7);
            let got = [0, 1, 2, n / 2, n - 1].map(|i| p.at(i));
            assert_eq!(got, expected, "n {n}");
        }
    }
}
