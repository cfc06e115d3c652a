//! Makes text from other people safe to show on a terminal.
//!
//! Message texts, names, group names and file names come from other
//! accounts (or the server). Written raw, a control character in them is
//! obeyed by the terminal: `ESC[2J` clears the screen, `ESC]0;…BEL` sets the
//! window title, a C1 CSI (U+009B) moves the cursor, a bidi override makes
//! text read in another order than it is stored, and a newline starts a line
//! that looks like hush's own ("SECURITY: …"). Human output shows all of
//! them inert, as visible escapes (decision 0010):
//!
//! - C0 controls, DEL and C1 controls are written `\x1b`, `\x7f`, `\u{9b}`;
//! - bidi embeddings, overrides, isolates and marks (U+061C, U+200E, U+200F,
//!   U+202A–U+202E, U+2066–U+2069), the line and paragraph separators
//!   (U+2028, U+2029), the byte order mark (U+FEFF) and the interlinear
//!   annotation controls (U+FFF9–U+FFFB) are written `\u{202e}` and so on;
//! - in a message text, a newline stays a line break, but the next line is
//!   indented by [`CONTINUATION`] so that it can never pass for a line of
//!   its own; `\r\n` counts as one newline, and a tab is shown as spaces;
//! - in a name, a newline or tab is an escape like any other control.
//!
//! `--json` output is never filtered: it carries the exact text.

use std::borrow::Cow;
use std::fmt::Write as _;

/// What starts each further line of a multi-line message text.
pub const CONTINUATION: &str = "    | ";

/// How a tab in a message text is shown.
const TAB: &str = "    ";

/// Whether `c` must not reach a terminal as it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

fn escape_into(out: &mut String, c: char) {
    let n = u32::from(c);
    if n < 0x80 {
        let _ = write!(out, "\\x{n:02x}");
    } else {
        let _ = write!(out, "\\u{{{n:x}}}");
    }
}

/// A name (username, display name, group name, file name, id) for a
/// terminal: one line, every unsafe character shown as an escape.
pub fn name(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_unsafe(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A message text for a terminal: like [`name`], but line breaks stay
/// (each further line indented by [`CONTINUATION`]) and tabs become spaces.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                out.push('\n');
                out.push_str(CONTINUATION);
            }
            '\t' => out.push_str(TAB),
            c if is_unsafe(c) => escape_into(&mut out, c),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A whole line of hush's own output, as the last guard: every unsafe
/// character but the newline is escaped. Fields from other people went
/// through [`name`] or [`text`] already; this catches anything else (an
/// error message quoting the server, say).
pub fn line(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c != '\n' && is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c != '\n' && is_unsafe(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a hostile sender puts in a message.
    pub const ATTACK: &str =
        "hi\x1b[2J\x1b]0;pwned\x07\u{9b}31m\u{202e}txt.exe\nSECURITY: all fine\r\n\tok";

    #[test]
    fn nothing_unsafe_survives() {
        for shown in [name(ATTACK), text(ATTACK), line(ATTACK)] {
            assert!(
                !shown.chars().any(|c| c != '\n' && is_unsafe(c)),
                "{shown:?}"
            );
        }
        assert!(!name(ATTACK).contains('\n'));
    }

    #[test]
    fn escapes_are_visible_and_readable() {
        assert_eq!(
            name(ATTACK),
            "hi\\x1b[2J\\x1b]0;pwned\\x07\\u{9b}31m\\u{202e}txt.exe\\x0aSECURITY: all fine\\x0d\\x0a\\x09ok"
        );
        assert_eq!(
            text(ATTACK),
            "hi\\x1b[2J\\x1b]0;pwned\\x07\\u{9b}31m\\u{202e}txt.exe\n    | SECURITY: all fine\n    |     ok"
        );
    }

    #[test]
    fn ordinary_text_is_untouched() {
        let s = "héllo wörld 👋🏽 👨‍👩‍👧 مرحبا שלום";
        assert!(matches!(name(s), Cow::Borrowed(_)));
        assert!(matches!(text(s), Cow::Borrowed(_)));
        assert!(matches!(line("a\nb"), Cow::Borrowed(_)));
    }
}
