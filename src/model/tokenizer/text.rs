//! CLIP's text clean-up and pre-tokenisation, character-exact with the HF tokenizers
//! pipeline of SD checkpoints: NFC, every whitespace run → one space, per-character
//! lower-casing; then the split
//! `<|startoftext|>|<|endoftext|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`
//! (whitespace between matches dropped), then the byte-level pre-tokeniser's GPT-2 split of
//! each piece.

use unicode_general_category::{GeneralCategory as Gc, get_general_category};
use unicode_normalization_alignments::UnicodeNormalization;

/// NFC, whitespace runs collapsed to one ASCII space, lower-cased character by character
/// (HF tokenizers' `Lowercase` maps each char independently, without final-sigma context).
pub(super) fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for (c, _) in text.nfc() {
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            in_space = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// `\p{L}`: the general categories Lu, Ll, Lt, Lm, Lo.
fn is_letter(c: char) -> bool {
    matches!(
        get_general_category(c),
        Gc::UppercaseLetter
            | Gc::LowercaseLetter
            | Gc::TitlecaseLetter
            | Gc::ModifierLetter
            | Gc::OtherLetter
    )
}

/// `\p{N}`: the general categories Nd, Nl, No.
fn is_number(c: char) -> bool {
    matches!(
        get_general_category(c),
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber
    )
}

/// Which of the two split patterns to apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Grammar {
    /// CLIP's pattern: the two special-token literals first, one digit per piece.
    Clip,
    /// GPT-2's pattern of the byte-level pre-tokeniser, restricted to text without
    /// whitespace (which the CLIP split has already removed): runs of digits.
    ByteLevel,
}

const CONTRACTIONS: [&str; 7] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];
const SPECIAL_LITERALS: [&str; 2] = ["<|startoftext|>", "<|endoftext|>"];

/// Length in bytes of the piece starting at `rest` (non-empty, not starting with
/// whitespace), taking the first alternative of the grammar that matches, as a
/// leftmost-first regex engine does.
fn piece_len(rest: &str, grammar: Grammar) -> usize {
    let literal = |lits: &[&str]| lits.iter().find(|l| rest.starts_with(**l)).map(|l| l.len());
    let specials: &[&str] = match grammar {
        Grammar::Clip => &SPECIAL_LITERALS,
        Grammar::ByteLevel => &[],
    };
    if let Some(len) = literal(specials).or_else(|| literal(&CONTRACTIONS)) {
        return len;
    }
    let run = |pred: &dyn Fn(char) -> bool| {
        rest.char_indices()
            .find(|&(_, c)| !pred(c))
            .map_or(rest.len(), |(i, _)| i)
    };
    let first = rest.chars().next().unwrap_or(' ');
    if is_letter(first) {
        run(&is_letter)
    } else if is_number(first) {
        match grammar {
            Grammar::Clip => first.len_utf8(),
            Grammar::ByteLevel => run(&is_number),
        }
    } else {
        run(&|c| !c.is_whitespace() && !is_letter(c) && !is_number(c))
    }
}

/// Splits `text` into the pieces matched by `grammar`, dropping the whitespace between them.
fn split(text: &str, grammar: Grammar) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c.is_whitespace() {
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let len = piece_len(rest, grammar);
        pieces.push(&rest[..len]);
        rest = &rest[len..];
    }
    pieces
}

/// The words BPE sees for an already normalised text: the CLIP split, then the byte-level
/// split of each piece (which only ever divides a special-token literal written in the
/// prompt, e.g. `<|startoftext|>` after lower-casing, into `<|`, `startoftext`, `|>`).
pub(super) fn words(normalized: &str) -> Vec<&str> {
    split(normalized, Grammar::Clip)
        .into_iter()
        .flat_map(|piece| split(piece, Grammar::ByteLevel))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_collapses_whitespace_and_lowercases() {
        assert_eq!(normalize("  A\tRED\n\n Chair "), " a red chair ");
        // "e" + combining acute composes to "é" before lower-casing.
        assert_eq!(normalize("CAFE\u{301}"), "café");
        assert_eq!(normalize("Zürich\u{3000}☃"), "zürich ☃");
    }

    #[test]
    fn clip_split_matches_the_reference_pattern() {
        assert_eq!(
            words("a red chair, on the beach!!"),
            ["a", "red", "chair", ",", "on", "the", "beach", "!!"]
        );
        assert_eq!(words("it's 2024"), ["it", "'s", "2", "0", "2", "4"]);
        assert_eq!(words("snow-covered café"), ["snow", "-", "covered", "café"]);
        // A punctuation run swallows an apostrophe that no contraction follows.
        assert_eq!(words("!!'x ''s"), ["!!'", "x", "''", "s"]);
        assert_eq!(words("ⅻ½"), ["ⅻ", "½"]);
        assert_eq!(
            words("x<|endoftext|>y"),
            ["x", "<|", "endoftext", "|>", "y"]
        );
        assert_eq!(words("☃ ☃☃"), ["☃", "☃☃"]);
        assert!(words("   ").is_empty());
    }
}
