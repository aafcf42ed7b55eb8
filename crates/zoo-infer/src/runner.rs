//! Loading a runnable model from a path: a Hugging Face folder (`config.json`, safetensors or
//! `.bin` weights, `tokenizer.json`, chat template, `generation_config.json`) or a GGUF file
//! (everything from its metadata).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use zoo_weights::Checkpoint;

use crate::config::{ModelConfig, ids};
use crate::error::{InferError, Result};
use crate::generate::Session;
use crate::models::{self, CausalLm};
use crate::threads::Threads;
use crate::tokenizer::{Tokenizer, read_json};
use crate::weights::WeightSource;

/// Sampling defaults a model ships in `generation_config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationDefaults {
    pub do_sample: Option<bool>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<usize>,
    pub repetition_penalty: Option<f64>,
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The threads the model computes on (and codes its output head with at load).
    pub threads: Arc<Threads>,
}

impl Default for LoadOptions {
    /// Every core the process may use.
    fn default() -> LoadOptions {
        LoadOptions { threads: Threads::all_cores() }
    }
}

/// A model ready to run.
pub struct LoadedModel {
    /// The weights, shared by every sequence (`model.new_state()` starts one).
    pub model: Arc<dyn CausalLm>,
    /// One sequence over `model`, for callers that run one conversation.
    pub session: Session,
    pub tokenizer: Option<Tokenizer>,
    pub config: ModelConfig,
    /// Jinja source from `chat_template.jinja`, `tokenizer_config.json` or GGUF metadata.
    pub chat_template: Option<String>,
    /// Token ids that end generation (config, generation config and tokenizer eos).
    pub stop_ids: Vec<u32>,
    pub defaults: GenerationDefaults,
    /// The weights file or folder.
    pub source: PathBuf,
    /// `safetensors`, `pytorch`, `gguf`...
    pub format: &'static str,
}

/// Where a model's files are.
enum Layout {
    Hf(PathBuf),
    Gguf(PathBuf),
}

fn layout(path: &Path) -> Result<Layout> {
    if path.is_file() {
        return Ok(Layout::Gguf(path.to_path_buf()));
    }
    if !path.is_dir() {
        return Err(InferError::config(path, "no such file or folder"));
    }
    if path.join("config.json").is_file() {
        return Ok(Layout::Hf(path.to_path_buf()));
    }
    let io = |e| InferError::Io { path: path.into(), source: e };
    let mut ggufs: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    ggufs.sort();
    match ggufs.len() {
        1 => Ok(Layout::Gguf(ggufs.remove(0))),
        0 => Err(InferError::config(path, "no config.json and no .gguf file: not a model folder")),
        n => Err(InferError::config(path, format!("{n} .gguf files and no config.json: name the file to run"))),
    }
}

/// The Jinja template of a folder: `chat_template.jinja`, else `tokenizer_config.json`'s
/// `chat_template` (a string, or a list of named templates of which `default` is used).
fn folder_template(dir: &Path, tok_cfg: &Value) -> Result<Option<String>> {
    let file = dir.join("chat_template.jinja");
    if file.is_file() {
        let text = std::fs::read_to_string(&file).map_err(|e| InferError::Io { path: file, source: e })?;
        return Ok(Some(text));
    }
    Ok(match tok_cfg.get("chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or_else(|| list.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    })
}

/// The text side of a model, without its weights: what tokenizing and prompt rendering need
/// (`zoo data stats --tokenizer`, `zoo data render`).
pub struct TextSide {
    pub tokenizer: Option<Tokenizer>,
    pub chat_template: Option<String>,
    /// From `config.json` or GGUF metadata; `None` for a folder with no `config.json`.
    pub context_length: Option<usize>,
    pub source: PathBuf,
}

/// Reads the tokenizer, chat template and context length of the model at `path` (a folder,
/// a tokenizer-only folder, or a `.gguf` file) without loading any weights.
pub fn load_text(path: &Path) -> Result<TextSide> {
    if path.is_dir() && !path.join("config.json").is_file() && path.join("tokenizer.json").is_file() {
        let tok_cfg = read_json(&path.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        return Ok(TextSide {
            tokenizer: Tokenizer::from_folder(path)?,
            chat_template: folder_template(path, &tok_cfg)?,
            context_length: None,
            source: path.to_path_buf(),
        });
    }
    match layout(path)? {
        Layout::Hf(dir) => {
            let cfg_path = dir.join("config.json");
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| InferError::Io { path: cfg_path.clone(), source: e })?;
            let config = ModelConfig::from_hf_json(&cfg_path, &text)?;
            let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
            Ok(TextSide {
                tokenizer: Tokenizer::from_folder(&dir)?,
                chat_template: folder_template(&dir, &tok_cfg)?,
                context_length: Some(config.context_length),
                source: dir,
            })
        }
        Layout::Gguf(file) => {
            let ck = Checkpoint::open(&file)?;
            let g = ck.gguf().ok_or_else(|| InferError::config(&file, "not a GGUF file"))?;
            let tokenizer = match g.get("tokenizer.ggml.model") {
                Some(_) => Some(Tokenizer::from_gguf(g)?),
                None => None,
            };
            let context_length = ModelConfig::from_gguf(g).ok().map(|c| c.context_length);
            let chat_template = g.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
            Ok(TextSide { tokenizer, chat_template, context_length, source: file })
        }
    }
}

/// Loads the model at `path` (a folder or a `.gguf` file) on every core.
pub fn load(path: &Path) -> Result<LoadedModel> {
    load_with(path, &LoadOptions::default())
}

/// Loads the model at `path` (a folder or a `.gguf` file) with `opts`.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    match layout(path)? {
        Layout::Hf(dir) => load_hf(&dir, opts),
        Layout::Gguf(file) => load_gguf(&file, opts),
    }
}

fn load_hf(dir: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let pool = Arc::clone(opts.threads.kernels());
    let cfg_path = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg_path).map_err(|e| InferError::Io { path: cfg_path.clone(), source: e })?;
    let config = ModelConfig::from_hf_json(&cfg_path, &text)?;
    let (src, format) = if dir.join("quantize_config.json").is_file() {
        let g = zoo_weights::gptq::GptqModel::open(dir).map_err(|e| InferError::Gptq(Box::new(e)))?;
        (WeightSource::gptq(g, config.arch, pool), "gptq-int4")
    } else {
        let ck = Checkpoint::open(dir)?;
        let format = match ck.format() {
            zoo_weights::Format::Safetensors | zoo_weights::Format::SafetensorsSharded => "safetensors",
            zoo_weights::Format::Torch | zoo_weights::Format::TorchSharded => "pytorch",
            zoo_weights::Format::Gguf => "gguf",
        };
        if ck.tensors().iter().any(|t| t.name.ends_with(".qweight")) {
            return Err(InferError::config(dir, "GPTQ tensors (.qweight) but no quantize_config.json"));
        }
        (WeightSource::new(ck, config.arch, pool), format)
    };
    let model = models::load(&config, &src, Arc::clone(&opts.threads))?;
    let tokenizer = Tokenizer::from_folder(dir)?;
    let tok_cfg = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
    let gen_cfg = read_json(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
    let mut stop_ids = config.eos_token_ids.clone();
    stop_ids.extend(ids(gen_cfg.get("eos_token_id")));
    let defaults = GenerationDefaults {
        do_sample: gen_cfg.get("do_sample").and_then(Value::as_bool),
        temperature: gen_cfg.get("temperature").and_then(Value::as_f64),
        top_p: gen_cfg.get("top_p").and_then(Value::as_f64),
        top_k: gen_cfg.get("top_k").and_then(Value::as_u64).map(|k| k as usize),
        repetition_penalty: gen_cfg.get("repetition_penalty").and_then(Value::as_f64),
    };
    finish(LoadedModel {
        session: Session::new(Arc::clone(&model)),
        model,
        tokenizer,
        chat_template: folder_template(dir, &tok_cfg)?,
        config,
        stop_ids,
        defaults,
        source: dir.to_path_buf(),
        format,
    })
}

fn load_gguf(file: &Path, opts: &LoadOptions) -> Result<LoadedModel> {
    let ck = Checkpoint::open(file)?;
    let g = ck.gguf().ok_or_else(|| InferError::config(file, "not a GGUF file"))?.clone();
    let config = ModelConfig::from_gguf(&g)?;
    let tokenizer = match g.get("tokenizer.ggml.model") {
        Some(_) => Some(Tokenizer::from_gguf(&g)?),
        None => None,
    };
    let chat_template = g.get("tokenizer.chat_template").and_then(|v| v.as_str()).map(str::to_string);
    let src = WeightSource::new(ck, config.arch, Arc::clone(opts.threads.kernels()));
    let model = models::load(&config, &src, Arc::clone(&opts.threads))?;
    finish(LoadedModel {
        session: Session::new(Arc::clone(&model)),
        model,
        tokenizer,
        chat_template,
        stop_ids: config.eos_token_ids.clone(),
        config,
        defaults: GenerationDefaults::default(),
        source: file.to_path_buf(),
        format: "gguf",
    })
}

/// Adds the tokenizer's eos to the stop ids and checks tokenizer and model agree.
fn finish(mut m: LoadedModel) -> Result<LoadedModel> {
    if let Some(tok) = &m.tokenizer {
        let max = tok.max_id();
        if max as usize >= m.config.vocab_size {
            return Err(InferError::Tokenizer(format!(
                "the tokenizer has ids up to {max}, but the model's vocabulary has {} rows: \
                 the tokenizer belongs to another model",
                m.config.vocab_size
            )));
        }
        if let Some(id) = tok.eos_token.as_deref().and_then(|e| tok.token_to_id(e)) {
            m.stop_ids.push(id);
        }
    }
    m.stop_ids.sort_unstable();
    m.stop_ids.dedup();
    Ok(m)
}
