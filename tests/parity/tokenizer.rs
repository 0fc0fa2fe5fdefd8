//! `tokenizer`: CLIP tokenisation of `case.json.prompts` the way SD pipelines pad and
//! truncate, checked exactly against the peer's `input_ids`. When the folder holds both
//! layouts (`tokenizer.json` and `vocab.json` + `merges.txt`) each is checked.

use bevy_mvcustom::model::tokenizer::ClipTokenizer;
use candle_core::Device;

use super::common::{Case, Check};

/// Tokenises the case's prompts with every layout present and compares with `input_ids`.
pub fn run(case: &Case) -> Result<Vec<Check>, String> {
    let prompts: Vec<String> = case.json["prompts"]
        .as_array()
        .ok_or("case.json has no `prompts` array")?
        .iter()
        .map(|p| {
            p.as_str()
                .map(str::to_string)
                .ok_or("a prompt is not a string")
        })
        .collect::<Result<_, _>>()?;
    let theirs = case.io()?.get("input_ids")?;
    let dir = case.component("tokenizer");
    type Loader = fn(&std::path::Path) -> bevy_mvcustom::model::Result<ClipTokenizer>;
    let layouts: [(&str, &str, Loader); 2] = [
        (
            "input_ids",
            "tokenizer.json",
            ClipTokenizer::from_tokenizer_json,
        ),
        (
            "input_ids(vocab+merges)",
            "vocab.json",
            ClipTokenizer::from_vocab_and_merges,
        ),
    ];
    let mut checks = Vec::new();
    for (name, file, load) in layouts {
        if !dir.join(file).is_file() {
            continue;
        }
        let tokenizer = load(&dir).map_err(|e| e.to_string())?;
        let ours = tokenizer
            .encode_batch(&prompts, &Device::Cpu)
            .map_err(|e| e.to_string())?;
        checks.push(case.check(name, &ours, &theirs)?);
    }
    Ok(checks)
}
