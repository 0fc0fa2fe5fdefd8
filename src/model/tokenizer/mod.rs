//! The CLIP BPE tokenizer exactly as Stable Diffusion pipelines call transformers'
//! `CLIPTokenizer` (HF tokenizers backend): added tokens such as `<|endoftext|>` are matched
//! literally first; the rest is normalised (NFC, whitespace runs → one space, lower case),
//! split by CLIP's pattern, spelled in GPT-2's byte alphabet and BPE-encoded with `</w>`
//! word ends; then `<|startoftext|>` … `<|endoftext|>` are added, the content truncated to
//! fit `model_max_length` (77) and the rest padded with the pad token.

mod bpe;
mod files;
mod text;

use std::path::Path;

use candle_core::{Device, Tensor};

use self::bpe::{Bpe, byte_alphabet};
use self::files::{AddedToken, TokenizerFiles};
use crate::model::error::{ModelError, Result};
use crate::model::load::unsupported;

/// Length prompts are padded to when `tokenizer_config.json` does not say.
const DEFAULT_MAX_LENGTH: usize = 77;

/// CLIP's byte-level BPE tokenizer with SD's padding and truncation.
#[derive(Clone, Debug)]
pub struct ClipTokenizer {
    bpe: Bpe,
    added: Vec<AddedToken>,
    alphabet: [char; 256],
    bos_id: u32,
    eos_id: u32,
    pad_id: u32,
    max_length: usize,
}

/// A stretch of the prompt: plain text to BPE-encode, or an added token already matched.
enum Segment<'a> {
    Text(&'a str),
    Token(u32),
}

impl ClipTokenizer {
    /// Loads a tokenizer folder (e.g. `tokenizer/` of a diffusers checkpoint): from
    /// `tokenizer.json` when present, otherwise from `vocab.json` + `merges.txt`; special
    /// tokens and `model_max_length` from `tokenizer_config.json` when present.
    pub fn load(dir: &Path) -> Result<Self> {
        if dir.join("tokenizer.json").is_file() {
            Self::from_tokenizer_json(dir)
        } else if dir.join("vocab.json").is_file() {
            Self::from_vocab_and_merges(dir)
        } else {
            Err(ModelError::MissingFile {
                path: dir.join("tokenizer.json"),
            })
        }
    }

    /// Loads `dir/tokenizer.json` (HF tokenizers format; merges as `"a b"` strings or pairs).
    pub fn from_tokenizer_json(dir: &Path) -> Result<Self> {
        Self::from_files(files::from_tokenizer_json(dir)?)
    }

    /// Loads `dir/vocab.json` and `dir/merges.txt`.
    pub fn from_vocab_and_merges(dir: &Path) -> Result<Self> {
        Self::from_files(files::from_vocab_and_merges(dir)?)
    }

    fn from_files(files: TokenizerFiles) -> Result<Self> {
        let lookup = |content: &str| {
            files
                .added
                .iter()
                .find(|a| a.content == content)
                .map(|a| a.id)
                .or_else(|| files.bpe.vocab.get(content).copied())
        };
        let resolve = |field: &str, name: &str| {
            lookup(name).ok_or_else(|| unsupported(&files.names_from, field, name))
        };
        let bos_id = resolve("bos_token", &files.bos)?;
        let eos_id = resolve("eos_token", &files.eos)?;
        let pad_id = resolve("pad_token", &files.pad)?;
        Ok(Self {
            bpe: files.bpe,
            added: files.added,
            alphabet: byte_alphabet(),
            bos_id,
            eos_id,
            pad_id,
            max_length: files.max_length.unwrap_or(DEFAULT_MAX_LENGTH),
        })
    }

    /// Length of every encoded prompt (`model_max_length`, 77 for CLIP).
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Id of `<|startoftext|>` (or the configured BOS token).
    pub fn bos_id(&self) -> u32 {
        self.bos_id
    }

    /// Id of `<|endoftext|>` (or the configured EOS token).
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Id padding fills the sequence with.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// One more than the largest id this tokenizer can produce (added tokens included).
    pub fn vocab_size(&self) -> usize {
        let largest = self
            .bpe
            .vocab
            .values()
            .chain(self.added.iter().map(|a| &a.id))
            .max()
            .copied();
        largest.map_or(0, |m| m as usize + 1)
    }

    /// The id of a whole token string (an added token, or a vocabulary entry such as
    /// `"cat</w>"`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.added
            .iter()
            .find(|a| a.content == token)
            .map(|a| a.id)
            .or_else(|| self.bpe.vocab.get(token).copied())
    }

    /// Registers `content` (e.g. a subject token `<teddy>`) as a token matched literally in
    /// prompts and returns its id: the existing one if it is already an added token,
    /// otherwise [`Self::vocab_size`]. The text encoder has no row for a new id; its
    /// embedding is supplied at encoding time (customization learns it).
    pub fn add_token(&mut self, content: &str) -> Result<u32> {
        if content.is_empty() {
            return Err(ModelError::InvalidInput {
                name: "content".into(),
                reason: "an added token cannot be empty".into(),
            });
        }
        if let Some(existing) = self.added.iter().find(|a| a.content == content) {
            return Ok(existing.id);
        }
        let id = u32::try_from(self.vocab_size()).map_err(|_| ModelError::InvalidInput {
            name: "content".into(),
            reason: "vocabulary is full".into(),
        })?;
        self.added.push(AddedToken {
            content: content.to_string(),
            id,
            normalized: false,
        });
        Ok(id)
    }

    /// The BPE ids of `text` without BOS / EOS, padding or truncation.
    pub fn content_ids(&self, text: &str) -> Vec<u32> {
        let mut ids = Vec::new();
        for segment in self.split_added(text, false) {
            match segment {
                Segment::Token(id) => ids.push(id),
                Segment::Text(raw) => {
                    let normalized = text::normalize(raw);
                    for part in self.split_added(&normalized, true) {
                        match part {
                            Segment::Token(id) => ids.push(id),
                            Segment::Text(t) => self.encode_words(t, &mut ids),
                        }
                    }
                }
            }
        }
        ids
    }

    /// `<|startoftext|>`, the content truncated to `max_length − 2` ids, `<|endoftext|>`:
    /// the unpadded sequence.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut content = self.content_ids(text);
        content.truncate(self.max_length.saturating_sub(2));
        let mut ids = Vec::with_capacity(self.max_length);
        ids.push(self.bos_id);
        ids.extend(content);
        ids.push(self.eos_id);
        ids
    }

    /// [`Self::encode`] padded with the pad id to exactly `max_length` ids, as SD pipelines
    /// call the tokenizer (`padding="max_length"`, `truncation=True`).
    pub fn encode_padded(&self, text: &str) -> Vec<u32> {
        let mut ids = self.encode(text);
        ids.resize(self.max_length.max(ids.len()), self.pad_id);
        ids
    }

    /// The padded ids of every prompt as a `[N, max_length]` u32 tensor on `device`.
    pub fn encode_batch<S: AsRef<str>>(&self, prompts: &[S], device: &Device) -> Result<Tensor> {
        let ids: Vec<u32> = prompts
            .iter()
            .flat_map(|p| self.encode_padded(p.as_ref()))
            .collect();
        let rows = prompts.len();
        let cols = ids.len().checked_div(rows).unwrap_or(0);
        Ok(Tensor::from_vec(ids, (rows, cols), device)?)
    }

    /// Splits `text` around the added tokens matched in this form (raw or normalised),
    /// preferring, at each position, the longest token that starts there.
    fn split_added<'a>(&self, text: &'a str, normalized: bool) -> Vec<Segment<'a>> {
        let candidates: Vec<&AddedToken> = self
            .added
            .iter()
            .filter(|a| a.normalized == normalized)
            .collect();
        let mut segments = Vec::new();
        let mut start = 0;
        let mut pos = 0;
        while pos < text.len() {
            let rest = &text[pos..];
            let found = candidates
                .iter()
                .filter(|a| rest.starts_with(a.content.as_str()))
                .max_by_key(|a| a.content.len());
            match found {
                Some(token) => {
                    if start < pos {
                        segments.push(Segment::Text(&text[start..pos]));
                    }
                    segments.push(Segment::Token(token.id));
                    pos += token.content.len();
                    start = pos;
                }
                None => pos += rest.chars().next().map_or(1, char::len_utf8),
            }
        }
        if start < text.len() {
            segments.push(Segment::Text(&text[start..]));
        }
        segments
    }

    /// Pre-tokenises normalised text and appends the BPE ids of each word.
    fn encode_words(&self, normalized: &str, ids: &mut Vec<u32>) {
        for word in text::words(normalized) {
            let spelled: String = word.bytes().map(|b| self.alphabet[b as usize]).collect();
            self.bpe.encode_word(&spelled, ids);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_support::TempDir;

    const MERGES: [(&str, &str); 4] = [("c", "a"), ("ca", "t</w>"), ("d", "o"), ("do", "g</w>")];

    /// A miniature CLIP vocabulary: every byte character with and without `</w>`, the merged
    /// words `cat</w>` and `dog</w>` with their intermediate symbols, and the two specials.
    fn vocab() -> Vec<String> {
        let alphabet = byte_alphabet();
        let mut v: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
        v.extend(alphabet.iter().map(|c| format!("{c}</w>")));
        v.extend(MERGES.iter().map(|(a, b)| format!("{a}{b}")));
        v.extend(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
        v
    }

    fn vocab_json() -> String {
        let map: serde_json::Map<String, serde_json::Value> = vocab()
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, serde_json::Value::from(i)))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    fn write_vocab_and_merges(dir: &Path, merges_text: &str) {
        std::fs::write(dir.join("vocab.json"), vocab_json()).unwrap();
        std::fs::write(dir.join("merges.txt"), merges_text).unwrap();
    }

    fn merges_text() -> String {
        let lines: Vec<String> = MERGES.iter().map(|(a, b)| format!("{a} {b}")).collect();
        format!("#version: 0.2\n{}\n", lines.join("\n"))
    }

    /// `tokenizer.json` with merges as pairs or as joined strings.
    fn write_tokenizer_json(dir: &Path, pairs: bool, model_type: &str) {
        let v = vocab();
        let merges: Vec<serde_json::Value> = MERGES
            .iter()
            .map(|(a, b)| {
                if pairs {
                    serde_json::json!([a, b])
                } else {
                    serde_json::json!(format!("{a} {b}"))
                }
            })
            .collect();
        let vocab: serde_json::Map<String, serde_json::Value> = v
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), serde_json::Value::from(i)))
            .collect();
        let n = v.len();
        let json = serde_json::json!({
            "added_tokens": [
                {"id": n - 2, "content": "<|startoftext|>", "normalized": false, "special": true},
                {"id": n - 1, "content": "<|endoftext|>", "normalized": false, "special": true}
            ],
            "post_processor": {"type": "RobertaProcessing",
                "cls": ["<|startoftext|>", n - 2], "sep": ["<|endoftext|>", n - 1]},
            "model": {"type": model_type, "vocab": vocab, "merges": merges,
                "unk_token": "<|endoftext|>", "end_of_word_suffix": "</w>",
                "continuing_subword_prefix": ""}
        });
        std::fs::write(dir.join("tokenizer.json"), json.to_string()).unwrap();
    }

    fn id(t: &ClipTokenizer, token: &str) -> u32 {
        t.token_id(token).unwrap()
    }

    #[test]
    fn both_layouts_encode_alike_and_as_expected() {
        let tmp = TempDir::new("tok-layouts");
        write_vocab_and_merges(tmp.path(), &merges_text());
        let from_files = ClipTokenizer::from_vocab_and_merges(tmp.path()).unwrap();
        let prompts = ["a CAT", "  dog\tdog. ", "Cats, 42 dogs!", "café ☃", ""];
        for pairs in [true, false] {
            write_tokenizer_json(tmp.path(), pairs, "BPE");
            let from_json = ClipTokenizer::load(tmp.path()).unwrap();
            for p in prompts {
                assert_eq!(
                    from_json.encode_padded(p),
                    from_files.encode_padded(p),
                    "{p:?}"
                );
            }
        }
        let t = from_files;
        let ids = t.encode_padded("a CAT");
        let (bos, eos) = (t.bos_id(), t.eos_id());
        assert_eq!(&ids[..4], &[bos, id(&t, "a</w>"), id(&t, "cat</w>"), eos]);
        assert_eq!(ids.len(), 77);
        assert!(ids[4..].iter().all(|&i| i == eos));
        // "cats" has no merge to a word end: c·a merges, then t and s</w> stay apart.
        assert_eq!(
            t.content_ids("cats"),
            vec![id(&t, "ca"), id(&t, "t"), id(&t, "s</w>")]
        );
        // Digits are split one by one; "!" keeps its own word.
        assert_eq!(
            t.content_ids("42!"),
            vec![id(&t, "4</w>"), id(&t, "2</w>"), id(&t, "!</w>")]
        );
    }

    #[test]
    fn truncation_keeps_bos_and_eos() {
        let tmp = TempDir::new("tok-truncate");
        write_vocab_and_merges(tmp.path(), &merges_text());
        let t = ClipTokenizer::load(tmp.path()).unwrap();
        let long = "cat ".repeat(100);
        let ids = t.encode_padded(&long);
        assert_eq!(ids.len(), 77);
        assert_eq!((ids[0], ids[76]), (t.bos_id(), t.eos_id()));
        assert!(ids[1..76].iter().all(|&i| i == id(&t, "cat</w>")));
        let batch = t.encode_batch(&["cat", &long], &Device::Cpu).unwrap();
        assert_eq!(batch.dims(), &[2, 77]);
    }

    #[test]
    fn config_sets_length_and_pad_token() {
        let tmp = TempDir::new("tok-config");
        write_vocab_and_merges(tmp.path(), &merges_text());
        std::fs::write(
            tmp.path().join("tokenizer_config.json"),
            r#"{"model_max_length": 6, "pad_token": {"content": "!", "__type": "AddedToken"},
                "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}"#,
        )
        .unwrap();
        let t = ClipTokenizer::load(tmp.path()).unwrap();
        assert_eq!(t.max_length(), 6);
        assert_eq!(t.pad_id(), id(&t, "!"));
        let ids = t.encode_padded("dog");
        assert_eq!(
            ids,
            vec![
                t.bos_id(),
                id(&t, "dog</w>"),
                t.eos_id(),
                t.pad_id(),
                t.pad_id(),
                t.pad_id()
            ]
        );
    }

    #[test]
    fn special_and_added_tokens_match_literally() {
        let tmp = TempDir::new("tok-added");
        write_tokenizer_json(tmp.path(), true, "BPE");
        let mut t = ClipTokenizer::load(tmp.path()).unwrap();
        let (a, cat, eos) = (id(&t, "a</w>"), id(&t, "cat</w>"), t.eos_id());
        assert_eq!(t.content_ids("a<|endoftext|>cat"), vec![a, eos, cat]);
        // Upper case is not the special token: it is lower-cased and BPE-encoded in pieces.
        assert!(!t.content_ids("<|ENDOFTEXT|>").contains(&eos));
        let size = t.vocab_size() as u32;
        let teddy = t.add_token("<teddy>").unwrap();
        assert_eq!(teddy, size);
        assert_eq!(t.add_token("<teddy>").unwrap(), teddy);
        assert_eq!(t.content_ids("a <teddy> cat"), vec![a, teddy, cat]);
        assert_eq!(t.content_ids("a<teddy>cat"), vec![a, teddy, cat]);
        assert!(!t.content_ids("<Teddy>").contains(&teddy));
        assert!(matches!(
            t.add_token(""),
            Err(ModelError::InvalidInput { .. })
        ));
    }

    #[test]
    fn missing_files_are_named() {
        let tmp = TempDir::new("tok-missing");
        assert!(matches!(
            ClipTokenizer::load(tmp.path()),
            Err(ModelError::MissingFile { path }) if path.ends_with("tokenizer.json")
        ));
        std::fs::write(tmp.path().join("vocab.json"), vocab_json()).unwrap();
        assert!(matches!(
            ClipTokenizer::load(tmp.path()),
            Err(ModelError::MissingFile { path }) if path.ends_with("merges.txt")
        ));
    }

    #[test]
    fn malformed_files_are_named() {
        let tmp = TempDir::new("tok-malformed");
        write_vocab_and_merges(tmp.path(), "#version: 0.2\nc a\nc a t\n");
        match ClipTokenizer::load(tmp.path()) {
            Err(ModelError::UnsupportedConfig { path, field, .. }) => {
                assert!(path.ends_with("merges.txt"));
                assert_eq!(field, "line 3");
            }
            other => panic!("expected UnsupportedConfig, got {other:?}"),
        }
        write_vocab_and_merges(tmp.path(), "c a\nca x</w>\n");
        match ClipTokenizer::load(tmp.path()) {
            Err(ModelError::UnsupportedConfig { field, value, .. }) => {
                assert!(field.starts_with("merge 1"));
                assert!(value.contains("cax</w>"), "{value}");
            }
            other => panic!("expected UnsupportedConfig, got {other:?}"),
        }
        write_vocab_and_merges(tmp.path(), &merges_text());
        let config = tmp.path().join("tokenizer_config.json");
        std::fs::write(&config, r#"{"pad_token": "<pad>"}"#).unwrap();
        match ClipTokenizer::load(tmp.path()) {
            Err(ModelError::UnsupportedConfig { path, field, value }) => {
                assert_eq!(path, config);
                assert_eq!(field, "pad_token");
                assert!(value.contains("<pad>"));
            }
            other => panic!("expected UnsupportedConfig, got {other:?}"),
        }
        std::fs::write(&config, r#"{"model_max_length": 1e30}"#).unwrap();
        assert!(matches!(
            ClipTokenizer::load(tmp.path()),
            Err(ModelError::UnsupportedConfig { field, .. }) if field == "model_max_length"
        ));
        std::fs::write(&config, "{").unwrap();
        assert!(matches!(
            ClipTokenizer::load(tmp.path()),
            Err(ModelError::ConfigParse { path, .. }) if path == config
        ));
        std::fs::remove_file(&config).unwrap();
        write_tokenizer_json(tmp.path(), true, "WordPiece");
        assert!(matches!(
            ClipTokenizer::load(tmp.path()),
            Err(ModelError::UnsupportedConfig { field, .. }) if field == "model.type"
        ));
    }
}
