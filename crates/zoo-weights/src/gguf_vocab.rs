//! The tokenizer as GGUF metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`), read from a
//! Hugging Face folder's `tokenizer.json` / `tokenizer_config.json` / `chat_template.jinja`,
//! and back to a `tokenizer.json` for byte-level BPE (`gpt2`) vocabularies.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::{Result, WeightsError, io_err};
use crate::gguf::MetaValue;

/// llama.cpp's token types.
const NORMAL: i32 = 1;
const UNKNOWN: i32 = 2;
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;
const BYTE: i32 = 6;

/// Largest tokenizer file read.
const MAX_JSON: u64 = 256 << 20;

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let len = std::fs::metadata(path).map_err(io_err(path, "stat"))?.len();
    if len > MAX_JSON {
        return Err(WeightsError::TensorTooLarge {
            tensor: path.display().to_string(),
            byte_len: len,
            limit: MAX_JSON,
        });
    }
    let text = std::fs::read_to_string(path).map_err(io_err(path, "read"))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| WeightsError::BadModelFile { path: path.into(), reason: format!("not valid JSON: {e}") })
}

fn bad(path: &Path, reason: impl Into<String>) -> WeightsError {
    WeightsError::BadModelFile { path: path.into(), reason: reason.into() }
}

/// A special token given as `"<s>"` or `{"content": "<s>", ...}`.
fn token_text(v: &Value) -> Option<&str> {
    v.as_str().or_else(|| v.get("content").and_then(Value::as_str))
}

/// The `tokenizer.*` metadata for the Hugging Face folder `dir`; empty when it has no
/// `tokenizer.json`. `config` is the model's `config.json` (for bos/eos ids as a fallback).
pub fn metadata_from_folder(dir: &Path, config: &Value) -> Result<Vec<(String, MetaValue)>> {
    let mut md = Vec::new();
    let tok_path = dir.join("tokenizer.json");
    let Some(tok) = read_json(&tok_path)? else { return Ok(md) };
    let tcfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    let model = tok.get("model").unwrap_or(&Value::Null);
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err(bad(
            &tok_path,
            format!(
                "tokenizer model {:?} is not supported (only BPE: byte-level `gpt2` or byte-fallback `llama`)",
                model.get("type")
            ),
        ));
    }
    let byte_fallback = model.get("byte_fallback").and_then(Value::as_bool).unwrap_or(false);
    let kind = if byte_fallback { "llama" } else { "gpt2" };
    let Some(vocab) = model.get("vocab").and_then(Value::as_object) else {
        return Err(bad(&tok_path, "model.vocab is missing"));
    };
    let mut pairs: Vec<(u64, &str)> = vocab.iter().filter_map(|(k, v)| Some((v.as_u64()?, k.as_str()))).collect();
    let added: Vec<(u64, &str, bool)> = tok
        .get("added_tokens")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t.get("id")?.as_u64()?,
                        t.get("content")?.as_str()?,
                        t.get("special").and_then(Value::as_bool).unwrap_or(false),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    for (id, text, _) in &added {
        if !pairs.iter().any(|(i, _)| i == id) {
            pairs.push((*id, text));
        }
    }
    pairs.sort_by_key(|p| p.0);
    let n = pairs.last().map_or(0, |p| p.0 + 1);
    if n > 10_000_000 {
        return Err(bad(&tok_path, format!("token id {n} is absurd")));
    }
    // Holes in the id space become `[PAD{id}]` tokens, as convert_hf_to_gguf.py writes them.
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut types = vec![USER_DEFINED; n as usize];
    for (id, text) in &pairs {
        if let (Some(t), Some(ty)) = (tokens.get_mut(*id as usize), types.get_mut(*id as usize)) {
            *t = (*text).to_string();
            *ty = if byte_fallback && text.len() == 6 && text.starts_with("<0x") && text.ends_with('>') {
                BYTE
            } else {
                NORMAL
            };
        }
    }
    for (id, _, special) in &added {
        if let Some(ty) = types.get_mut(*id as usize) {
            *ty = if *special { CONTROL } else { USER_DEFINED };
        }
    }
    let id_of = |key: &str| -> Option<u64> {
        let text = tcfg.get(key).and_then(token_text)?;
        vocab.get(text).and_then(Value::as_u64).or_else(|| added.iter().find(|a| a.1 == text).map(|a| a.0))
    };
    if let Some(unk) = id_of("unk_token")
        && let Some(ty) = types.get_mut(unk as usize)
    {
        *ty = UNKNOWN;
    }
    md.push(("tokenizer.ggml.model".into(), MetaValue::String(kind.into())));
    md.push(("tokenizer.ggml.tokens".into(), MetaValue::Array(tokens.into_iter().map(MetaValue::String).collect())));
    if kind == "llama" {
        md.push(("tokenizer.ggml.scores".into(), MetaValue::Array(vec![MetaValue::F32(0.0); n as usize])));
    }
    md.push(("tokenizer.ggml.token_type".into(), MetaValue::Array(types.into_iter().map(MetaValue::I32).collect())));
    let merges: Vec<MetaValue> = model
        .get("merges")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Array(p) => Some(format!("{} {}", p.first()?.as_str()?, p.get(1)?.as_str()?)),
                    _ => None,
                })
                .map(MetaValue::String)
                .collect()
        })
        .unwrap_or_default();
    if !merges.is_empty() {
        md.push(("tokenizer.ggml.merges".into(), MetaValue::Array(merges)));
    }
    for (key, cfg_key, gguf) in [
        ("bos_token", "bos_token_id", "bos"),
        ("eos_token", "eos_token_id", "eos"),
        ("unk_token", "", "unknown"),
        ("pad_token", "pad_token_id", "padding"),
    ] {
        let id = id_of(key).or_else(|| config.get(cfg_key).and_then(Value::as_u64));
        if let Some(id) = id.and_then(|i| u32::try_from(i).ok()) {
            md.push((format!("tokenizer.ggml.{gguf}_token_id"), MetaValue::U32(id)));
        }
    }
    if let Some(b) = tcfg.get("add_bos_token").and_then(Value::as_bool) {
        md.push(("tokenizer.ggml.add_bos_token".into(), MetaValue::Bool(b)));
    }
    let template = match tcfg.get("chat_template").and_then(Value::as_str) {
        Some(t) => Some(t.to_string()),
        None => {
            let p = dir.join("chat_template.jinja");
            if p.is_file() { Some(std::fs::read_to_string(&p).map_err(io_err(&p, "read"))?) } else { None }
        }
    };
    if let Some(t) = template {
        md.push(("tokenizer.chat_template".into(), MetaValue::String(t)));
    }
    Ok(md)
}

fn strings(md: &[(String, MetaValue)], key: &str) -> Option<Vec<String>> {
    match md.iter().find(|(k, _)| k == key)?.1 {
        MetaValue::Array(ref a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// A `tokenizer.json` (and the matching `tokenizer_config.json`) for a `gpt2` vocabulary in
/// GGUF metadata; `None` for other vocabularies, which need a SentencePiece model file.
pub fn tokenizer_json_from_metadata(md: &[(String, MetaValue)]) -> Option<(Value, Value)> {
    let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    if get("tokenizer.ggml.model")?.as_str()? != "gpt2" {
        return None;
    }
    let tokens = strings(md, "tokenizer.ggml.tokens")?;
    let merges = strings(md, "tokenizer.ggml.merges").unwrap_or_default();
    let types: Vec<i64> = match get("tokenizer.ggml.token_type") {
        Some(MetaValue::Array(a)) => a.iter().map(|v| v.as_u64().map_or(NORMAL.into(), |x| x as i64)).collect(),
        _ => Vec::new(),
    };
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), json!(i));
        let ty = types.get(i).copied().unwrap_or(NORMAL.into());
        if ty == i64::from(CONTROL) || ty == i64::from(USER_DEFINED) {
            added.push(json!({
                "id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": ty != i64::from(CONTROL), "special": ty == i64::from(CONTROL)
            }));
        }
    }
    let tok = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
            "vocab": vocab, "merges": merges
        }
    });
    let mut cfg = serde_json::Map::new();
    for (gguf, key) in [("bos", "bos_token"), ("eos", "eos_token"), ("unknown", "unk_token"), ("padding", "pad_token")]
    {
        if let Some(t) = get(&format!("tokenizer.ggml.{gguf}_token_id"))
            .and_then(MetaValue::as_u64)
            .and_then(|i| tokens.get(i as usize))
        {
            cfg.insert(key.into(), json!(t));
        }
    }
    if let Some(t) = get("tokenizer.chat_template").and_then(MetaValue::as_str) {
        cfg.insert("chat_template".into(), json!(t));
    }
    cfg.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
    Some((tok, Value::Object(cfg)))
}
