//! A client of OpenAI-compatible HTTP servers (vLLM, TGI, llama-server, `zoo serve`, OpenAI
//! itself): chat completions, completions, and the next token's log-probabilities, each call with
//! a timeout and a bounded number of retries, so a large model served elsewhere is evaluated,
//! or used as a judge, the same way as the local engine.
//!
//! What a server "offers" differs: `/v1/completions` with `logprobs` answers in OpenAI's legacy
//! shape (`logprobs.top_logprobs[0]` a map of token → log-probability; vLLM) or in the chat
//! shape (`logprobs.content[0].top_logprobs` a list of `{token, logprob}`; llama-server). Both
//! are read; a server that returns neither gets a clear error, not a guess.

use std::time::Duration;

use serde_json::{Value, json};

/// Where and what to ask.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The base URL as OpenAI clients take it (`http://host:8080/v1`); a URL without a path gets
    /// `/v1` added.
    pub url: String,
    /// The `model` of each request; `None`: the first model the server lists at `/v1/models`.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer KEY`.
    pub key: Option<String>,
    /// One request's time limit.
    pub timeout: Duration,
    /// Tries after the first for a request that timed out, failed to connect, got 429 or 5xx, or
    /// an answer that is not the JSON it must be.
    pub retries: u32,
}

impl EndpointConfig {
    pub fn new(url: impl Into<String>) -> Self {
        EndpointConfig { url: url.into(), model: None, key: None, timeout: Duration::from_secs(120), retries: 2 }
    }
}

/// Why a request failed (after its retries, for the transient kinds).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EndpointError {
    /// Not reached, timed out, or cut off.
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}: HTTP {status}: {body}")]
    Status { url: String, status: u16, body: String },
    /// An answer that is not what the API promises.
    #[error("{url}: unexpected answer: {message}")]
    Garbage { url: String, message: String },
    /// The server does not offer what was asked (log-probabilities, a model).
    #[error("{url}: {message}")]
    Unsupported { url: String, message: String },
}

impl EndpointError {
    /// Worth trying again: the same request may succeed.
    fn transient(&self) -> bool {
        match self {
            EndpointError::Transport { .. } | EndpointError::Garbage { .. } => true,
            EndpointError::Status { status, .. } => *status == 429 || *status >= 500,
            EndpointError::Unsupported { .. } => false,
        }
    }
}

/// A connected endpoint: its base URL and the model every request names.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    model: String,
    key: Option<String>,
    retries: u32,
    agent: ureq::Agent,
}

/// One token's log-probability among the top ones the server returned.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
}

impl Endpoint {
    /// Builds the client and, without a model name, asks the server for its models.
    pub fn connect(cfg: &EndpointConfig) -> Result<Endpoint, EndpointError> {
        let mut base = cfg.url.trim_end_matches('/').to_string();
        let after_scheme = base.split_once("://").map(|(_, rest)| rest).unwrap_or(&base);
        if !after_scheme.contains('/') {
            base.push_str("/v1");
        }
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(cfg.timeout)).http_status_as_error(false).build().into();
        let mut ep = Endpoint { base, model: String::new(), key: cfg.key.clone(), retries: cfg.retries, agent };
        ep.model = match &cfg.model {
            Some(m) => m.clone(),
            None => ep.first_model()?,
        };
        Ok(ep)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    fn first_model(&self) -> Result<String, EndpointError> {
        let url = format!("{}/models", self.base);
        let v = self.retrying(|| self.send(&url, None))?;
        v["data"].as_array().and_then(|d| d.first()).and_then(|m| m["id"].as_str()).map(str::to_string).ok_or_else(
            || EndpointError::Unsupported {
                url,
                message: "the server lists no model; name one with --endpoint-model".into(),
            },
        )
    }

    /// One chat turn (`/chat/completions`), greedy when `temperature` is 0; the answer's text.
    pub fn chat(
        &self,
        system: Option<&str>,
        user: &str,
        max_tokens: usize,
        temperature: f64,
    ) -> Result<String, EndpointError> {
        let url = format!("{}/chat/completions", self.base);
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(json!({ "role": "system", "content": s }));
        }
        messages.push(json!({ "role": "user", "content": user }));
        let body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "stream": false,
        });
        self.retrying(|| {
            let v = self.send(&url, Some(&body))?;
            v["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| garbage(&url, "no choices[0].message.content", &v))
        })
    }

    /// A plain completion (`/completions`) of `prompt`, greedy; the generated text.
    pub fn complete(&self, prompt: &str, max_tokens: usize) -> Result<String, EndpointError> {
        let url = format!("{}/completions", self.base);
        let body = json!({
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "stream": false,
        });
        self.retrying(|| {
            let v = self.send(&url, Some(&body))?;
            v["choices"][0]["text"].as_str().map(str::to_string).ok_or_else(|| garbage(&url, "no choices[0].text", &v))
        })
    }

    /// The `top` most likely next tokens after `prompt` with their log-probabilities
    /// (`/completions`, one greedy token, `logprobs: top`).
    pub fn next_token_logprobs(&self, prompt: &str, top: usize) -> Result<Vec<TokenLogprob>, EndpointError> {
        let url = format!("{}/completions", self.base);
        let body = json!({
            "model": self.model,
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": top,
            "stream": false,
        });
        let v = self.retrying(|| self.send(&url, Some(&body)))?;
        parse_top_logprobs(&v).ok_or_else(|| EndpointError::Unsupported {
            url,
            message: "the server returned no log-probabilities for /completions with `logprobs` \
                      (it does not offer them); use --mode generate"
                .into(),
        })
    }

    fn send(&self, url: &str, body: Option<&Value>) -> Result<Value, EndpointError> {
        let transport = |e: ureq::Error| EndpointError::Transport { url: url.to_string(), message: e.to_string() };
        let auth = self.key.as_ref().map(|k| format!("Bearer {k}"));
        let mut resp = match body {
            Some(b) => {
                let mut req = self.agent.post(url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send_json(b).map_err(transport)?
            }
            None => {
                let mut req = self.agent.get(url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call().map_err(transport)?
            }
        };
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| EndpointError::Transport { url: url.to_string(), message: e.to_string() })?;
        if status != 200 {
            return Err(EndpointError::Status { url: url.to_string(), status, body: clip(&text, 300) });
        }
        serde_json::from_str(&text).map_err(|e| EndpointError::Garbage {
            url: url.to_string(),
            message: format!("not JSON ({e}): {}", clip(&text, 200)),
        })
    }

    /// `f` tried up to `1 + retries` times while it fails transiently, waiting 0.5 s, 1 s, 2 s …
    fn retrying<T>(&self, mut f: impl FnMut() -> Result<T, EndpointError>) -> Result<T, EndpointError> {
        let mut wait = Duration::from_millis(500);
        let mut tries = 0;
        loop {
            match f() {
                Err(e) if e.transient() && tries < self.retries => {
                    tries += 1;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(8));
                }
                other => return other,
            }
        }
    }
}

fn garbage(url: &str, what: &str, v: &Value) -> EndpointError {
    EndpointError::Garbage { url: url.to_string(), message: format!("{what}: {}", clip(&v.to_string(), 200)) }
}

fn clip(s: &str, n: usize) -> String {
    let mut out: String = s.chars().take(n).collect();
    if s.chars().count() > n {
        out.push('…');
    }
    out
}

/// The first generated token's top log-probabilities, in either shape (see the module doc).
fn parse_top_logprobs(v: &Value) -> Option<Vec<TokenLogprob>> {
    let lp = &v["choices"][0]["logprobs"];
    if let Some(first) = lp["content"].as_array().and_then(|c| c.first()) {
        let top = first["top_logprobs"].as_array()?;
        let out: Vec<TokenLogprob> = top
            .iter()
            .filter_map(|t| {
                Some(TokenLogprob { token: t["token"].as_str()?.to_string(), logprob: t["logprob"].as_f64()? })
            })
            .collect();
        return (!out.is_empty()).then_some(out);
    }
    let map = lp["top_logprobs"].as_array()?.first()?.as_object()?;
    let mut out: Vec<TokenLogprob> =
        map.iter().filter_map(|(k, x)| Some(TokenLogprob { token: k.clone(), logprob: x.as_f64()? })).collect();
    out.sort_by(|a, b| b.logprob.total_cmp(&a.logprob));
    (!out.is_empty()).then_some(out)
}

/// The log-probability of each option's continuation (` A`, ` B`, …) read off the next token's
/// top list; `None` for an option the list does not contain. Leading spaces are compared
/// exactly, as tokens are (a tokenizer's `Ġ`/`▁` markers are already text in both shapes).
pub fn option_logprobs(top: &[TokenLogprob], continuations: &[String]) -> Vec<Option<f64>> {
    continuations
        .iter()
        .map(|c| {
            top.iter()
                .filter(|t| t.token == *c)
                .map(|t| t.logprob)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_logprob_shapes() {
        let llama = json!({"choices": [{"text": " B", "logprobs": {"content": [{"token": " B", "logprob": -0.5,
            "top_logprobs": [{"id": 1, "token": " B", "logprob": -0.5}, {"id": 2, "token": " A", "logprob": -1.5}]}]}}]});
        let got = parse_top_logprobs(&llama).unwrap();
        assert_eq!(got[1], TokenLogprob { token: " A".into(), logprob: -1.5 });
        let legacy = json!({"choices": [{"text": " B", "logprobs": {"tokens": [" B"], "token_logprobs": [-0.5],
            "top_logprobs": [{" A": -1.5, " B": -0.5}]}}]});
        let got = parse_top_logprobs(&legacy).unwrap();
        assert_eq!(got[0], TokenLogprob { token: " B".into(), logprob: -0.5 });
        assert_eq!(parse_top_logprobs(&json!({"choices": [{"text": "x", "logprobs": null}]})), None);
        let opts: Vec<String> = [" A", " B", " C"].iter().map(|s| s.to_string()).collect();
        assert_eq!(option_logprobs(&got, &opts), vec![Some(-1.5), Some(-0.5), None]);
    }

    #[test]
    fn base_url_gets_v1_only_without_a_path() {
        let mut cfg = EndpointConfig::new("http://127.0.0.1:9/");
        cfg.model = Some("m".into());
        assert_eq!(Endpoint::connect(&cfg).unwrap().base(), "http://127.0.0.1:9/v1");
        cfg.url = "http://127.0.0.1:9/openai/v1".into();
        assert_eq!(Endpoint::connect(&cfg).unwrap().base(), "http://127.0.0.1:9/openai/v1");
    }

    #[test]
    fn refused_connection_is_a_transport_error_after_retries() {
        // Port 9 (discard) is closed on test machines: the connection is refused at once.
        let mut cfg = EndpointConfig::new("http://127.0.0.1:9");
        cfg.model = Some("m".into());
        cfg.retries = 1;
        let ep = Endpoint::connect(&cfg).unwrap();
        let e = ep.complete("hi", 1).unwrap_err();
        assert!(matches!(e, EndpointError::Transport { .. }), "{e}");
    }
}
