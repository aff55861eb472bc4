// SPDX-License-Identifier: GPL-2.0

//! The text buffer device-mapper gives a target's `status` and `message`
//! callbacks.
//!
//! Kernel-free (only `core`), so the host crate tests it too.

use core::fmt::{self, Write};

/// A [`fmt::Write`] sink over a fixed byte buffer that never overflows.
///
/// It always keeps one byte free for a terminating NUL (see
/// [`finish_nul`](Self::finish_nul)). When some text does not fit, as much
/// of it as fits (cut at a character boundary) is stored, the writer is
/// marked truncated, the write returns [`fmt::Error`] and every later write
/// is dropped.
#[derive(Debug)]
pub struct BoundedWriter<'b> {
    /// The destination buffer.
    buf: &'b mut [u8],
    /// Bytes of text stored at the start of `buf`; always below
    /// `buf.len()` unless `buf` is empty.
    len: usize,
    /// Set once some text did not fit.
    truncated: bool,
}

impl<'b> BoundedWriter<'b> {
    /// Creates a writer that fills `buf` from its start.
    pub fn new(buf: &'b mut [u8]) -> Self {
        BoundedWriter {
            buf,
            len: 0,
            truncated: false,
        }
    }

    /// Number of text bytes written so far (not counting any NUL).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no text has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether some text was dropped because the buffer was full.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The text written so far, without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// How many more text bytes fit.
    fn room(&self) -> usize {
        self.buf.len().saturating_sub(1).saturating_sub(self.len)
    }

    /// Stores a NUL right after the text (a zero-length buffer gets none).
    pub fn finish_nul(&mut self) {
        if let Some(b) = self.buf.get_mut(self.len) {
            *b = 0;
        }
    }
}

impl Write for BoundedWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Err(fmt::Error);
        }
        let room = self.room();
        let mut take = s.len().min(room);
        while !s.is_char_boundary(take) {
            take = take.saturating_sub(1);
        }
        let src = s.as_bytes().get(..take).ok_or(fmt::Error)?;
        let end = self.len.checked_add(take).ok_or(fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(src);
        self.len = end;
        if take < s.len() {
            self.truncated = true;
            return Err(fmt::Error);
        }
        Ok(())
    }
}
