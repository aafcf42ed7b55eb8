//! Text ↔ token ids through the `tokenizers` crate: from a Hugging Face `tokenizer.json`, or
//! rebuilt from GGUF metadata when only a GGUF file is given (byte-level BPE `gpt2`
//! vocabularies exactly; SentencePiece `llama` vocabularies as a byte-fallback unigram model
//! over the stored scores).

use std::path::Path;

use serde_json::{Value, json};
use zoo_weights::gguf::{Gguf, MetaValue};

use crate::error::{InferError, Result};

/// Largest tokenizer file read.
const MAX_JSON: u64 = 256 << 20;

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Special tokens named in `tokenizer_config.json` or GGUF metadata.
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub pad_token: Option<String>,
}

fn tok_err(what: impl std::fmt::Display) -> InferError {
    InferError::Tokenizer(what.to_string())
}

/// A special token given as `"<s>"` or `{"content": "<s>", ...}`.
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let io = |e| InferError::Io { path: path.into(), source: e };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_JSON {
        return Err(InferError::config(path, format!("{len} bytes is too large for a JSON file")));
    }
    let text = std::fs::read_to_string(path).map_err(|e| InferError::Io { path: path.into(), source: e })?;
    serde_json::from_str(&text).map(Some).map_err(|e| InferError::config(path, format!("not valid JSON: {e}")))
}

impl Tokenizer {
    /// `tokenizer.json` of a Hugging Face folder, with special tokens from
    /// `tokenizer_config.json`; `None` when the folder has no `tokenizer.json`.
    pub fn from_folder(dir: &Path) -> Result<Option<Tokenizer>> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Ok(None);
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| tok_err(format!("{}: cannot load: {e}", path.display())))?;
        let cfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        Ok(Some(Tokenizer {
            inner,
            bos_token: token_text(cfg.get("bos_token")),
            eos_token: token_text(cfg.get("eos_token")),
            pad_token: token_text(cfg.get("pad_token")),
        }))
    }

    /// Rebuilds the tokenizer stored in GGUF metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let model = g.get("tokenizer.ggml.model").and_then(MetaValue::as_str).unwrap_or("");
        let json = match model {
            "gpt2" => zoo_weights::gguf_vocab::tokenizer_json_from_metadata(&g.metadata)
                .map(|(t, _)| t)
                .ok_or_else(|| tok_err(format!("{}: incomplete gpt2 vocabulary", g.path.display())))?,
            "llama" => sentencepiece_json(g)?,
            "" => return Err(tok_err(format!("{}: no tokenizer in the GGUF metadata", g.path.display()))),
            other => {
                return Err(tok_err(format!(
                    "{}: vocabulary type {other:?} is not supported (gpt2, llama)",
                    g.path.display()
                )));
            }
        };
        let inner = tokenizers::Tokenizer::from_bytes(json.to_string().as_bytes())
            .map_err(|e| tok_err(format!("{}: cannot rebuild the tokenizer: {e}", g.path.display())))?;
        let tokens = strings(g, "tokenizer.ggml.tokens").unwrap_or_default();
        let special = |k: &str| {
            g.get(&format!("tokenizer.ggml.{k}"))
                .and_then(MetaValue::as_u64)
                .and_then(|i| tokens.get(usize::try_from(i).ok()?).cloned())
        };
        Ok(Tokenizer {
            inner,
            bos_token: special("bos_token_id"),
            eos_token: special("eos_token_id"),
            pad_token: special("padding_token_id"),
        })
    }

    /// Token ids of `text`; `add_special` applies the tokenizer's own additions (LLaMA's BOS).
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        // Ids only: no character offsets are tracked (the same ids, less work).
        let enc = self.inner.encode_fast(text, add_special).map_err(tok_err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// A copy that cuts every encoding at `max_length` tokens, special tokens included, as
    /// transformers' `tokenizer(text, max_length=…, truncation=True)` does (the end is cut; the
    /// tokenizer's own special tokens stay).
    pub fn truncating(&self, max_length: usize) -> Result<Tokenizer> {
        let mut inner = self.inner.clone();
        inner
            .with_truncation(Some(tokenizers::TruncationParams {
                max_length,
                direction: tokenizers::TruncationDirection::Right,
                strategy: tokenizers::TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(tok_err)?;
        Ok(self.with_inner(inner))
    }

    /// A copy with `tokens` made special tokens, in order, as transformers'
    /// `add_special_tokens` does: a token in the vocabulary keeps its id (and is now split out
    /// of the text whole), a new one takes the next free id.
    pub fn with_special_tokens(&self, tokens: &[&str]) -> Result<Tokenizer> {
        let mut inner = self.inner.clone();
        for t in tokens {
            inner.add_special_tokens([tokenizers::AddedToken::from(t.to_string(), true)]).map_err(tok_err)?;
        }
        Ok(self.with_inner(inner))
    }

    fn with_inner(&self, inner: tokenizers::Tokenizer) -> Tokenizer {
        Tokenizer {
            inner,
            bos_token: self.bos_token.clone(),
            eos_token: self.eos_token.clone(),
            pad_token: self.pad_token.clone(),
        }
    }

    /// Text of `ids`, special tokens included (the chat loop cuts at stop strings itself).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, false).map_err(tok_err)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest id the tokenizer can produce.
    pub fn max_id(&self) -> u32 {
        let vocab = self.inner.get_vocab(true);
        vocab.values().copied().max().unwrap_or(0)
    }
}

fn strings(g: &Gguf, key: &str) -> Option<Vec<String>> {
    match g.get(key)? {
        MetaValue::Array(a) => a.iter().map(|v| v.as_str().map(str::to_string)).collect(),
        _ => None,
    }
}

/// A `tokenizer.json` for a SentencePiece (`llama`) GGUF vocabulary: a unigram model over the
/// stored scores with byte fallback, `▁` for spaces and a prepended `▁`, as LLaMA's fast
/// tokenizer does. The original BPE merge order is not stored in GGUF, so rare words may split
/// differently from the original `tokenizer.model`; ship the `tokenizer.json` when exactness
/// matters.
fn sentencepiece_json(g: &Gguf) -> Result<Value> {
    let path = g.path.display();
    let tokens = strings(g, "tokenizer.ggml.tokens")
        .ok_or_else(|| tok_err(format!("{path}: tokenizer.ggml.tokens is missing")))?;
    let scores: Vec<f64> = match g.get("tokenizer.ggml.scores") {
        Some(MetaValue::Array(a)) => a
            .iter()
            .map(|v| match v {
                MetaValue::F32(x) => f64::from(*x),
                MetaValue::F64(x) => *x,
                _ => 0.0,
            })
            .collect(),
        _ => vec![0.0; tokens.len()],
    };
    let types: Vec<u64> = match g.get("tokenizer.ggml.token_type") {
        Some(MetaValue::Array(a)) => a.iter().map(|v| v.as_u64().unwrap_or(1)).collect(),
        _ => Vec::new(),
    };
    let id = |k: &str| g.get(&format!("tokenizer.ggml.{k}")).and_then(MetaValue::as_u64);
    let unk = id("unknown_token_id").unwrap_or(0);
    let add_bos = !matches!(g.get("tokenizer.ggml.add_bos_token"), Some(MetaValue::Bool(false)));
    let vocab: Vec<Value> =
        tokens.iter().zip(scores.iter().chain(std::iter::repeat(&0.0))).map(|(t, s)| json!([t, s])).collect();
    // Control (3) and user-defined (4) tokens are matched whole in the text.
    let added: Vec<Value> = tokens
        .iter()
        .enumerate()
        .filter(|(i, _)| matches!(types.get(*i), Some(3) | Some(4)))
        .map(|(i, t)| {
            json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
                   "normalized": false, "special": types.get(i) == Some(&3)})
        })
        .collect();
    let bos = id("bos_token_id").and_then(|i| tokens.get(i as usize).cloned());
    let post = match (add_bos, bos) {
        (true, Some(b)) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {b.clone(): {"id": b, "ids": [id("bos_token_id")], "tokens": [b]}}
        }),
        _ => Value::Null,
    };
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
        ]},
        "pre_tokenizer": null,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}
        ]},
        "model": {"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": true}
    }))
}
