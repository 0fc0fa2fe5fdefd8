//! Byte-pair encoding of one pre-tokenised word, as CLIP's vocabulary expects it: the word's
//! UTF-8 bytes are spelled with GPT-2's printable byte alphabet, its last symbol carries the
//! end-of-word suffix `</w>`, and adjacent symbols are merged by merge rank until no listed
//! pair remains.

use std::collections::HashMap;

/// GPT-2's reversible map from bytes to printable characters: the printable Latin-1 bytes
/// stand for themselves and the others are shifted to U+0100 onwards, in byte order.
pub(super) fn byte_alphabet() -> [char; 256] {
    let keeps_itself = |b: u32| {
        (u32::from('!')..=u32::from('~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut shifted = 0u32;
    for (byte, slot) in table.iter_mut().enumerate() {
        let b = byte as u32;
        let code = if keeps_itself(b) {
            b
        } else {
            shifted += 1;
            255 + shifted
        };
        // Every code here is below U+0200, a valid scalar value.
        *slot = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
    }
    table
}

/// The vocabulary and the merge table of a BPE model.
#[derive(Clone, Debug)]
pub(super) struct Bpe {
    /// Token string → id.
    pub vocab: HashMap<String, u32>,
    /// Pair of adjacent symbols → rank (lower merges first).
    pub ranks: HashMap<(String, String), usize>,
    /// Appended to a word's last symbol (`</w>` for CLIP).
    pub end_of_word_suffix: String,
    /// Id given to a symbol missing from the vocabulary.
    pub unk_id: Option<u32>,
}

impl Bpe {
    /// The ids of `word` (already in the byte alphabet). Symbols the vocabulary lacks become
    /// the unknown token, or are dropped when the model has none, as HF tokenizers does.
    pub fn encode_word(&self, word: &str, out: &mut Vec<u32>) {
        let mut symbols: Vec<String> = word.chars().map(String::from).collect();
        if let Some(last) = symbols.last_mut() {
            last.push_str(&self.end_of_word_suffix);
        }
        while symbols.len() > 1 {
            let best = symbols
                .windows(2)
                .filter_map(|pair| self.ranks.get(&(pair[0].clone(), pair[1].clone())))
                .min()
                .copied();
            let Some(rank) = best else { break };
            symbols = self.merge_all(symbols, rank);
        }
        out.extend(
            symbols
                .iter()
                .filter_map(|s| self.vocab.get(s).copied().or(self.unk_id)),
        );
    }

    /// Merges, left to right and without overlap, every adjacent pair whose rank is `rank`.
    fn merge_all(&self, symbols: Vec<String>, rank: usize) -> Vec<String> {
        let mut merged: Vec<String> = Vec::with_capacity(symbols.len());
        let mut i = 0;
        while i < symbols.len() {
            let joins = symbols.get(i + 1).is_some_and(|next| {
                self.ranks.get(&(symbols[i].clone(), next.clone())) == Some(&rank)
            });
            if joins {
                merged.push(format!("{}{}", symbols[i], symbols[i + 1]));
                i += 2;
            } else {
                merged.push(symbols[i].clone());
                i += 1;
            }
        }
        merged
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_a_bijection_onto_printable_characters() {
        let table = byte_alphabet();
        let mut seen: Vec<char> = table.to_vec();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
        assert_eq!(table[b'a' as usize], 'a');
        assert_eq!(table[b' ' as usize], '\u{120}');
        assert_eq!(table[0], '\u{100}');
        assert!(table.iter().all(|c| !c.is_whitespace() && !c.is_control()));
    }

    #[test]
    fn merges_follow_rank_not_position() {
        let vocab: HashMap<String, u32> = ["a", "b", "c</w>", "bc</w>", "ab", "abc</w>"]
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), i as u32))
            .collect();
        let ranks = [(("b", "c</w>"), 0), (("a", "bc</w>"), 1), (("a", "b"), 2)]
            .into_iter()
            .map(|((x, y), r)| ((x.to_string(), y.to_string()), r))
            .collect();
        let bpe = Bpe {
            vocab,
            ranks,
            end_of_word_suffix: "</w>".into(),
            unk_id: Some(99),
        };
        let mut ids = Vec::new();
        bpe.encode_word("abc", &mut ids);
        assert_eq!(ids, vec![5]);
        ids.clear();
        // "ab" then "ab" cannot merge further; the unknown last symbol "b</w>" becomes unk.
        bpe.encode_word("abab", &mut ids);
        assert_eq!(ids, vec![4, 0, 99]);
    }
}
