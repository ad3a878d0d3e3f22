//! How a gathered row's bytes reach the batch: touched first, so that a batch's cache misses
//! overlap, then copied without a call for small rows. A 68-byte row from the page cache
//! costs a few nanoseconds; the loops around it must cost less.

/// Reads a byte of every cache line of `bytes` (non-empty): loads the caller does not wait
/// on one by one. Three for rows up to 192 bytes, however they straddle lines.
#[inline]
pub(super) fn touch_lines(bytes: &[u8]) -> u8 {
    let n = bytes.len();
    if n <= 192 {
        return bytes[0] ^ bytes[n / 2] ^ bytes[n - 1];
    }
    bytes
        .iter()
        .step_by(64)
        .fold(bytes[n - 1], |acc, &b| acc ^ b)
}

/// `dst.copy_from_slice(src)`, without a call to `memcpy` for rows of 16 to 128 bytes: two
/// fixed-size copies that overlap in the middle, a few vector moves inline. A call costs
/// about as much as the copy of a 68-byte row itself, and a small-row gather copies little
/// else.
#[inline]
pub(super) fn copy_row(dst: &mut [u8], src: &[u8]) {
    assert_eq!(dst.len(), src.len(), "a row is copied whole");
    match dst.len() {
        16..=32 => copy_ends::<16>(dst, src),
        33..=64 => copy_ends::<32>(dst, src),
        65..=128 => copy_ends::<64>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Copies the first and the last `N` bytes of `src` (as long as `dst`, `N..=2 * N` bytes):
/// all of it.
#[inline(always)]
fn copy_ends<const N: usize>(dst: &mut [u8], src: &[u8]) {
    let n = dst.len();
    let head: [u8; N] = src[..N].try_into().expect("N bytes");
    let tail: [u8; N] = src[n - N..].try_into().expect("N bytes");
    dst[..N].copy_from_slice(&head);
    dst[n - N..].copy_from_slice(&tail);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every length copies exactly the source, around the sizes where the copy changes
    /// strategy, into a longer buffer whose other bytes stay as they were.
    #[test]
    fn copy_row_copies_every_length_whole() {
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for n in 0..=300 {
            let mut dst = vec![0xEEu8; n + 8];
            copy_row(&mut dst[4..4 + n], &src[..n]);
            assert_eq!(&dst[4..4 + n], &src[..n], "{n} bytes");
            assert!(dst[..4].iter().chain(&dst[4 + n..]).all(|&b| b == 0xEE));
        }
    }

    #[test]
    fn touch_lines_reads_the_first_and_last_bytes() {
        let mut row = vec![0u8; 68];
        row[0] = 1;
        row[67] = 2;
        assert_eq!(touch_lines(&row), 3);
        let mut long = vec![0u8; 1000];
        long[999] = 5;
        long[64] = 1;
        assert_eq!(touch_lines(&long), 4);
    }
}
