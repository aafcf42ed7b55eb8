//! Key-to-frame latency of the dashboard while a quantize job runs (`bench/tui_latency.sh`).
//!
//! The real event loop (`zoo_tui::runtime::event_loop`) on a current-thread tokio runtime, as
//! `zoo tui` runs it, drawing through the crossterm backend (escape sequences generated and
//! written, to a sink). Keys are injected into the loop's channel at a fixed interval from
//! another thread, stamped when sent; a key's latency is the time until the frame after it is
//! flushed. Phase 1: idle. Phase 2: while `zoo-ops` quantizes a LLaMA-shaped checkpoint
//! (SmolLM2-135M's shapes, random bf16 weights, `--layers` deep) to Q4_0 on every core.
//!
//! cargo run --release -p zoo-tui --example latency -- [--layers N] [--keys N] [--interval-ms M]
//!     [--threads N] [--width W] [--height H]

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use zoo_tui::app::{Action, App, Effect, JobSpec, JobState};
use zoo_tui::runtime::{Latencies, Msg, Options, Runtime, dispatch, event_loop};

struct Args {
    layers: usize,
    keys: usize,
    interval_ms: u64,
    threads: Option<usize>,
    width: u16,
    height: u16,
}

fn args() -> Args {
    let mut a = Args { layers: 120, keys: 300, interval_ms: 30, threads: None, width: 100, height: 30 };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).and_then(|s| s.parse::<usize>().ok());
        match (v[i].as_str(), val) {
            ("--layers", Some(n)) => a.layers = n,
            ("--keys", Some(n)) => a.keys = n,
            ("--interval-ms", Some(n)) => a.interval_ms = n as u64,
            ("--threads", Some(n)) => a.threads = Some(n),
            ("--width", Some(n)) => a.width = n.clamp(20, 1000) as u16,
            ("--height", Some(n)) => a.height = n.clamp(5, 1000) as u16,
            _ => {
                eprintln!(
                    "usage: latency [--layers N] [--keys N] [--interval-ms M] [--threads N] [--width W] [--height H]"
                );
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

/// A LLaMA checkpoint with SmolLM2-135M's shapes and `layers` layers, random bf16 weights.
fn write_model(dir: &Path, layers: usize) -> u64 {
    let (hidden, inter, vocab, heads, kv_heads) = (576usize, 1536usize, 49152usize, 9usize, 3usize);
    let head_dim = hidden / heads;
    let config = format!(
        r#"{{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":{hidden},"intermediate_size":{inter},
"num_hidden_layers":{layers},"num_attention_heads":{heads},"num_key_value_heads":{kv_heads},"vocab_size":{vocab},
"max_position_embeddings":8192,"rms_norm_eps":1e-5,"rope_theta":100000.0,"tie_word_embeddings":true,
"bos_token_id":1,"eos_token_id":2,"torch_dtype":"bfloat16"}}"#
    );
    std::fs::write(dir.join("config.json"), config).unwrap();
    let mut tensors: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![vocab, hidden])];
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        tensors.push((format!("{p}.input_layernorm.weight"), vec![hidden]));
        tensors.push((format!("{p}.post_attention_layernorm.weight"), vec![hidden]));
        tensors.push((format!("{p}.self_attn.q_proj.weight"), vec![hidden, hidden]));
        tensors.push((format!("{p}.self_attn.k_proj.weight"), vec![kv_heads * head_dim, hidden]));
        tensors.push((format!("{p}.self_attn.v_proj.weight"), vec![kv_heads * head_dim, hidden]));
        tensors.push((format!("{p}.self_attn.o_proj.weight"), vec![hidden, hidden]));
        tensors.push((format!("{p}.mlp.gate_proj.weight"), vec![inter, hidden]));
        tensors.push((format!("{p}.mlp.up_proj.weight"), vec![inter, hidden]));
        tensors.push((format!("{p}.mlp.down_proj.weight"), vec![hidden, inter]));
    }
    tensors.push(("model.norm.weight".into(), vec![hidden]));
    let mut header = String::from("{");
    let mut offset = 0usize;
    for (i, (name, shape)) in tensors.iter().enumerate() {
        let n: usize = shape.iter().product::<usize>() * 2;
        let shape: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{name}":{{"dtype":"BF16","shape":[{}],"data_offsets":[{offset},{}]}}"#,
            shape.join(","),
            offset + n
        ));
        offset += n;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("model.safetensors")).unwrap());
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    // xorshift: small values in [-0.05, 0.05) as bf16.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut left = offset / 2;
    while left > 0 {
        buf.clear();
        for _ in 0..left.min(1 << 19) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
            buf.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
        }
        left -= buf.len() / 2;
        f.write_all(&buf).unwrap();
    }
    f.flush().unwrap();
    offset as u64
}

/// Sends `n` navigation keys, one every `interval`, then quits (confirming when a job runs).
fn inject(tx: UnboundedSender<Msg>, n: usize, interval: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Movement and screen changes: each changes what is drawn.
        let keys =
            [KeyCode::Down, KeyCode::Down, KeyCode::Char('6'), KeyCode::Char('1'), KeyCode::Up, KeyCode::Char('3')];
        std::thread::sleep(Duration::from_millis(200));
        for i in 0..n {
            let ev = Event::Key(KeyEvent::new(keys[i % keys.len()], KeyModifiers::NONE));
            if tx.send(Msg::Input(ev, Instant::now())).is_err() {
                return;
            }
            std::thread::sleep(interval);
        }
        let _ = tx.send(Msg::Action(Action::Quit));
        let _ = tx.send(Msg::Action(Action::Yes));
    })
}

fn report(label: &str, l: &[Duration]) {
    let mut v: Vec<f64> = l.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        println!("{label}: no keys");
        return;
    }
    let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    let over = v.iter().filter(|&&x| x > 50.0).count();
    println!(
        "{label}: {} keys  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms  over 50 ms: {over}",
        v.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        v[v.len() - 1]
    );
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    let t = Instant::now();
    let bytes = write_model(&model, a.layers);
    eprintln!(
        "wrote a {:.0} MiB checkpoint ({} layers) in {:.1}s",
        bytes as f64 / 1048576.0,
        a.layers,
        t.elapsed().as_secs_f64()
    );

    let rt_tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt_tokio.block_on(async {
        let mut zoo = zoo_ops::Zoo::new(dir.path().join("zoo.db"));
        zoo.models_dir = Some(dir.path().join("models"));
        let opts = Options { threads: a.threads, ..Options::default() };
        let (tx, mut rx) = unbounded_channel();
        let mut app = App::new();
        let mut rt = Runtime::new(zoo, opts, tx.clone());
        let viewport = Viewport::Fixed(Rect::new(0, 0, a.width, a.height));
        let mut term =
            Terminal::with_options(CrosstermBackend::new(std::io::sink()), TerminalOptions { viewport }).unwrap();
        dispatch(&mut app, &mut rt, Action::Refresh);

        // Phase 1: idle.
        let mut idle = Latencies::default();
        let inj = inject(tx.clone(), a.keys / 3, Duration::from_millis(a.interval_ms));
        event_loop(&mut term, &mut app, &mut rt, &mut rx, Some(&mut idle)).await.unwrap();
        inj.join().unwrap();
        assert!(app.loaded, "the registry was read");

        // Phase 2: while a quantize job runs.
        app.quit = false;
        let spec = JobSpec::Quantize { model: model.display().to_string(), ggml_type: "q4_0".into() };
        for act in rt.run(Effect::Start(spec), &mut app) {
            dispatch(&mut app, &mut rt, act);
        }
        let mut busy = Latencies::default();
        let inj = inject(tx.clone(), a.keys, Duration::from_millis(a.interval_ms));
        event_loop(&mut term, &mut app, &mut rt, &mut rx, Some(&mut busy)).await.unwrap();
        inj.join().unwrap();
        let job = app.jobs.last().unwrap();
        let end = job.ended.unwrap_or_else(Instant::now);
        let during: Vec<Duration> =
            busy.0.iter().filter(|(at, _)| *at >= job.started && *at <= end).map(|(_, d)| *d).collect();
        let state = match job.state {
            JobState::Done => format!("done in {:.1}s", job.elapsed(end).as_secs_f64()),
            JobState::Running | JobState::Cancelling => "still running at the end (cancelled)".into(),
            s => format!("{s:?}: {}", job.log.join(" | ")),
        };
        eprintln!("quantize job: {state}");
        report("idle", &idle.0.iter().map(|(_, d)| *d).collect::<Vec<_>>());
        report("during quantize", &during);
        rt.shutdown(Duration::from_secs(10)).await;
    });
}
