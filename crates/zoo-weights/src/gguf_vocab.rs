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
const UNUSED: i32 = 5;
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

/// One piece of a SentencePiece model: text, score, llama.cpp token type (the same numbers as
/// SentencePiece's own `Type` enum).
#[derive(Debug, Clone, PartialEq)]
pub struct SpmPiece {
    pub piece: String,
    pub score: f32,
    pub kind: i32,
}

/// Largest `tokenizer.model` read (LLaMA's is 500 KB; with a precompiled normalizer a few MB).
const MAX_SPM: u64 = 64 << 20;

/// Reads the pieces of a SentencePiece `tokenizer.model` (protobuf `ModelProto`, field 1:
/// repeated `SentencePiece { piece = 1; score = 2; type = 3 }`), as data: every length and
/// varint is checked, other fields are skipped by wire type.
pub fn read_sentencepiece(path: &Path) -> Result<Vec<SpmPiece>> {
    let len = std::fs::metadata(path).map_err(io_err(path, "stat"))?.len();
    if len > MAX_SPM {
        return Err(WeightsError::TensorTooLarge { tensor: path.display().to_string(), byte_len: len, limit: MAX_SPM });
    }
    let buf = std::fs::read(path).map_err(io_err(path, "read"))?;
    let err = |what: &str| bad(path, format!("not a SentencePiece model: {what}"));
    let mut pieces = Vec::new();
    let mut r = Proto { b: &buf, at: 0 };
    while !r.done() {
        let (field, wire) = r.key().ok_or_else(|| err("bad field key"))?;
        if field == 1 && wire == 2 {
            let body = r.bytes().ok_or_else(|| err("truncated piece"))?;
            let mut p = Proto { b: body, at: 0 };
            let mut piece = SpmPiece { piece: String::new(), score: 0.0, kind: NORMAL };
            while !p.done() {
                let (f, w) = p.key().ok_or_else(|| err("bad piece field"))?;
                match (f, w) {
                    (1, 2) => {
                        let t = p.bytes().ok_or_else(|| err("truncated piece text"))?;
                        piece.piece = String::from_utf8(t.to_vec()).map_err(|_| err("piece text is not UTF-8"))?;
                    }
                    (2, 5) => piece.score = f32::from_le_bytes(p.fixed32().ok_or_else(|| err("truncated score"))?),
                    (3, 0) => {
                        let k = p.varint().ok_or_else(|| err("bad piece type"))?;
                        piece.kind = i32::try_from(k).ok().filter(|k| (1..=6).contains(k)).unwrap_or(NORMAL);
                    }
                    _ => p.skip(w).ok_or_else(|| err("bad piece field"))?,
                }
            }
            pieces.push(piece);
        } else {
            r.skip(wire).ok_or_else(|| err("bad field"))?;
        }
    }
    if pieces.is_empty() {
        return Err(err("no pieces"));
    }
    Ok(pieces)
}

/// A protobuf reader over a byte slice; every method returns `None` at a malformed input.
struct Proto<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Proto<'a> {
    fn done(&self) -> bool {
        self.at >= self.b.len()
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.b.get(self.at)?;
            self.at += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        Some((k >> 3, (k & 7) as u8))
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }
    fn fixed32(&mut self) -> Option<[u8; 4]> {
        self.take(4)?.try_into().ok()
    }
    fn skip(&mut self, wire: u8) -> Option<()> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.bytes().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            _ => None,
        }
    }
}

/// `tokenizer.*` metadata from a SentencePiece `tokenizer.model`, as llama.cpp's converter
/// writes it (`_create_vocab_sentencepiece`): pieces with their scores and types, added tokens
/// beyond the model (from `tokenizer.json` / `tokenizer_config.json`) with score -1000 and
/// type control (special) or user-defined, and ids up to `vocab_size` filled with `[PADn]`,
/// score -10000, type unused.
fn spm_metadata(dir: &Path, config: &Value) -> Result<Vec<(String, MetaValue)>> {
    let path = dir.join("tokenizer.model");
    let pieces = read_sentencepiece(&path)?;
    let tok = read_json(&dir.join("tokenizer.json"))?.unwrap_or(Value::Null);
    let tcfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    // Added tokens: tokenizer.json's list, else tokenizer_config's `added_tokens_decoder`.
    let mut added = added_tokens(&tok);
    if added.is_empty()
        && let Some(dec) = tcfg.get("added_tokens_decoder").and_then(Value::as_object)
    {
        for (id, t) in dec {
            if let (Ok(id), Some(c)) = (id.parse::<u64>(), t.get("content").and_then(Value::as_str)) {
                added.push((id, c.to_string(), t.get("special").and_then(Value::as_bool).unwrap_or(false)));
            }
        }
    }
    let n_pieces = pieces.len() as u64;
    let top = added.iter().map(|a| a.0 + 1).max().unwrap_or(0);
    let n = config.get("vocab_size").and_then(Value::as_u64).unwrap_or(0).max(n_pieces).max(top);
    if n > 10_000_000 {
        return Err(bad(&path, format!("vocabulary of {n} tokens is absurd")));
    }
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000f32; n as usize];
    let mut types = vec![UNUSED; n as usize];
    let mut set = |i: usize, text: &str, score: f32, kind: i32| {
        if let (Some(t), Some(s), Some(k)) = (tokens.get_mut(i), scores.get_mut(i), types.get_mut(i)) {
            *t = text.to_string();
            *s = score;
            *k = kind;
        }
    };
    for (i, p) in pieces.iter().enumerate() {
        set(i, &p.piece, p.score, p.kind);
    }
    for (id, text, special) in &added {
        if *id >= n_pieces {
            set(*id as usize, text, -1000.0, if *special { CONTROL } else { USER_DEFINED });
        }
    }
    let find = |kind: i32| types.iter().position(|&t| t == kind).map(|i| i as u64);
    let id_of = |key: &str| -> Option<u64> {
        let text = tcfg.get(key).and_then(token_text)?;
        tokens.iter().position(|t| t == text).map(|i| i as u64)
    };
    let mut md = vec![
        ("tokenizer.ggml.model".to_string(), MetaValue::String("llama".into())),
        (
            "tokenizer.ggml.tokens".to_string(),
            MetaValue::Array(tokens.iter().cloned().map(MetaValue::String).collect()),
        ),
        ("tokenizer.ggml.scores".to_string(), MetaValue::Array(scores.into_iter().map(MetaValue::F32).collect())),
        (
            "tokenizer.ggml.token_type".to_string(),
            MetaValue::Array(types.iter().copied().map(MetaValue::I32).collect()),
        ),
    ];
    for (key, cfg_key, gguf) in [
        ("bos_token", "bos_token_id", "bos"),
        ("eos_token", "eos_token_id", "eos"),
        ("unk_token", "", "unknown"),
        ("pad_token", "pad_token_id", "padding"),
    ] {
        let id = id_of(key)
            .or_else(|| config.get(cfg_key).and_then(Value::as_u64))
            .or_else(|| if gguf == "unknown" { find(UNKNOWN) } else { None });
        if let Some(id) = id.and_then(|i| u32::try_from(i).ok()).filter(|&i| u64::from(i) < n) {
            md.push((format!("tokenizer.ggml.{gguf}_token_id"), MetaValue::U32(id)));
        }
    }
    for (k, gguf) in [("add_bos_token", "add_bos_token"), ("add_eos_token", "add_eos_token")] {
        if let Some(b) = tcfg.get(k).and_then(Value::as_bool) {
            md.push((format!("tokenizer.ggml.{gguf}"), MetaValue::Bool(b)));
        }
    }
    if let Some(t) = chat_template(dir, &tcfg)? {
        md.push(("tokenizer.chat_template".into(), MetaValue::String(t)));
    }
    Ok(md)
}

/// `tokenizer.json`'s `added_tokens`: (id, text, special).
fn added_tokens(tok: &Value) -> Vec<(u64, String, bool)> {
    tok.get("added_tokens")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| {
                    Some((
                        t.get("id")?.as_u64()?,
                        t.get("content")?.as_str()?.to_string(),
                        t.get("special").and_then(Value::as_bool).unwrap_or(false),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn chat_template(dir: &Path, tcfg: &Value) -> Result<Option<String>> {
    Ok(match tcfg.get("chat_template").and_then(Value::as_str) {
        Some(t) => Some(t.to_string()),
        None => {
            let p = dir.join("chat_template.jinja");
            if p.is_file() { Some(std::fs::read_to_string(&p).map_err(io_err(&p, "read"))?) } else { None }
        }
    })
}

/// The `tokenizer.*` metadata for the Hugging Face folder `dir`: from a SentencePiece
/// `tokenizer.model` when there is one and the architecture uses SentencePiece (LLaMA,
/// Baichuan, Gemma: what llama.cpp's converter reads first), else from `tokenizer.json`;
/// empty when it has neither. `config` is the model's `config.json` (for bos/eos ids as a fallback).
pub fn metadata_from_folder(dir: &Path, config: &Value) -> Result<Vec<(String, MetaValue)>> {
    let model_type = config.get("model_type").and_then(Value::as_str).unwrap_or_default();
    if dir.join("tokenizer.model").is_file() && matches!(model_type, "llama" | "baichuan" | "gemma") {
        return spm_metadata(dir, config);
    }
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
    let added = added_tokens(&tok);
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
    if let Some(t) = chat_template(dir, &tcfg)? {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/spm").join(name)
    }

    /// Every piece, score and type as the `sentencepiece` package itself reads them
    /// (tests/fixtures/spm/make_spm.py).
    #[test]
    fn sentencepiece_models_read_like_sentencepiece() {
        let got = read_sentencepiece(&fixture("tokenizer.model")).unwrap();
        let want: Value = serde_json::from_str(&std::fs::read_to_string(fixture("pieces.json")).unwrap()).unwrap();
        let want = want["pieces"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.piece, w["piece"].as_str().unwrap(), "piece {i}");
            assert_eq!(g.score, w["score"].as_f64().unwrap() as f32, "score of {i}");
            assert_eq!(i64::from(g.kind), w["type"].as_i64().unwrap(), "type of {i} {}", g.piece);
        }
        // The scores are real (BPE merge order), not zeros.
        assert!(got.iter().filter(|p| p.score < 0.0).count() > 100);
    }

    #[test]
    fn broken_sentencepiece_files_are_errors() {
        let bytes = std::fs::read(fixture("tokenizer.model")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (i, bad) in
            [&bytes[..bytes.len() / 2], &bytes[..3], b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff".as_slice(), b""]
                .iter()
                .enumerate()
        {
            let p = dir.path().join(format!("bad{i}.model"));
            std::fs::write(&p, bad).unwrap();
            assert!(read_sentencepiece(&p).is_err(), "case {i} was accepted");
        }
    }

    #[test]
    fn llama_folders_take_the_sentencepiece_vocabulary_with_added_and_padding_tokens() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture("tokenizer.model"), dir.path().join("tokenizer.model")).unwrap();
        // Chimera's shape: one special token added after the model's pieces, vocab padded.
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true,
                "added_tokens_decoder": {"400": {"content": "<pad>", "special": true}}}"#,
        )
        .unwrap();
        let cfg = json!({"model_type": "llama", "vocab_size": 402, "pad_token_id": 400});
        let md = metadata_from_folder(dir.path(), &cfg).unwrap();
        let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone()).unwrap();
        let MetaValue::Array(tokens) = get("tokenizer.ggml.tokens") else { panic!() };
        let MetaValue::Array(scores) = get("tokenizer.ggml.scores") else { panic!() };
        let MetaValue::Array(types) = get("tokenizer.ggml.token_type") else { panic!() };
        assert_eq!(tokens.len(), 402);
        assert_eq!(tokens[400], MetaValue::String("<pad>".into()));
        assert_eq!((scores[400].clone(), types[400].clone()), (MetaValue::F32(-1000.0), MetaValue::I32(CONTROL)));
        assert_eq!(tokens[401], MetaValue::String("[PAD401]".into()));
        assert_eq!((scores[401].clone(), types[401].clone()), (MetaValue::F32(-10000.0), MetaValue::I32(UNUSED)));
        assert_eq!(types[3], MetaValue::I32(USER_DEFINED), "<medical>");
        assert_eq!(get("tokenizer.ggml.model"), MetaValue::String("llama".into()));
        assert_eq!(get("tokenizer.ggml.bos_token_id"), MetaValue::U32(1));
        assert_eq!(get("tokenizer.ggml.eos_token_id"), MetaValue::U32(2));
        assert_eq!(get("tokenizer.ggml.unknown_token_id"), MetaValue::U32(0));
        assert_eq!(get("tokenizer.ggml.padding_token_id"), MetaValue::U32(400));
        assert_eq!(get("tokenizer.ggml.add_bos_token"), MetaValue::Bool(true));
    }
}
