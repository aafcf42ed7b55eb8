//! Prometheus metrics (`GET /metrics`, text format 0.0.4), labelled by model: requests by
//! endpoint and status, prompt and completion tokens, queue depth and running sequences,
//! histograms of time to first token, time per output token and sequences per decode step.
//! Names follow Prometheus conventions (`_total` counters, `_seconds` units) and the spirit of
//! vLLM's and TGI's metrics.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use crate::engine::Finish;

const TTFT_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];
const TOKEN_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

#[derive(Debug, Clone)]
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len()], sum: 0.0, count: 0 }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(self.counts.iter_mut()) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, model: &str) {
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"{b}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{model=\"{model}\",le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{model=\"{model}\"}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{model=\"{model}\"}} {}", self.count);
    }
}

#[derive(Debug)]
struct Inner {
    requests: BTreeMap<(String, u16), u64>,
    prompt_tokens: u64,
    prompt_cached: u64,
    completion_tokens: u64,
    cancelled: u64,
    ttft: Histogram,
    token_gap: Histogram,
    batch: Histogram,
    max_batch: usize,
}

/// One model's figures, updated by its engine thread and the HTTP handlers.
#[derive(Debug)]
pub struct ModelMetrics {
    inner: Mutex<Inner>,
}

impl Default for ModelMetrics {
    fn default() -> Self {
        ModelMetrics {
            inner: Mutex::new(Inner {
                requests: BTreeMap::new(),
                prompt_tokens: 0,
                prompt_cached: 0,
                completion_tokens: 0,
                cancelled: 0,
                ttft: Histogram::new(TTFT_BUCKETS),
                token_gap: Histogram::new(TOKEN_BUCKETS),
                batch: Histogram::new(BATCH_BUCKETS),
                max_batch: 0,
            }),
        }
    }
}

impl ModelMetrics {
    fn with(&self, f: impl FnOnce(&mut Inner)) {
        if let Ok(mut g) = self.inner.lock() {
            f(&mut g);
        }
    }

    /// A request answered (or refused) with `status` on `endpoint`.
    pub fn record_request(&self, endpoint: &str, status: u16) {
        self.with(|m| *m.requests.entry((endpoint.to_string(), status)).or_default() += 1);
    }

    pub fn record_step(&self, sequences: usize, _took: Duration) {
        self.with(|m| {
            m.batch.observe(sequences as f64);
            m.max_batch = m.max_batch.max(sequences);
        });
    }

    pub fn record_first_token(&self, since_arrival: Duration) {
        self.with(|m| m.ttft.observe(since_arrival.as_secs_f64()));
    }

    pub fn record_token_gap(&self, gap: Duration) {
        self.with(|m| m.token_gap.observe(gap.as_secs_f64()));
    }

    pub fn record_done(&self, f: &Finish) {
        self.with(|m| {
            m.prompt_tokens += f.prompt_tokens as u64;
            m.completion_tokens += f.completion_tokens as u64;
        });
    }

    /// Prompt tokens a sequence did not run: its state came from the pool or a shared prefix.
    pub fn record_prompt_cached(&self, n: usize) {
        self.with(|m| m.prompt_cached += n as u64);
    }

    pub fn record_cancelled(&self) {
        self.with(|m| m.cancelled += 1);
    }

    /// The most sequences one step has decoded together.
    pub fn max_batch(&self) -> usize {
        self.inner.lock().map(|m| m.max_batch).unwrap_or(0)
    }
}

/// What one model adds to the exposition: its figures and its gauges read now.
pub struct ModelSample<'a> {
    pub model: &'a str,
    pub metrics: &'a ModelMetrics,
    pub queue_depth: usize,
    pub active: usize,
    pub batch_size: usize,
}

/// The text exposition of every model.
pub fn render(models: &[ModelSample<'_>]) -> String {
    let mut out = String::new();
    let snapshots: Vec<(String, Option<Inner>, &ModelSample<'_>)> = models
        .iter()
        .map(|s| {
            let snap = s.metrics.inner.lock().ok().map(|m| Inner {
                requests: m.requests.clone(),
                prompt_tokens: m.prompt_tokens,
                prompt_cached: m.prompt_cached,
                completion_tokens: m.completion_tokens,
                cancelled: m.cancelled,
                ttft: m.ttft.clone(),
                token_gap: m.token_gap.clone(),
                batch: m.batch.clone(),
                max_batch: m.max_batch,
            });
            (escape(s.model), snap, s)
        })
        .collect();
    let mut family =
        |name: &str, kind: &str, help: &str, body: &dyn Fn(&mut String, &str, &Inner, &ModelSample<'_>)| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (model, snap, s) in &snapshots {
                if let Some(m) = snap {
                    body(&mut out, model.as_str(), m, s);
                }
            }
        };
    family("zoo_requests_total", "counter", "HTTP requests by endpoint and status.", &|o, model, m, _| {
        for ((endpoint, status), n) in &m.requests {
            let _ =
                writeln!(o, "zoo_requests_total{{model=\"{model}\",endpoint=\"{endpoint}\",status=\"{status}\"}} {n}");
        }
    });
    family("zoo_prompt_tokens_total", "counter", "Prompt tokens of finished generations.", &|o, model, m, _| {
        let _ = writeln!(o, "zoo_prompt_tokens_total{{model=\"{model}\"}} {}", m.prompt_tokens);
    });
    family(
        "zoo_prompt_tokens_cached_total",
        "counter",
        "Prompt tokens not run: taken from an earlier sequence's state or a prefix shared with requests admitted together.",
        &|o, model, m, _| {
            let _ = writeln!(o, "zoo_prompt_tokens_cached_total{{model=\"{model}\"}} {}", m.prompt_cached);
        },
    );
    family("zoo_completion_tokens_total", "counter", "Generated tokens of finished generations.", &|o, model, m, _| {
        let _ = writeln!(o, "zoo_completion_tokens_total{{model=\"{model}\"}} {}", m.completion_tokens);
    });
    family(
        "zoo_requests_cancelled_total",
        "counter",
        "Generations ended because the client went away.",
        &|o, model, m, _| {
            let _ = writeln!(o, "zoo_requests_cancelled_total{{model=\"{model}\"}} {}", m.cancelled);
        },
    );
    family("zoo_queue_depth", "gauge", "Requests waiting for a slot.", &|o, model, _, s| {
        let _ = writeln!(o, "zoo_queue_depth{{model=\"{model}\"}} {}", s.queue_depth);
    });
    family("zoo_active_sequences", "gauge", "Sequences being generated.", &|o, model, _, s| {
        let _ = writeln!(o, "zoo_active_sequences{{model=\"{model}\"}} {}", s.active);
    });
    family("zoo_batch_size_limit", "gauge", "Sequences decoded together at most.", &|o, model, _, s| {
        let _ = writeln!(o, "zoo_batch_size_limit{{model=\"{model}\"}} {}", s.batch_size);
    });
    family(
        "zoo_time_to_first_token_seconds",
        "histogram",
        "From a request's arrival to its first generated token.",
        &|o, model, m, _| m.ttft.write(o, "zoo_time_to_first_token_seconds", model),
    );
    family(
        "zoo_time_per_output_token_seconds",
        "histogram",
        "Between two generated tokens of one request.",
        &|o, model, m, _| m.token_gap.write(o, "zoo_time_per_output_token_seconds", model),
    );
    family("zoo_batch_sequences", "histogram", "Sequences advanced by one forward pass.", &|o, model, m, _| {
        m.batch.write(o, "zoo_batch_sequences", model)
    });
    out
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_counters_gauges_and_cumulative_buckets() {
        let m = ModelMetrics::default();
        m.record_request("chat", 200);
        m.record_request("chat", 200);
        m.record_request("chat", 429);
        m.record_first_token(Duration::from_millis(30));
        m.record_first_token(Duration::from_millis(300));
        m.record_step(3, Duration::from_millis(10));
        m.record_done(&Finish { reason: "stop", prompt_tokens: 7, completion_tokens: 5 });
        let text = render(&[ModelSample { model: "a\"b", metrics: &m, queue_depth: 2, active: 1, batch_size: 8 }]);
        assert!(text.contains("zoo_requests_total{model=\"a\\\"b\",endpoint=\"chat\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("status=\"429\"} 1"));
        assert!(text.contains("zoo_completion_tokens_total{model=\"a\\\"b\"} 5"));
        assert!(text.contains("zoo_queue_depth{model=\"a\\\"b\"} 2"));
        // Buckets are cumulative: 30 ms is under 0.05, both are under 0.5 and +Inf.
        assert!(text.contains("zoo_time_to_first_token_seconds_bucket{model=\"a\\\"b\",le=\"0.05\"} 1"));
        assert!(text.contains("zoo_time_to_first_token_seconds_bucket{model=\"a\\\"b\",le=\"0.5\"} 2"));
        assert!(text.contains("zoo_time_to_first_token_seconds_bucket{model=\"a\\\"b\",le=\"+Inf\"} 2"));
        assert!(text.contains("zoo_batch_sequences_bucket{model=\"a\\\"b\",le=\"2\"} 0"));
        assert!(text.contains("zoo_batch_sequences_bucket{model=\"a\\\"b\",le=\"4\"} 1"));
        assert_eq!(m.max_batch(), 3);
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            assert!(line.ends_with("counter") || line.ends_with("gauge") || line.ends_with("histogram"), "{line}");
        }
    }
}
