//! The field layer of the content codec: fields written in ascending tag
//! order, and read back with unknown optional fields skipped.

use super::{MAX_CONTENT_LEN, MAX_FIELDS, MessageId, OPTIONAL_FIELD};
use crate::codec::{DecodeError, Reader, Writer};

/// Writes fields, which callers emit in ascending tag order.
#[derive(Default)]
pub(super) struct FieldWriter {
    fields: Vec<(u16, Vec<u8>)>,
}

impl FieldWriter {
    pub(super) fn field(&mut self, tag: u16, write: impl FnOnce(&mut Writer) -> &mut Writer) {
        let mut w = Writer::new();
        write(&mut w);
        self.fields.push((tag, w.into_bytes()));
    }

    pub(super) fn opt_id(&mut self, tag: u16, id: Option<&MessageId>) {
        if let Some(id) = id {
            self.field(tag, |w| w.raw(&id.0));
        }
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.fields.sort_by_key(|(tag, _)| *tag);
        let mut w = Writer::new();
        for (tag, value) in &self.fields {
            w.u16(*tag).bytes(value);
        }
        w.into_bytes()
    }
}

/// The fields of one content, consumed as the decoder recognises them.
pub(super) struct Fields<'a> {
    fields: Vec<(u16, &'a [u8])>,
}

impl<'a> Fields<'a> {
    pub(super) fn parse(mut r: Reader<'a>) -> Result<Self, DecodeError> {
        let mut fields: Vec<(u16, &'a [u8])> = Vec::new();
        while r.remaining() > 0 {
            if fields.len() == MAX_FIELDS {
                return Err(DecodeError::TooLong {
                    field: "field count",
                    len: MAX_FIELDS + 1,
                    max: MAX_FIELDS,
                });
            }
            let tag = r.u16()?;
            let value = r.bytes("field", MAX_CONTENT_LEN)?;
            if fields.last().is_some_and(|(prev, _)| *prev >= tag) {
                return Err(DecodeError::Invalid {
                    field: "field order",
                    reason: "tags must be strictly ascending",
                });
            }
            fields.push((tag, value));
        }
        r.finish()?;
        Ok(Self { fields })
    }

    pub(super) fn take(&mut self, tag: u16) -> Option<&'a [u8]> {
        let pos = self.fields.iter().position(|(t, _)| *t == tag)?;
        Some(self.fields.remove(pos).1)
    }

    pub(super) fn opt<T>(
        &mut self,
        tag: u16,
        decode: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        let Some(raw) = self.take(tag) else {
            return Ok(None);
        };
        let mut r = Reader::new(raw);
        let value = decode(&mut r)?;
        r.finish()?;
        Ok(Some(value))
    }

    pub(super) fn req<T>(
        &mut self,
        field: &'static str,
        tag: u16,
        decode: impl FnOnce(&mut Reader<'a>) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        self.opt(tag, decode)?.ok_or(DecodeError::Invalid {
            field,
            reason: "missing",
        })
    }

    pub(super) fn skip_all(&mut self) {
        self.fields.clear();
    }

    /// Unknown optional fields are ignored; an unknown mandatory one is an error.
    pub(super) fn finish(self, kind: &'static str) -> Result<(), DecodeError> {
        match self.fields.iter().find(|(t, _)| t & OPTIONAL_FIELD == 0) {
            Some((tag, _)) => Err(DecodeError::UnknownMandatoryField { kind, tag: *tag }),
            None => Ok(()),
        }
    }
}
