//! Consistent Overhead Byte Stuffing: the byte stuffing of the medgw link.
//!
//! COBS (S. Cheshire, M. Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM Transactions on
//! Networking 7(2), 1999) removes every `0x00` from a block so that `0x00` can delimit frames: a
//! receiver that joins the line mid-frame, or sees noise, is back in step at the next `0x00`. The
//! overhead is at most one byte per 254 bytes, however many zeros the data holds, which is what
//! bounds the frame buffer on both ends of the link.
//!
//! ```text
//!  data      11 22 00 33            (a zero is replaced by the distance to the next zero)
//!  encoded   03 11 22 02 33         code byte n: n-1 data bytes follow, then an implied 00
//!                                    (0xFF: 254 data bytes, no implied 00; the implied 00
//!                                     after the last block is not part of the data)
//! ```
//!
//! The encoder writes the shortest form: a final run of exactly 254 non-zero bytes ends with its
//! `0xFF` block, without the trailing `0x01` block that the paper's C listing appends (the form of
//! the Wikipedia examples and of most implementations). The decoder accepts both forms.

use crate::error::Error;

/// The longest encoding of `n` bytes: one code byte, plus one per 254 data bytes.
pub const fn max_encoded_len(n: usize) -> usize {
    n + n / 254 + 1
}

/// Encodes `src` into `dst` (without a delimiter); returns the encoded length.
pub fn encode(src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
    let needed = max_encoded_len(src.len());
    if dst.len() < needed {
        return Err(Error::BufferTooSmall { needed });
    }
    // From here every index is below `needed`, which `dst` holds: the indexing cannot fail.
    let mut code_at = 0;
    let mut out = 1;
    let mut code: u8 = 1;
    for (i, &b) in src.iter().enumerate() {
        if b == 0 {
            dst[code_at] = code;
            code_at = out;
            out += 1;
            code = 1;
        } else {
            dst[out] = b;
            out += 1;
            code += 1;
            if code == 0xFF {
                dst[code_at] = code;
                if i + 1 == src.len() {
                    // The shortest form: no empty block after a final full block.
                    return Ok(out);
                }
                code_at = out;
                out += 1;
                code = 1;
            }
        }
    }
    dst[code_at] = code;
    Ok(out)
}

/// Decodes `src` (one frame without its delimiter) into `dst`; returns the decoded length.
///
/// Errors: a `0x00` inside the frame (a delimiter cannot be data), a code byte that points past
/// the end of the frame ([`Error::Truncated`]), or a `dst` too small.
pub fn decode(src: &[u8], dst: &mut [u8]) -> Result<usize, Error> {
    let mut i = 0;
    let mut out = 0;
    while let Some(&code) = src.get(i) {
        if code == 0 {
            return Err(Error::BadField { field: "cobs code", value: 0 });
        }
        i += 1;
        let n = code as usize - 1;
        let block = src.get(i..i + n).ok_or(Error::Truncated { needed: i + n, got: src.len() })?;
        dst.get_mut(out..out + n).ok_or(Error::BufferTooSmall { needed: out + n })?.copy_from_slice(block);
        out += n;
        i += n;
        if code != 0xFF && i < src.len() {
            *dst.get_mut(out).ok_or(Error::BufferTooSmall { needed: out + 1 })? = 0;
            out += 1;
        }
    }
    Ok(out)
}

/// Decodes in place: the decoded bytes never overtake the encoded ones (each block loses its
/// code byte), so the accumulator needs no second buffer.
pub fn decode_in_place(buf: &mut [u8]) -> Result<usize, Error> {
    let mut i = 0;
    let mut out = 0;
    let len = buf.len();
    while let Some(&code) = buf.get(i) {
        if code == 0 {
            return Err(Error::BadField { field: "cobs code", value: 0 });
        }
        i += 1;
        let n = code as usize - 1;
        if i + n > len {
            return Err(Error::Truncated { needed: i + n, got: len });
        }
        buf.copy_within(i..i + n, out);
        out += n;
        i += n;
        if code != 0xFF && i < len {
            // out < i here: the zero overwrites a byte already consumed.
            if let Some(z) = buf.get_mut(out) {
                *z = 0;
            }
            out += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn enc(src: &[u8]) -> Vec<u8> {
        let mut dst = alloc::vec![0u8; max_encoded_len(src.len())];
        let n = encode(src, &mut dst).unwrap();
        dst.truncate(n);
        dst
    }

    fn dec(src: &[u8]) -> Result<Vec<u8>, Error> {
        let mut dst = alloc::vec![0u8; src.len()];
        let n = decode(src, &mut dst)?;
        dst.truncate(n);
        let mut inplace = src.to_vec();
        let m = decode_in_place(&mut inplace)?;
        assert_eq!(&inplace[..m], &dst[..], "in-place decoding differs");
        Ok(dst)
    }

    /// The worked examples of the COBS article on Wikipedia ("Consistent Overhead Byte
    /// Stuffing", Encoding examples 1–6), which follow Cheshire & Baker; delimiters removed.
    #[test]
    fn wikipedia_examples() {
        let cases: &[(&[u8], &[u8])] = &[
            (&[0x00], &[0x01, 0x01]),
            (&[0x00, 0x00], &[0x01, 0x01, 0x01]),
            (&[0x00, 0x11, 0x00], &[0x01, 0x02, 0x11, 0x01]),
            (&[0x11, 0x22, 0x00, 0x33], &[0x03, 0x11, 0x22, 0x02, 0x33]),
            (&[0x11, 0x22, 0x33, 0x44], &[0x05, 0x11, 0x22, 0x33, 0x44]),
            (&[0x11, 0x00, 0x00, 0x00], &[0x02, 0x11, 0x01, 0x01, 0x01]),
        ];
        for (data, encoded) in cases {
            assert_eq!(enc(data), *encoded, "encode {data:02x?}");
            assert_eq!(dec(encoded).unwrap(), *data, "decode {encoded:02x?}");
        }
    }

    /// Wikipedia examples 7–11: runs of 254 and 255 bytes, where the 0xFF block matters.
    #[test]
    fn wikipedia_long_runs() {
        // Example 7: 01..=FE (254 bytes) -> FF 01..=FE.
        let data: Vec<u8> = (0x01..=0xFE).collect();
        let mut want = alloc::vec![0xFF];
        want.extend(0x01..=0xFEu8);
        assert_eq!(enc(&data), want);
        assert_eq!(dec(&want).unwrap(), data);
        // The paper's form with a trailing empty block decodes to the same data.
        let mut paper = want.clone();
        paper.push(0x01);
        assert_eq!(dec(&paper).unwrap(), data);

        // Example 8: 00 01..=FE (255 bytes) -> 01 FF 01..=FE.
        let mut data = alloc::vec![0x00];
        data.extend(0x01..=0xFEu8);
        let mut want = alloc::vec![0x01, 0xFF];
        want.extend(0x01..=0xFEu8);
        assert_eq!(enc(&data), want);
        assert_eq!(dec(&want).unwrap(), data);

        // Example 9: 01..=FF (255 bytes) -> FF 01..=FE 02 FF.
        let data: Vec<u8> = (0x01..=0xFF).collect();
        let mut want = alloc::vec![0xFF];
        want.extend(0x01..=0xFEu8);
        want.extend([0x02, 0xFF]);
        assert_eq!(enc(&data), want);
        assert_eq!(dec(&want).unwrap(), data);

        // Example 10: 02..=FF 00 (255 bytes) -> FF 02..=FF 01 01.
        let mut data: Vec<u8> = (0x02..=0xFF).collect();
        data.push(0x00);
        let mut want = alloc::vec![0xFF];
        want.extend(0x02..=0xFFu8);
        want.extend([0x01, 0x01]);
        assert_eq!(enc(&data), want);
        assert_eq!(dec(&want).unwrap(), data);

        // Example 11: 03..=FF 00 01 (255 bytes) -> FE 03..=FF 02 01.
        let mut data: Vec<u8> = (0x03..=0xFF).collect();
        data.extend([0x00, 0x01]);
        let mut want = alloc::vec![0xFE];
        want.extend(0x03..=0xFFu8);
        want.extend([0x02, 0x01]);
        assert_eq!(enc(&data), want);
        assert_eq!(dec(&want).unwrap(), data);
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert_eq!(dec(&[0x05, 0x11, 0x22]), Err(Error::Truncated { needed: 5, got: 3 }));
        assert_eq!(dec(&[0x02, 0x11, 0x00, 0x22]), Err(Error::BadField { field: "cobs code", value: 0 }));
        let mut small = [0u8; 2];
        assert_eq!(decode(&[0x04, 1, 2, 3], &mut small), Err(Error::BufferTooSmall { needed: 3 }));
        assert_eq!(encode(&[1, 2, 3], &mut small), Err(Error::BufferTooSmall { needed: 4 }));
    }

    #[test]
    fn encoding_has_no_zero_and_bounded_overhead() {
        for len in [0usize, 1, 253, 254, 255, 508, 509, 600] {
            for fill in [0u8, 1, 0xFF] {
                let data: Vec<u8> = (0..len).map(|i| if fill == 1 { (i % 251) as u8 } else { fill }).collect();
                let e = enc(&data);
                assert!(!e.contains(&0), "len {len} fill {fill}");
                assert!(e.len() <= max_encoded_len(len));
                assert_eq!(dec(&e).unwrap(), data, "len {len} fill {fill}");
            }
        }
    }
}
