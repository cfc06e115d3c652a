//! A bounded binary reader and a matching writer.
//!
//! Every decoder in this crate reads through [`Reader`]: it knows how many bytes
//! remain, never indexes out of bounds, tells a truncated input ("incomplete")
//! from a malformed one ("invalid"), and [`Reader::finish`] rejects trailing bytes.
//! Integers are big-endian; variable-length fields carry a `u32` length prefix
//! checked against an explicit limit before anything is allocated.

use thiserror::Error;

/// Why a decoder refused its input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended before the value did.
    #[error("input is truncated: needed {needed} more bytes")]
    Incomplete {
        /// How many bytes were missing at the point of failure.
        needed: usize,
    },
    /// Bytes were left over after a complete value.
    #[error("{0} trailing bytes after a complete value")]
    TrailingBytes(usize),
    /// A length prefix exceeded the limit for its field.
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// The field being decoded.
        field: &'static str,
        /// The announced length.
        len: usize,
        /// The limit for that field.
        max: usize,
    },
    /// The bytes are complete but do not form a valid value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field being decoded.
        field: &'static str,
        /// What was wrong with it.
        reason: &'static str,
    },
    /// The encoding version is not one this build understands.
    #[error("unsupported encoding version {0}")]
    UnsupportedVersion(u8),
    /// A field marked mandatory is not known to this build.
    #[error("unknown mandatory field {tag:#06x} in {kind}")]
    UnknownMandatoryField {
        /// The structure being decoded.
        kind: &'static str,
        /// The unknown tag.
        tag: u16,
    },
}

/// Reads values from a byte slice, never past its end.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Succeeds only when every byte has been consumed.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::Incomplete {
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// A `u32`-length-prefixed byte string of at most `max` bytes.
    pub fn bytes(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        self.take(len)
    }

    /// A `u32`-length-prefixed UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, field: &'static str, max: usize) -> Result<&'a str, DecodeError> {
        let raw = self.bytes(field, max)?;
        std::str::from_utf8(raw).map_err(|_| DecodeError::Invalid {
            field,
            reason: "not UTF-8",
        })
    }

    /// A boolean encoded as 0 or 1; anything else is invalid.
    pub fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid {
                field,
                reason: "boolean is neither 0 nor 1",
            }),
        }
    }
}

/// Appends values in the encoding [`Reader`] reads.
#[derive(Debug, Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Raw bytes, no length prefix.
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.raw(&[v])
    }

    /// A big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.raw(&v.to_be_bytes())
    }

    /// A boolean as 0 or 1.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(u8::from(v))
    }

    /// A `u32`-length-prefixed byte string. Callers keep lengths within the
    /// field limits their decoder enforces, which are all far below `u32::MAX`.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.u32(len).raw(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_is_not_invalid() {
        let mut r = Reader::new(&[0, 0, 0, 5, 1, 2]);
        assert_eq!(r.bytes("f", 10), Err(DecodeError::Incomplete { needed: 3 }));
    }

    #[test]
    fn length_limit_is_checked_before_reading() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.bytes("f", 16),
            Err(DecodeError::TooLong {
                len: 0xffff_ffff,
                ..
            })
        ));
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut r = Reader::new(&[1, 2]);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.finish(), Err(DecodeError::TrailingBytes(1)));
    }
}
