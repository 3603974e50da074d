//! The one rule set for the text an event carries. Every string a store keeps must be printable
//! and bounded: PostgreSQL refuses NUL in `text`, BSON cannot hold NUL in a key, and an index
//! entry (the rollups' primary key holds a property value) has a size limit. The collector applies
//! these rules to every field of every endpoint, and the consumers to every envelope they decode,
//! so an event that breaks them is refused at the edge or dead-lettered, never retried forever.

use std::borrow::Cow;

/// Bounds in bytes of UTF-8 (a character may take up to four).
pub const MAX_SITE_LEN: usize = 253;
pub const MAX_NAME_LEN: usize = 120;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_REFERRER_LEN: usize = 2048;
pub const MAX_PROPS: usize = 30;
pub const MAX_PROP_KEY_LEN: usize = 300;
pub const MAX_PROP_VALUE_LEN: usize = 2000;
/// Derived attributes (source, UTM tags, browser, OS, device, country).
pub const MAX_ATTRIBUTE_LEN: usize = 800;
/// Latest event time an envelope may carry: 9999-12-31T23:59:59.999Z.
pub const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// What is wrong with one string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TextProblem {
    #[error("is empty")]
    Empty,
    #[error("is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("contains a control character (U+{code:04X}) at byte {at}")]
    ControlCharacter { code: u32, at: usize },
}

/// Checks that `text` is at most `max` bytes and holds no control character (Unicode category
/// Cc: C0, DEL and C1, NUL included).
pub fn check_text(text: &str, max: usize) -> Result<(), TextProblem> {
    if text.len() > max {
        return Err(TextProblem::TooLong { max });
    }
    // Almost all text is printable ASCII: a byte scan (vectorised) settles it without decoding.
    if is_printable_ascii(text) {
        return Ok(());
    }
    match text.char_indices().find(|(_, c)| c.is_control()) {
        Some((at, c)) => Err(TextProblem::ControlCharacter {
            code: u32::from(c),
            at,
        }),
        None => Ok(()),
    }
}

/// True when every byte is printable ASCII (space to `~`): no control character, C1 ones
/// included (those take two bytes, the first 0xC2).
fn is_printable_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// Like [`check_text`], and refuses the empty string.
pub fn check_required_text(text: &str, max: usize) -> Result<(), TextProblem> {
    if text.is_empty() {
        return Err(TextProblem::Empty);
    }
    check_text(text, max)
}

/// Text as stored from a source that may legitimately hold control characters (a decoded query
/// string, a page title): each run of control characters becomes one space, then the ends are
/// trimmed. Deterministic, so a replay of the same input stores the same text.
pub fn without_controls(text: &str) -> Cow<'_, str> {
    if is_printable_ascii(text) || !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut cleaned = String::with_capacity(text.len());
    let mut in_run = false;
    for c in text.chars() {
        if c.is_control() {
            if !in_run {
                cleaned.push(' ');
            }
            in_run = true;
        } else {
            cleaned.push(c);
            in_run = false;
        }
    }
    Cow::Owned(cleaned.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_fast_path_agrees_with_unicode_on_every_character_below_0x100() {
        for code in 0u32..0x100 {
            let c = char::from_u32(code).expect("a character");
            let text = format!("ab{c}cd");
            assert_eq!(
                check_text(&text, 100).is_ok(),
                !c.is_control(),
                "U+{code:04X}"
            );
            assert_eq!(
                matches!(without_controls(&text), Cow::Borrowed(_)),
                !c.is_control(),
                "U+{code:04X}"
            );
        }
    }

    #[test]
    fn control_characters_are_found_wherever_they_are() {
        assert_eq!(check_text("plain text é 日本", 100), Ok(()));
        for (text, at) in [("x\u{0}y", 1), ("\tx", 0), ("ab\u{7f}", 2), ("é\u{85}", 2)] {
            let code = text[at..].chars().next().map(u32::from).unwrap_or(0);
            assert_eq!(
                check_text(text, 100),
                Err(TextProblem::ControlCharacter { code, at }),
                "{text:?}"
            );
        }
        assert_eq!(check_text("abcd", 3), Err(TextProblem::TooLong { max: 3 }));
        assert_eq!(check_required_text("", 3), Err(TextProblem::Empty));
    }

    #[test]
    fn cleaning_replaces_runs_of_controls_with_one_space() {
        assert_eq!(without_controls("a\u{0}\u{1}b"), "a b");
        assert_eq!(without_controls("\u{0}Title\r\n"), "Title");
        assert!(matches!(without_controls("clean"), Cow::Borrowed("clean")));
        assert_eq!(
            check_text(&without_controls("\u{0}\u{9f}x\u{0}"), 10),
            Ok(())
        );
    }
}
