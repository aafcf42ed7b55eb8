//! The command line: one clap definition that feeds parsing, `--help` and the usage docs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "zoo",
    version,
    about = "Manage, verify, transform, run, serve and evaluate the LLM Zoo models",
    long_about = "zoo knows the open LLM Zoo models (Phoenix, Chimera, HuatuoGPT, Apollo) and their peers: \
                  a catalog with every fact, a registry database of local copies and results, and tools \
                  to pull, verify, transform, run and evaluate them.\n\n\
                  Exit codes: 0 ok, 1 nothing found or a check failed, 2 error.",
    after_help = "Environment: ZOO_DB, ZOO_CATALOG, ZOO_COLOR, NO_COLOR, XDG_DATA_HOME, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE"
)]
pub struct Cli {
    /// Registry database file [default: $XDG_DATA_HOME/zoo/registry.db]
    #[arg(long, global = true, env = "ZOO_DB", value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Catalog folder to use instead of the catalog built into zoo
    #[arg(long, global = true, env = "ZOO_CATALOG", value_name = "DIR")]
    pub catalog: Option<PathBuf>,

    /// When to color output (NO_COLOR=1 means never)
    #[arg(long, global = true, env = "ZOO_COLOR", value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List models of the zoo (a table; --json for scripts)
    #[command(visible_alias = "ls")]
    List(ListArgs),
    /// Show every fact about one model: files, results, local status
    Show(ShowArgs),
    /// Published and measured results, side by side
    Results(ResultsArgs),
    /// The registry: query it, lint the catalog, sync it, record results
    #[command(subcommand)]
    Registry(RegistryCommand),
    /// Resolved paths and settings, and where each came from
    Env(JsonArg),
    /// Apply or make LLaMA delta weights (Chimera, HuatuoGPT-13B, FastChat-style releases)
    #[command(subcommand)]
    Delta(DeltaCommand),
    /// List the tensors of a checkpoint (safetensors, PyTorch .bin, GGUF; file or folder)
    Inspect(InspectArgs),
    /// Convert a Hugging Face checkpoint to a llama.cpp GGUF file, quantized or not
    Quantize(QuantizeArgs),
    /// Turn a GGUF file back into a Hugging Face folder (safetensors, config.json, tokenizer)
    Dequantize(DequantizeArgs),
    /// Generate once from a prompt, a message list or token ids (scriptable; --json)
    Run(RunArgs),
    /// Chat with a model in the terminal (streaming, history, /reset /regen /save /load /exit)
    Chat(ChatArgs),
    /// Download a model into the Hugging Face cache (resumable, sha256-checked); with --base a
    /// delta release becomes a runnable, registered model
    Pull(PullArgs),
    /// Re-hash local files against the registry and the cache's blob names (exit 1 on any problem)
    Verify(VerifyArgs),
    /// The Hugging Face cache: list what it holds, remove repos or revisions, prune leftovers
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Register a model you already have (a folder or a GGUF file) as a local model, with hashes
    Add(AddArgs),
    /// Evaluate a model on a benchmark file; predictions and results are kept in the registry
    #[command(subcommand)]
    Eval(EvalCommand),
    /// The dashboard: browse and filter the zoo, pull, verify, quantize, chat, evaluate and vote
    /// (`?` lists the keys; `q` quits)
    Tui(TuiArgs),
    /// Check, count, convert, sample, split, deduplicate and render training data files (LLM
    /// Zoo/ShareGPT, Alpaca, OpenAI JSONL, ApolloCorpus)
    #[command(subcommand, after_long_help = DATA_EXAMPLES)]
    Data(DataCommand),
    /// Serve models over HTTP: the OpenAI API, a web chat page at /, /health and /metrics
    #[command(after_long_help = SERVE_EXAMPLES)]
    Serve(ServeArgs),
    /// A FastChat model worker: registers MODEL with a controller and answers its workers' API
    Worker(WorkerArgs),
    /// A FastChat controller: workers register, clients ask it where a model is served
    Controller(ControllerArgs),
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Every problem of a training data file, with its record and JSON path (exit 1 when any)
    Validate(DataArgs),
    /// Records, turns per role, languages, characters and, with --tokenizer, tokens in a model's
    /// prompt format: length histogram, percentiles, records over the context length
    Stats(DataStatsArgs),
    /// Rewrite a training data file in another format, keeping every turn (written atomically)
    Convert(DataConvertArgs),
    /// A uniform random sample of the records, in file order (reproducible with --seed)
    Sample(DataSampleArgs),
    /// Divide the records among files by weight, e.g. --part train.jsonl=0.9 --part test.jsonl=0.1
    /// (exact sizes; reproducible with --seed)
    Split(DataSplitArgs),
    /// Leave out repeated records: exact (same turns), and with --near near duplicates (MinHash)
    Dedup(DataDedupArgs),
    /// The exact LLM Zoo training text of each conversation as token ids with its assistant-only
    /// loss mask (labels −100 elsewhere), as JSON lines
    Render(DataRenderArgs),
}

pub const DATA_EXAMPLES: &str = "Examples:
  zoo data validate sharegpt.json              # every problem, with record and JSON path
  zoo data stats data.json --tokenizer smollm2-135m-instruct --plot lengths.svg
  zoo data convert alpaca.json --to openai -o train.jsonl
  zoo data sample data.json -n 1000 --seed 7 -o small.json
  zoo data split data.json --part train.jsonl=0.9 --part test.jsonl=0.1 --seed 7
  zoo data dedup data.json --near 0.8 -o unique.json
  zoo data render data.json --model phoenix-inst-chat-7b -o train.jsonl";

/// The options every file-writing `zoo data` command shares.
#[derive(Debug, Args)]
pub struct DataInput {
    /// The file: a JSON array or JSON lines
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// The input's format [default: detected from the first record]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Draws every random choice: the same seed gives the same output, byte for byte
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub seed: u64,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("size").required(true).args(["count", "fraction"])))]
pub struct DataSampleArgs {
    #[command(flatten)]
    pub input: DataInput,
    /// How many records (all of them when the file has fewer)
    #[arg(short = 'n', long = "count", value_name = "N")]
    pub count: Option<usize>,
    /// This share of the records, in (0, 1]: exactly round(F × records)
    #[arg(long, value_name = "F")]
    pub fraction: Option<f64>,
    /// Where to write (`.jsonl`: JSON lines; anything else: a JSON array); records as read
    #[arg(long, short, value_name = "OUT")]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Args)]
pub struct DataSplitArgs {
    #[command(flatten)]
    pub input: DataInput,
    /// An output and its weight, OUT=WEIGHT (repeat: --part train.jsonl=0.9 --part test.jsonl=0.1)
    #[arg(long = "part", value_name = "OUT=WEIGHT", required = true)]
    pub parts: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DataDedupArgs {
    #[command(flatten)]
    pub input: DataInput,
    /// Where to write the records kept (`.jsonl`: JSON lines; anything else: a JSON array)
    #[arg(long, short, value_name = "OUT")]
    pub out: std::path::PathBuf,
    /// Also leave out near duplicates: estimated Jaccard similarity of character shingles with
    /// a kept record at least this, in (0, 1] (MinHash with LSH)
    #[arg(long, value_name = "THRESHOLD")]
    pub near: Option<f64>,
    /// Shingle length in characters (near duplicates)
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub shingle: usize,
    /// MinHash functions (near duplicates)
    #[arg(long, default_value_t = 128, value_name = "N")]
    pub perms: usize,
}

#[derive(Debug, Args)]
pub struct DataStatsArgs {
    #[command(flatten)]
    pub common: DataArgs,
    /// Count tokens with this model's tokenizer and prompt format (MODEL: a registry name, hub
    /// id, folder or file; only its tokenizer and configuration are read)
    #[arg(long, value_name = "MODEL")]
    pub tokenizer: Option<String>,
    /// The prompt format to count in [default: the model's own, as `zoo chat` uses it]
    #[arg(long, value_name = "NAME", requires = "tokenizer")]
    pub template: Option<String>,
    /// Count records longer than this many tokens [default: the model's context length]
    #[arg(long, value_name = "TOKENS", requires = "tokenizer")]
    pub context: Option<usize>,
    /// Save the length histogram as a chart: FILE.svg or FILE.png
    #[arg(long, value_name = "FILE")]
    pub plot: Option<std::path::PathBuf>,
    /// Worker threads [default: every core]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DataRenderArgs {
    /// The file: a JSON array or JSON lines
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// The model whose tokenizer renders the text (a registry name, hub id, folder or file)
    #[arg(long, value_name = "MODEL")]
    pub model: String,
    /// Where to write (`.jsonl`: JSON lines; anything else: a JSON array)
    #[arg(long, short, value_name = "OUT")]
    pub out: std::path::PathBuf,
    /// Cut each text at this many tokens (LLM Zoo's model_max_length)
    #[arg(long, default_value_t = 2048, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(2..))]
    pub max_length: u32,
    /// Add each record's training text
    #[arg(long)]
    pub text: bool,
    /// Train on ShareGPT's other assistant names (chatgpt, bing, bard, assistant) and `user`
    /// too (LLM Zoo rendered them as `unknown` and did not train on them)
    #[arg(long)]
    pub normalize_roles: bool,
    /// The input's format [default: detected from the first record]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DataConvertArgs {
    /// The file: a JSON array or JSON lines
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// The target format: conversations (LLM Zoo, ShareGPT), alpaca, openai or apollo
    #[arg(long, value_name = "FORMAT")]
    pub to: String,
    /// Where to write (`.jsonl`: JSON lines; anything else: a JSON array)
    #[arg(long, short, value_name = "OUT")]
    pub out: std::path::PathBuf,
    /// The input's format [default: detected from the first record]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Leave out records with problems or that the target cannot hold (else the first one stops the conversion)
    #[arg(long)]
    pub skip_invalid: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The file: a JSON array or JSON lines
    #[arg(value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// conversations (LLM Zoo, ShareGPT), alpaca, openai or apollo [default: detected from the first record]
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Problems listed at most (all are counted)
    #[arg(long, default_value_t = 50, value_name = "N")]
    pub max_problems: usize,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub const SERVE_EXAMPLES: &str = "Examples:
  zoo serve                                   # the default model on http://127.0.0.1:8000
  zoo serve smollm2-135m-instruct --port 8080 --api-key secret
  zoo serve a.gguf b.gguf --batch-size 16     # two models, 16 sequences decoded together each
  zoo controller --port 21001 &               # a cluster: controller, workers, OpenAI front
  zoo worker MODEL --controller http://127.0.0.1:21001 --port 21002 &
  zoo serve --controller http://127.0.0.1:21001";

/// Settings every server shares (`serve`, `worker`).
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on (loopback by default; 0.0.0.0 for every interface)
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    pub host: String,
    /// Sequences of one model decoded together at most
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=512))]
    pub batch_size: u32,
    /// Requests waiting for a slot at most; more are refused with 429
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
    /// Threads for the models' kernels [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Prompt format for every model (see `zoo chat --template`) [default: each model's own]
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// Longest a request may take, queue wait included, in seconds
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub timeout: u64,
    /// Largest request body, in bytes
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_body: usize,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Models to serve (names, NAME@REV, repo ids or paths) [default: smollm2-135m-instruct]
    #[arg(value_name = "MODEL")]
    pub models: Vec<String>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Port to listen on
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* (also ZOO_API_KEY)
    #[arg(long, value_name = "KEY", env = "ZOO_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Be the OpenAI front of a FastChat cluster: ask this controller's workers instead of loading models
    #[arg(long, value_name = "URL", conflicts_with = "models")]
    pub controller: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The model to serve (a name, NAME@REV, repo id or path)
    #[arg(value_name = "MODEL")]
    pub model: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Port to listen on (FastChat's worker default)
    #[arg(long, default_value_t = 21002)]
    pub port: u16,
    /// The controller to register with
    #[arg(long, default_value = "http://127.0.0.1:21001", value_name = "URL")]
    pub controller: String,
    /// The URL the controller reaches this worker at [default: http://HOST:PORT]
    #[arg(long, value_name = "URL")]
    pub worker_address: Option<String>,
    /// Names to register the model under, comma-separated [default: the model's name]
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub model_names: Vec<String>,
    /// Seconds between heartbeats (also FASTCHAT_WORKER_HEART_BEAT_INTERVAL)
    #[arg(long, default_value_t = 45, value_name = "SECS", env = "FASTCHAT_WORKER_HEART_BEAT_INTERVAL")]
    pub heart_beat_interval: u64,
    /// Serve without registering with a controller
    #[arg(long)]
    pub no_register: bool,
}

#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1", value_name = "HOST")]
    pub host: String,
    /// Port to listen on (FastChat's controller default)
    #[arg(long, default_value_t = 21001)]
    pub port: u16,
    /// How a model's worker is picked
    #[arg(long, value_enum, default_value = "shortest_queue")]
    pub dispatch_method: DispatchArg,
    /// Seconds without a heartbeat after which a worker is dropped (also FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION)
    #[arg(long, default_value_t = 90, value_name = "SECS", env = "FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION")]
    pub heart_beat_expiration: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DispatchArg {
    #[value(name = "shortest_queue")]
    ShortestQueue,
    Lottery,
}

#[derive(Debug, Args)]
pub struct TuiArgs {
    /// Threads for verify, quantize, chat and evaluation [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Most tokens of a chat answer
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_tokens: usize,
    /// Who votes on the Vote screen [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub voter: Option<String>,
    /// Leave the mouse to the terminal (text selection) instead of clicks and the wheel
    #[arg(long)]
    pub no_mouse: bool,
}

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Multiple-choice accuracy (XMedBench JSON, MMLU JSON lines, native JSONL), resumable:
    /// a rerun of the same configuration continues where the last one stopped
    Mcq(McqArgs),
    /// Open questions answered by each contestant and compared by a judge model behind an
    /// OpenAI-compatible endpoint: LLM Zoo's ordering ratio or MT-bench's pairwise verdicts
    Judge(JudgeArgs),
    /// Human votes in the terminal: two answers to each question in random order, names
    /// hidden; 1 / 2 / t for left better / right better / tie (--tally: the counts)
    Vote(VoteArgs),
    /// The registry's evaluation results, published beside measured: a table, Markdown, JSON,
    /// a self-contained HTML page with charts, SVG/PNG plots
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct VoteArgs {
    /// Open questions (as for `zoo eval judge`)
    #[arg(long, value_name = "FILE", required_unless_present = "tally")]
    pub questions: Option<PathBuf>,
    /// The two contestants, A,B: a MODEL (answers generated here and stored, or the ones
    /// `zoo eval judge` stored) or NAME=FILE.jsonl
    #[arg(long, value_name = "A,B", value_delimiter = ',', num_args = 1.., required_unless_present = "tally")]
    pub models: Vec<String>,
    /// Who votes (votes are kept per voter) [default: $USER]
    #[arg(long, value_name = "NAME")]
    pub voter: Option<String>,
    /// Seeds which side each answer is shown on
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
    /// Only the first N questions
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Most tokens of a generated answer
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_tokens: usize,
    /// Threads for generating answers [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Print the tallies (win / tie / lose per pair) instead of voting; with --questions, of
    /// that question set only
    #[arg(long)]
    pub tally: bool,
    #[command(flatten)]
    pub emit: Emit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Markdown,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlotFormatArg {
    Svg,
    Png,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Only this benchmark; repeatable [default: every benchmark with results]
    #[arg(long = "benchmark", short = 'b', value_name = "NAME")]
    pub benchmarks: Vec<String>,
    /// Only rows of this model (as the model or the opponent); repeatable
    #[arg(long = "model", short = 'm', value_name = "NAME")]
    pub models: Vec<String>,
    /// Only benchmarks with at least one measured result
    #[arg(long)]
    pub measured: bool,
    /// The report's title
    #[arg(long, value_name = "TEXT")]
    pub title: Option<String>,
    /// What stdout gets
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Same as --format json
    #[arg(long)]
    pub json: bool,
    /// Also write the report as one self-contained HTML page with charts
    #[arg(long, value_name = "FILE.html")]
    pub html: Option<PathBuf>,
    /// Also write each chart as a file into this folder
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = PlotFormatArg::Svg)]
    pub plot_format: PlotFormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum JudgeMethodArg {
    /// One call per question orders every answer; score 10/rank; ratio against the reference
    LlmzooOrder,
    /// Each contestant against the reference, both orders; a disagreement is a tie
    MtBenchPair,
}

#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// Open questions: LLM Zoo's questions-{en,zh}.jsonl, its multilingual {id, label, query}
    /// files, or zoo's {id, question, category?, lang?} lines
    #[arg(long, value_name = "FILE")]
    pub questions: PathBuf,
    /// The contestants, comma-separated: a MODEL (answers generated here, greedily, and
    /// stored) or NAME=FILE.jsonl (answers made elsewhere: LLM Zoo's answer_<model>.jsonl or
    /// {id, answer} lines)
    #[arg(long, value_name = "A,B,...", value_delimiter = ',', required = true)]
    pub models: Vec<String>,
    /// The contestant the others are compared with [default: the first]
    #[arg(long, value_name = "NAME")]
    pub reference: Option<String>,
    #[arg(long, value_enum, default_value_t = JudgeMethodArg::LlmzooOrder)]
    pub method: JudgeMethodArg,
    /// The judge: an OpenAI-compatible server's base URL (http://host:8000/v1)
    #[arg(long, value_name = "URL")]
    pub judge: String,
    /// The judge model's name [default: the first one the server lists]
    #[arg(long, value_name = "NAME")]
    pub judge_model: Option<String>,
    /// API key of the judge, sent as a bearer token [env: ZOO_JUDGE_KEY, then OPENAI_API_KEY]
    #[arg(long, value_name = "KEY", env = "ZOO_JUDGE_KEY", hide_env_values = true)]
    pub judge_key: Option<String>,
    /// Seconds one judge call may take
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub judge_timeout: u64,
    /// Tries after the first for a judge call that times out, fails, or answers garbage
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub judge_retries: u32,
    /// Most tokens of a verdict
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub judge_max_tokens: usize,
    /// Judge calls in flight at once
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub concurrency: usize,
    /// Most tokens of a generated answer
    #[arg(long, value_name = "N", default_value_t = 512)]
    pub max_tokens: usize,
    /// Threads for generating answers [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Only the first N questions
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Record the results under this registry benchmark [default: llmzoo-ratio-LANG when
    /// every question has that language (llmzoo-order), mt-bench-pair (pairwise)]
    #[arg(long, value_name = "NAME")]
    pub benchmark: Option<String>,
    /// Ask the judge again instead of continuing a stored run (stored answers are kept)
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub emit: Emit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalMode {
    /// The log-likelihood of each option's continuation (` A`, ` B`, ...) after the prompt
    Loglik,
    /// Apollo's method: few-shot prompt, greedy generation, answer extracted from the first line
    Generate,
}

#[derive(Debug, Args)]
pub struct McqArgs {
    /// The questions file
    #[arg(value_name = "QUESTIONS")]
    pub questions: PathBuf,
    /// Registry name, repo id (org/name[@rev]), folder or .gguf file [default: smollm2-135m-instruct]
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub model: Option<String>,
    /// A source, a subject, or a named set (mmlu-medical-6, mmlu-medical-9, xmedbench-9); repeatable
    #[arg(long = "subset", value_name = "NAME")]
    pub subsets: Vec<String>,
    /// Only questions in this language (ISO 639-1); repeatable
    #[arg(long = "language", value_name = "LANG")]
    pub languages: Vec<String>,
    /// Only the first N selected questions
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// How options are scored
    #[arg(long, value_enum, default_value_t = EvalMode::Loglik)]
    pub mode: EvalMode,
    /// Prompt format: mmlu-classic or plain (loglik), apollo (generate); exact strings in
    /// docs/EVAL.md [default: mmlu-classic, apollo with --mode generate]
    #[arg(long, value_name = "NAME", value_parser = parse_prompt)]
    pub prompt: Option<zoo_eval::McqPrompt>,
    /// Few-shot exemplars per question, drawn from its subset (--mode generate)
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub shots: usize,
    /// Seed of the exemplars' draw (--mode generate)
    #[arg(long, value_name = "N", default_value_t = 42)]
    pub seed: u64,
    /// Most tokens generated per answer (--mode generate)
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub max_tokens: usize,
    /// Questions per forward pass
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub batch: usize,
    /// Threads for the matrix products [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Score every question again instead of continuing a stored run of this configuration
    #[arg(long)]
    pub restart: bool,
    /// Record the result under this registry benchmark (its columns: the subsets, `overall`,
    /// `avg`) [default: the named set's benchmark, when the selection is exactly one]
    #[arg(long, value_name = "NAME")]
    pub benchmark: Option<String>,
    /// Also write one JSON line per question: index, subset, pred, gold
    #[arg(long, value_name = "FILE.jsonl")]
    pub predictions: Option<PathBuf>,
    /// The end-of-sequence text closing Apollo's exemplars (--mode generate) [default: the
    /// model tokenizer's; none with --endpoint]
    #[arg(long, value_name = "TEXT")]
    pub eos: Option<String>,
    #[command(flatten)]
    pub endpoint: EndpointArgs,
    #[command(flatten)]
    pub emit: Emit,
}

/// An OpenAI-compatible server to ask instead of the local engine.
#[derive(Debug, Args)]
pub struct EndpointArgs {
    /// Ask this OpenAI-compatible server (vLLM, TGI, llama-server, zoo serve) instead of loading
    /// the model: its base URL, e.g. http://127.0.0.1:8080/v1 (`/v1` is added to a bare host);
    /// -m then names the registry model the result is recorded under
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The model name sent to the endpoint [default: the first one it lists at /v1/models]
    #[arg(long, value_name = "NAME", requires = "endpoint")]
    pub endpoint_model: Option<String>,
    /// How --mode generate asks the endpoint: chat (/v1/chat/completions, the server applies the
    /// model's chat template) or completions (/v1/completions, the prompt as the local engine runs it)
    #[arg(long, value_enum, default_value_t = EndpointApiArg::Chat, requires = "endpoint")]
    pub endpoint_api: EndpointApiArg,
    /// Seconds one request may take
    #[arg(long, value_name = "S", default_value_t = 120, requires = "endpoint")]
    pub endpoint_timeout: u64,
    /// Tries after the first for a request that times out, fails, or gets a garbled answer;
    /// after them the question is reported as failed and the run goes on
    #[arg(long, value_name = "N", default_value_t = 2, requires = "endpoint")]
    pub endpoint_retries: u32,
    /// API key, sent as a bearer token [env: ZOO_ENDPOINT_KEY, then OPENAI_API_KEY]
    #[arg(long, value_name = "KEY", env = "ZOO_ENDPOINT_KEY", hide_env_values = true)]
    pub endpoint_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndpointApiArg {
    Chat,
    Completions,
}

fn parse_prompt(s: &str) -> Result<zoo_eval::McqPrompt, String> {
    zoo_eval::McqPrompt::from_name(s)
        .ok_or_else(|| format!("unknown prompt format {s:?}; one of {}", zoo_eval::McqPrompt::NAMES.join(", ")))
}

/// How a model is found, prompted and sampled: shared by `run` and `chat`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Registry name, Hugging Face repo id in the cache (org/name[@rev]), model folder or .gguf file
    /// [default: smollm2-135m-instruct, pulled on first use]
    #[arg(value_name = "MODEL")]
    pub model: Option<String>,
    /// Prompt format: llmzoo, huatuo, huatuo2, apollo, apollo-large, apollo2-phi3, chatml, llama2,
    /// llama3, gemma, vicuna, alpaca, jinja (the model's own template) or none (raw text).
    /// Default: the registry's format for the model, else the model's Jinja template
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
    /// System prompt (replaces the format's default)
    #[arg(long, value_name = "TEXT")]
    pub system: Option<String>,
    /// Most tokens to generate per reply
    #[arg(long, default_value_t = 512, value_name = "N")]
    pub max_tokens: usize,
    /// Always pick the most likely token (same as --temperature 0)
    #[arg(long)]
    pub greedy: bool,
    /// Sampling temperature [default: the model's generation_config.json, else the catalog's
    /// recommendation (`zoo show MODEL`), else 0.7]
    #[arg(long, value_name = "T")]
    pub temperature: Option<f64>,
    /// Sample from the K most likely tokens only
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches P
    #[arg(long, value_name = "P")]
    pub top_p: Option<f64>,
    /// Penalize tokens of the last 64 positions (1.0 = off)
    #[arg(long, value_name = "R")]
    pub repetition_penalty: Option<f32>,
    /// Random seed for sampling
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Extra stop string (repeatable); the format's own stop strings always apply
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Keep generating past end-of-sequence tokens (benchmarks)
    #[arg(long)]
    pub ignore_eos: bool,
    /// Threads for the matrix products [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: GenArgs,
    /// The user message (default: read stdin)
    #[arg(value_name = "PROMPT")]
    pub prompt: Option<String>,
    /// An OpenAI-style JSON list of messages, rendered with the model's prompt format
    #[arg(long, value_name = "FILE.json", conflicts_with_all = ["prompt", "token_ids"])]
    pub messages: Option<PathBuf>,
    /// Raw prompt token ids, no template (comma-separated)
    #[arg(long, value_name = "IDS", value_delimiter = ',', conflicts_with = "prompt")]
    pub token_ids: Option<Vec<u32>>,
    /// Print one JSON object: prompt_ids, token_ids, text, finish_reason, speeds
    #[arg(long)]
    pub json: bool,
    /// Write the full-prompt logits (tensor `logits`, f32 [prompt_len, vocab]) to a safetensors file
    #[arg(long, value_name = "FILE.safetensors")]
    pub dump_logits: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub opts: GenArgs,
    /// Start from a saved conversation (a /save file or an OpenAI-style message list)
    #[arg(long, value_name = "FILE")]
    pub load: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// Hugging Face folder (config.json + safetensors or .bin), or with --raw any safetensors file
    #[arg(long = "in", value_name = "PATH")]
    pub input: PathBuf,
    /// Output GGUF file (must not exist unless --overwrite)
    #[arg(long, short = 'o', value_name = "FILE.gguf")]
    pub out: PathBuf,
    /// Output type: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k, the mixes q4_k_m
    /// and q5_k_m (llama-quantize's), or gptq-int4 (a GPTQ folder, not a GGUF)
    #[arg(long = "type", short = 't', value_name = "TYPE", default_value = "q8_0", value_parser = parse_out_type)]
    pub out_type: QuantTarget,
    /// Keep every tensor name as it is and write no architecture metadata
    #[arg(long)]
    pub raw: bool,
    /// Print per-tensor RMSE and max error against the source
    #[arg(long)]
    pub report: bool,
    /// Also measure perplexity on this text file, source model vs quantized file (our runner)
    #[arg(long, value_name = "TEXT_FILE", conflicts_with = "raw")]
    pub perplexity: Option<PathBuf>,
    /// Tokens of the text file to score with --perplexity (in windows of 512)
    #[arg(long, value_name = "N", default_value_t = 2048)]
    pub perplexity_tokens: usize,
    /// Threads for the rows of one tensor
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Replace an existing output file (atomically)
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub emit: Emit,
}

/// What `zoo quantize` produces: a GGUF of one of llama.cpp's types, or an AutoGPTQ-layout folder.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuantTarget {
    Gguf(zoo_weights::gguf_convert::OutType),
    /// Round-to-nearest 4-bit, group 128, AutoGPTQ layout (`--out` is a folder).
    GptqInt4,
}

fn parse_out_type(s: &str) -> Result<QuantTarget, String> {
    if s.eq_ignore_ascii_case("gptq-int4") {
        return Ok(QuantTarget::GptqInt4);
    }
    zoo_weights::gguf_convert::OutType::from_name(s).map(QuantTarget::Gguf).ok_or_else(|| {
        format!("unknown type {s:?}; one of {}, gptq-int4", zoo_weights::gguf_convert::OutType::NAMES.join(", "))
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DenseDtype {
    F32,
    F16,
    Bf16,
}

#[derive(Debug, Args)]
pub struct DequantizeArgs {
    /// A GGUF file
    pub input: PathBuf,
    /// Output folder (must not exist unless --overwrite)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// Element type of the safetensors output
    #[arg(long, value_enum, default_value_t = DenseDtype::F32)]
    pub dtype: DenseDtype,
    /// Replace an existing output folder
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub emit: Emit,
}

#[derive(Debug, Subcommand)]
pub enum DeltaCommand {
    /// target = base + delta, written as sharded safetensors with a sha256 manifest
    Apply(DeltaApplyArgs),
    /// delta = target − base, for releasing a fine-tune of a licensed base
    Make(DeltaMakeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeltaAlgorithm {
    /// From the registry when the delta is a known release, otherwise from the tensors
    Auto,
    /// FastChat v1.1 / LLaVA: add; a bigger delta vocabulary keeps its extra rows
    Fastchat,
    /// LLM Zoo tools/apply_delta.py (FastChat v0): zero-pad the base vocabulary, then add
    Llmzoo,
    /// HuatuoGPT apply_delta.py: embeddings and lm_head taken from the delta as they are
    Huatuo,
}

/// Output options shared by `delta apply` and `delta make`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Output folder (must not exist unless --overwrite)
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// Largest safetensors shard (e.g. 5GB, 500MB, 2GiB, or bytes)
    #[arg(long, default_value = "5GB", value_parser = parse_size)]
    pub max_shard_size: u64,
    /// Replace an existing output folder (the new one is complete before the old one goes)
    #[arg(long)]
    pub overwrite: bool,
    #[command(flatten)]
    pub emit: Emit,
}

#[derive(Debug, Args)]
pub struct DeltaApplyArgs {
    /// The base model (a folder or checkpoint file), e.g. the original LLaMA
    #[arg(long, value_name = "PATH")]
    pub base: PathBuf,
    /// The delta release (folder or checkpoint file)
    #[arg(long, value_name = "PATH")]
    pub delta: PathBuf,
    #[arg(long, value_enum, default_value_t = DeltaAlgorithm::Auto)]
    pub algorithm: DeltaAlgorithm,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct DeltaMakeArgs {
    /// The base model the delta will be applied to
    #[arg(long, value_name = "PATH")]
    pub base: PathBuf,
    /// The fine-tuned model
    #[arg(long, value_name = "PATH")]
    pub target: PathBuf,
    #[command(flatten)]
    pub write: WriteArgs,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// A checkpoint file or folder
    pub path: PathBuf,
    /// Print one JSON object (tensors, and GGUF metadata)
    #[arg(long)]
    pub json: bool,
}

/// `5GB` = 5·10⁹ bytes, `2GiB` = 2·2³⁰ bytes, plain numbers are bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a size like 5GB, 500MB or 2GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        u => return Err(format!("unknown size unit {u:?} (use B, KB, MB, GB, KiB, MiB, GiB)")),
    };
    let bytes = v * mult;
    if !(1.0..1.8e19).contains(&bytes) {
        return Err(format!("{s:?} is not a usable shard size"));
    }
    Ok(bytes as u64)
}

/// Progress and output of the long-running commands.
#[derive(Debug, Clone, Copy, Args)]
pub struct Emit {
    /// Progress on stderr
    #[arg(long, value_enum, default_value_t = crate::progress::ProgressMode::Auto)]
    pub progress: crate::progress::ProgressMode,
    /// Print the report as JSON on stdout (files with sizes and sha256, provenance; docs/USAGE.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

/// Filters and ordering shared by `list` and `registry query`.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Only this family (phoenix, chimera, huatuogpt, apollo, base, peers, ...)
    #[arg(long, short = 'f')]
    pub family: Option<String>,
    /// Only this architecture (bloom, llama, baichuan, qwen2, gemma, ...)
    #[arg(long, short = 'a')]
    pub arch: Option<String>,
    /// Only models that target this language (ISO 639-1: en, zh, ar, ...)
    #[arg(long, short = 'l')]
    pub lang: Option<String>,
    /// Only this kind
    #[arg(long, short = 'k', value_enum)]
    pub kind: Option<Kind>,
    /// Only models built on this model (fine-tunes, deltas, quantizations of it)
    #[arg(long)]
    pub base: Option<String>,
    /// Only models whose name or description contains this text
    #[arg(long, short = 's')]
    pub search: Option<String>,
    /// Only models with a copy on this machine (Hugging Face cache or registered)
    #[arg(long)]
    pub local: bool,
    /// Sort order
    #[arg(long, value_enum, default_value_t = Sort::Name)]
    pub sort: Sort,
    /// Reverse the sort order
    #[arg(long, short = 'r')]
    pub reverse: bool,
    /// At most this many models
    #[arg(long, short = 'n')]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Full,
    Delta,
    Quantized,
    Api,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sort {
    Name,
    Family,
    Params,
    Release,
    Context,
    Kind,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Print a JSON array of model objects (schema: docs/USAGE.md)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Model name (or its Hugging Face repo id)
    pub name: String,
    /// Print one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// Only results of this model (as the model or as the opponent)
    pub name: Option<String>,
    /// Only this benchmark (xmedbench, llmzoo-ratio-zh, ...)
    #[arg(long, short = 'b')]
    pub benchmark: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Same as --format json
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
    Markdown,
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Query models with filters, sort and limit, in a chosen format
    Query(QueryArgs),
    /// Lint a catalog; every problem with file and line; exit 1 on any
    Check(CheckArgs),
    /// Load the catalog into the database (done automatically when it changed)
    Sync(SyncArgs),
    /// Record measured results (JSON; see docs/USAGE.md) with their provenance
    #[command(name = "import-results")]
    ImportResults(ImportArgs),
    /// List the benchmarks and their columns
    Benchmarks(JsonArg),
    /// List the datasets
    Datasets(JsonArg),
    /// List the families
    Families(JsonArg),
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    /// Output format
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Same as --format json
    #[arg(long)]
    pub json: bool,
    /// Columns for table, csv and markdown output (comma-separated model object keys)
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Catalog folder to lint [default: --catalog, else the built-in catalog]
    pub dir: Option<PathBuf>,
    /// Print the problems as a JSON array
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Diff and rewrite even when the database already holds this catalog
    #[arg(long)]
    pub force: bool,
    /// Print the sync report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// JSON file with one result object or an array of them; `-` reads stdin
    pub file: PathBuf,
    /// Print the recorded run ids as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Registry name or Hugging Face repo id, optionally with a revision: NAME[@REV], ORG/REPO[@REV]
    #[arg(value_name = "MODEL")]
    pub model: String,
    /// Only files matching this glob (fnmatch: `*` also matches `/`); repeatable
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files matching this glob; repeatable
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// For a delta release: the base model (folder, registry name or repo id; pulled if needed)
    #[arg(long, value_name = "PATH|NAME|REPO")]
    pub base: Option<String>,
    /// For a delta release: where the applied model goes [default: $XDG_DATA_HOME/zoo/models/NAME]
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace an existing applied model folder
    #[arg(long)]
    pub overwrite: bool,
    /// No network at all: use the cache only (same as HF_HUB_OFFLINE=1)
    #[arg(long)]
    pub offline: bool,
    /// Show what would be downloaded, then stop
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub emit: Emit,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Registry name, cached repo id (ORG/NAME[@REV]) or path (a snapshot or a registered
    /// folder/file) [default: every cached repo and every registered copy]
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,
    /// Hashing threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub emit: Emit,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Repos in the Hugging Face cache with sizes and revisions (like `hf cache ls`)
    #[command(visible_alias = "list")]
    Ls(CacheLsArgs),
    /// Remove repos (ORG/NAME or a registry name) or revisions (a commit id) from the cache
    Rm(CacheRmArgs),
    /// Remove detached revisions, unreferenced blobs and unfinished downloads
    Prune(CachePruneArgs),
}

#[derive(Debug, Args)]
pub struct CacheLsArgs {
    /// One line per revision
    #[arg(long)]
    pub revisions: bool,
    /// Print JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CacheRmArgs {
    /// ORG/NAME, a registry name, ORG/NAME@REV or a commit id
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    #[command(flatten)]
    pub removal: RemovalFlags,
}

#[derive(Debug, Args)]
pub struct CachePruneArgs {
    #[command(flatten)]
    pub removal: RemovalFlags,
}

/// How `cache rm` and `cache prune` carry out their plan.
#[derive(Debug, Clone, Copy, Args)]
pub struct RemovalFlags {
    /// Show what would be removed and the space it frees, then stop
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the plan and the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// A model folder (config.json + weights) or a .gguf file
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// The registry name to give it
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Prompt format (see `zoo run --help`) [default: the model's own template]
    #[arg(long, value_name = "FORMAT")]
    pub template: Option<String>,
    /// Family to file it under [default: local]
    #[arg(long, value_name = "FAMILY")]
    pub family: Option<String>,
    /// Replace a local model of that name
    #[arg(long)]
    pub replace: bool,
    /// Hashing threads [default: all cores]
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub emit: Emit,
}
