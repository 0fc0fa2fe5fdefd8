//! Reading a CLIP tokenizer folder in either of its two layouts: the HF tokenizers
//! `tokenizer.json`, or the older `vocab.json` + `merges.txt`; both optionally with
//! `tokenizer_config.json` naming the special tokens and `model_max_length`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::bpe::Bpe;
use crate::model::error::{ModelError, Result};
use crate::model::load::unsupported;

/// A token matched literally in the prompt before BPE (`<|startoftext|>`, a learned
/// subject token…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct AddedToken {
    /// The literal text.
    pub content: String,
    /// Its id.
    pub id: u32,
    /// Matched in the normalised (lower-cased) text rather than in the raw prompt.
    pub normalized: bool,
}

/// Everything read from a tokenizer folder, before special tokens are resolved to ids.
pub(super) struct TokenizerFiles {
    pub bpe: Bpe,
    pub added: Vec<AddedToken>,
    /// Beginning-of-text token (`<|startoftext|>` unless configured otherwise).
    pub bos: String,
    /// End-of-text token (`<|endoftext|>` unless configured otherwise).
    pub eos: String,
    /// Padding token (the end-of-text token unless configured otherwise).
    pub pad: String,
    pub max_length: Option<usize>,
    /// The file special tokens were named in, for error messages.
    pub names_from: PathBuf,
}

/// A token written either as a plain string or as `{"content": "...", ...}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenName {
    Plain(String),
    Object { content: String },
}

impl TokenName {
    fn as_str(&self) -> &str {
        match self {
            TokenName::Plain(s) | TokenName::Object { content: s } => s,
        }
    }
}

/// The special tokens a `tokenizer_config.json` names, as strings.
struct SpecialNames {
    bos: Option<String>,
    eos: Option<String>,
    pad: Option<String>,
    unk: Option<String>,
}

impl TokenizerConfig {
    fn names(&self) -> SpecialNames {
        let name = |t: &Option<TokenName>| t.as_ref().map(|t| t.as_str().to_string());
        SpecialNames {
            bos: name(&self.bos_token),
            eos: name(&self.eos_token),
            pad: name(&self.pad_token),
            unk: name(&self.unk_token),
        }
    }
}

#[derive(Deserialize)]
struct AddedTokenEntry {
    content: String,
    #[serde(default)]
    normalized: Option<bool>,
    #[serde(default)]
    special: bool,
}

impl AddedTokenEntry {
    /// HF's default: special tokens are matched in the raw text, others after normalisation.
    fn into_added(self, id: u32) -> AddedToken {
        AddedToken {
            normalized: self.normalized.unwrap_or(!self.special),
            content: self.content,
            id,
        }
    }
}

/// The fields of `tokenizer_config.json` the tokenizer uses.
#[derive(Deserialize, Default)]
struct TokenizerConfig {
    bos_token: Option<TokenName>,
    eos_token: Option<TokenName>,
    pad_token: Option<TokenName>,
    unk_token: Option<TokenName>,
    model_max_length: Option<f64>,
    #[serde(default)]
    added_tokens_decoder: BTreeMap<String, AddedTokenEntry>,
}

/// The fields of `tokenizer.json` the tokenizer uses.
#[derive(Deserialize)]
struct TokenizerJson {
    model: BpeModel,
    #[serde(default)]
    added_tokens: Vec<TokenizerJsonAdded>,
    #[serde(default)]
    post_processor: Option<PostProcessor>,
    #[serde(default)]
    padding: Option<Padding>,
    #[serde(default)]
    truncation: Option<Truncation>,
}

#[derive(Deserialize)]
struct BpeModel {
    #[serde(rename = "type")]
    kind: Option<String>,
    vocab: HashMap<String, u32>,
    merges: Vec<Merge>,
    unk_token: Option<String>,
    end_of_word_suffix: Option<String>,
    continuing_subword_prefix: Option<String>,
}

/// A merge written `"a b"` (older files) or `["a", "b"]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum Merge {
    Joined(String),
    Pair(String, String),
}

#[derive(Deserialize)]
struct TokenizerJsonAdded {
    id: u32,
    #[serde(flatten)]
    entry: AddedTokenEntry,
}

#[derive(Deserialize)]
struct PostProcessor {
    cls: Option<(String, u32)>,
    sep: Option<(String, u32)>,
}

#[derive(Deserialize)]
struct Padding {
    pad_token: Option<String>,
}

#[derive(Deserialize)]
struct Truncation {
    max_length: Option<usize>,
}

const END_OF_WORD: &str = "</w>";

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|source| ModelError::ConfigParse {
        path: path.to_path_buf(),
        source,
    })
}

fn read_text(path: &Path) -> Result<String> {
    if !path.is_file() {
        return Err(ModelError::MissingFile {
            path: path.to_path_buf(),
        });
    }
    std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `tokenizer_config.json` of `dir`, or the defaults when the folder has none.
fn read_config(dir: &Path) -> Result<(TokenizerConfig, PathBuf)> {
    let path = dir.join("tokenizer_config.json");
    if path.is_file() {
        Ok((read_json(&path)?, path))
    } else {
        Ok((TokenizerConfig::default(), path))
    }
}

/// `model_max_length` as an integer; huge sentinel values (transformers' "no limit") and
/// fractions are rejected since SD pipelines pad to this length.
fn max_length(value: Option<f64>, path: &Path) -> Result<Option<usize>> {
    match value {
        None => Ok(None),
        Some(v) if (2.0..=1e6).contains(&v) && v.fract() == 0.0 => Ok(Some(v as usize)),
        Some(v) => Err(unsupported(path, "model_max_length", v)),
    }
}

/// Builds the merge-rank table, checking, as HF tokenizers does, that both halves and the
/// merged symbol are in the vocabulary.
fn rank_merges(
    merges: impl Iterator<Item = (String, String)>,
    vocab: &HashMap<String, u32>,
    path: &Path,
) -> Result<HashMap<(String, String), usize>> {
    let mut ranks = HashMap::new();
    for (rank, (a, b)) in merges.enumerate() {
        for symbol in [&a, &b, &format!("{a}{b}")] {
            if !vocab.contains_key(symbol.as_str()) {
                return Err(unsupported(
                    path,
                    &format!("merge {rank} `{a} {b}`"),
                    format!("{symbol} is not in the vocabulary"),
                ));
            }
        }
        ranks.insert((a, b), rank);
    }
    Ok(ranks)
}

/// Reads `dir/tokenizer.json` (and `tokenizer_config.json` when present).
pub(super) fn from_tokenizer_json(dir: &Path) -> Result<TokenizerFiles> {
    let path = dir.join("tokenizer.json");
    let json: TokenizerJson = read_json(&path)?;
    let (config, config_path) = read_config(dir)?;
    let model = json.model;
    if let Some(kind) = model.kind.as_deref().filter(|k| *k != "BPE") {
        return Err(unsupported(&path, "model.type", kind));
    }
    if let Some(prefix) = model
        .continuing_subword_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        return Err(unsupported(
            &path,
            "model.continuing_subword_prefix",
            prefix,
        ));
    }
    let mut merges = Vec::with_capacity(model.merges.len());
    for (i, merge) in model.merges.into_iter().enumerate() {
        merges.push(match merge {
            Merge::Pair(a, b) => (a, b),
            Merge::Joined(line) => split_merge(&line)
                .ok_or_else(|| unsupported(&path, &format!("model.merges[{i}]"), &line))?,
        });
    }
    let ranks = rank_merges(merges.into_iter(), &model.vocab, &path)?;
    let added: Vec<AddedToken> = json
        .added_tokens
        .into_iter()
        .map(|t| t.entry.into_added(t.id))
        .collect();
    // Names missing from tokenizer_config.json fall back to what tokenizer.json implies.
    let mut names = config.names();
    let post = json.post_processor;
    names.bos = names
        .bos
        .or_else(|| post.as_ref().and_then(|p| p.cls.clone()).map(|c| c.0));
    names.eos = names.eos.or_else(|| post.and_then(|p| p.sep).map(|s| s.0));
    names.pad = names.pad.or(json.padding.and_then(|p| p.pad_token));
    names.unk = model.unk_token.or(names.unk);
    let max_length = max_length(config.model_max_length, &config_path)?
        .or(json.truncation.and_then(|t| t.max_length));
    let bpe = Bpe {
        vocab: model.vocab,
        ranks,
        end_of_word_suffix: model.end_of_word_suffix.unwrap_or_default(),
        unk_id: None,
    };
    finish(bpe, added, config, names, max_length, config_path, path)
}

/// Reads `dir/vocab.json` + `dir/merges.txt` (and `tokenizer_config.json` when present).
pub(super) fn from_vocab_and_merges(dir: &Path) -> Result<TokenizerFiles> {
    let vocab_path = dir.join("vocab.json");
    let merges_path = dir.join("merges.txt");
    let vocab: HashMap<String, u32> = read_json(&vocab_path)?;
    let text = read_text(&merges_path)?;
    let (config, config_path) = read_config(dir)?;
    let mut merges = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#version") || line.trim().is_empty() {
            continue;
        }
        let pair = split_merge(line)
            .ok_or_else(|| unsupported(&merges_path, &format!("line {}", i + 1), line))?;
        merges.push(pair);
    }
    let ranks = rank_merges(merges.into_iter(), &vocab, &merges_path)?;
    let names = config.names();
    let max_length = max_length(config.model_max_length, &config_path)?;
    let bpe = Bpe {
        vocab,
        ranks,
        end_of_word_suffix: END_OF_WORD.to_string(),
        unk_id: None,
    };
    finish(
        bpe,
        Vec::new(),
        config,
        names,
        max_length,
        config_path,
        vocab_path,
    )
}

/// Completes the added tokens with `tokenizer_config.json`'s `added_tokens_decoder` and the
/// special tokens, named or defaulted as `CLIPTokenizer` does (transformers matches BOS,
/// EOS, PAD and UNK literally in the raw prompt), and resolves the unknown token's id.
fn finish(
    mut bpe: Bpe,
    mut added: Vec<AddedToken>,
    config: TokenizerConfig,
    names: SpecialNames,
    max_length: Option<usize>,
    config_path: PathBuf,
    main_file: PathBuf,
) -> Result<TokenizerFiles> {
    merge_added(&mut added, config.added_tokens_decoder, &config_path)?;
    let bos = names.bos.unwrap_or_else(|| "<|startoftext|>".into());
    let eos = names.eos.unwrap_or_else(|| "<|endoftext|>".into());
    let unk = names.unk.unwrap_or_else(|| "<|endoftext|>".into());
    let pad = names.pad.unwrap_or_else(|| eos.clone());
    for content in [&bos, &eos, &pad, &unk] {
        if let Some(&id) = bpe.vocab.get(content)
            && !added.iter().any(|a| &a.content == content)
        {
            added.push(AddedToken {
                content: content.clone(),
                id,
                normalized: false,
            });
        }
    }
    bpe.unk_id = bpe
        .vocab
        .get(&unk)
        .copied()
        .or_else(|| added.iter().find(|a| a.content == unk).map(|a| a.id));
    Ok(TokenizerFiles {
        bpe,
        added,
        bos,
        eos,
        pad,
        max_length,
        names_from: if config_path.is_file() {
            config_path
        } else {
            main_file
        },
    })
}

/// `"a b"` → `("a", "b")`; `None` unless the line has exactly two space-separated parts.
fn split_merge(line: &str) -> Option<(String, String)> {
    let mut parts = line.split(' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
            Some((a.to_string(), b.to_string()))
        }
        _ => None,
    }
}

/// Adds `tokenizer_config.json`'s `added_tokens_decoder` entries not already known.
fn merge_added(
    added: &mut Vec<AddedToken>,
    decoder: BTreeMap<String, AddedTokenEntry>,
    path: &Path,
) -> Result<()> {
    for (id, entry) in decoder {
        let id: u32 = id
            .parse()
            .map_err(|_| unsupported(path, "added_tokens_decoder", &id))?;
        if !added.iter().any(|a| a.id == id) {
            added.push(entry.into_added(id));
        }
    }
    Ok(())
}
