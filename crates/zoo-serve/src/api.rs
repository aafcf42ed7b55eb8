//! The OpenAI API's request and response shapes, as the server reads and writes them, and the
//! error body. Requests are read leniently where clients differ (content as a string or as
//! text parts, `stop` as a string or a list, `max_completion_tokens` or `max_tokens`) and
//! strictly where a value would change the answer (ranges are checked, `n > 1` is refused).

use serde::Deserialize;
use serde_json::{Value, json};
use zoo_chat::Message;

/// An API error: the HTTP status and OpenAI's `{"error": {message, type, param, code}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<String>,
    pub code: Option<&'static str>,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, code: Option<&'static str>, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), kind, param: None, code }
    }

    /// 400: the body is not JSON, or not a request at all.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "invalid_request_error", None, message)
    }

    /// 422: a parameter has a wrong type or an out-of-range value.
    pub fn invalid_param(param: &str, message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(422, "invalid_request_error", Some("invalid_value"), message);
        e.param = Some(param.to_string());
        e
    }

    pub fn context_length(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(400, "invalid_request_error", Some("context_length_exceeded"), message);
        e.param = Some("messages".into());
        e
    }

    pub fn unauthorized() -> ApiError {
        ApiError::new(
            401,
            "authentication_error",
            Some("invalid_api_key"),
            "missing or wrong API key: send the key given to `zoo serve --api-key` as `Authorization: Bearer KEY`",
        )
    }

    pub fn model_not_found(model: &str, known: &[String]) -> ApiError {
        let mut e = ApiError::new(
            404,
            "invalid_request_error",
            Some("model_not_found"),
            format!("the model `{model}` does not exist here; this server has: {}", known.join(", ")),
        );
        e.param = Some("model".into());
        e
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            413,
            "invalid_request_error",
            Some("request_too_large"),
            format!("the request body is over the limit of {limit} bytes"),
        )
    }

    pub fn queue_full(message: impl Into<String>) -> ApiError {
        ApiError::new(429, "rate_limit_error", Some("queue_full"), message)
    }

    pub fn loading(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "service_unavailable", Some("model_loading"), message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "service_unavailable", None, message)
    }

    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(404, "invalid_request_error", Some("unknown_url"), format!("no such endpoint: {path}"))
    }

    pub fn method(path: &str) -> ApiError {
        ApiError::new(405, "invalid_request_error", Some("method_not_allowed"), format!("wrong method for {path}"))
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "server_error", None, message)
    }

    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }
}

/// `stop`: one string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Message content: a string, or a list of parts of which the text parts are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<Content>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// What both endpoints share.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Common {
    pub model: Option<String>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<i64>,
    pub max_completion_tokens: Option<i64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// An extension many servers accept (vLLM, llama-server).
    pub top_k: Option<i64>,
    pub seed: Option<i64>,
    pub stop: Option<Stop>,
    pub n: Option<i64>,
    /// Accepted and ignored, as llama-server does when 0.
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub user: Option<String>,
    /// Keep generating past the end-of-sequence token (vLLM's and llama-server's extension;
    /// benchmarks use it for answers of a known length).
    #[serde(default)]
    pub ignore_eos: bool,
    /// Not supported yet: refused rather than ignored, so that a client never reads a missing
    /// field as an answer (`false`, `0` and `null` are accepted).
    pub logprobs: Option<Value>,
    pub top_logprobs: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    #[serde(flatten)]
    pub common: Common,
}

/// `prompt`: a string, a list of one string, token ids, or a list of one list of ids.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PromptField {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
    IdLists(Vec<Vec<u32>>),
}

#[derive(Debug, Clone, Deserialize)]
pub struct CompletionRequest {
    pub prompt: PromptField,
    #[serde(default)]
    pub echo: bool,
    #[serde(flatten)]
    pub common: Common,
}

/// A completion prompt: text to tokenize, or ids.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// The checked sampling and limits of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub max_tokens: Option<usize>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// `Some(0)`: the request turned top-k off (`-1` or `0`); `None`: not asked.
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub include_usage: bool,
    pub ignore_eos: bool,
}

/// Parses a body: not JSON or not an object is 400, a field of the wrong type 422 naming it.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::malformed("the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| {
        let msg = e.to_string();
        // serde names the missing field; a missing required field is a malformed request.
        if msg.starts_with("missing field") {
            ApiError::malformed(msg)
        } else {
            ApiError::invalid_param(field_of(&msg).unwrap_or("body"), format!("invalid request: {msg}"))
        }
    })
}

fn field_of(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let len = msg.get(start..)?.find('`')?;
    msg.get(start..start + len)
}

impl Common {
    pub fn check(&self) -> Result<Checked, ApiError> {
        let max_tokens = match self.max_completion_tokens.or(self.max_tokens) {
            None => None,
            Some(n) if n >= 1 => Some(n as usize),
            Some(n) => {
                return Err(ApiError::invalid_param("max_tokens", format!("max_tokens must be at least 1, not {n}")));
            }
        };
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(ApiError::invalid_param("temperature", format!("temperature must be in [0, 2], not {t}")));
        }
        if let Some(p) = self.top_p
            && !(p > 0.0 && p <= 1.0)
        {
            return Err(ApiError::invalid_param("top_p", format!("top_p must be in (0, 1], not {p}")));
        }
        let top_k = match self.top_k {
            None => None,
            Some(0) | Some(-1) => Some(0),
            Some(k) if k > 0 => Some(k as usize),
            Some(k) => {
                return Err(ApiError::invalid_param(
                    "top_k",
                    format!("top_k must be positive (or -1/0: off), not {k}"),
                ));
            }
        };
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::invalid_param("n", format!("only n = 1 is supported, not {n}")));
        }
        for (name, v) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if let Some(v) = v
                && !(-2.0..=2.0).contains(&v)
            {
                return Err(ApiError::invalid_param(name, format!("{name} must be in [-2, 2], not {v}")));
            }
        }
        for (name, v) in [("logprobs", &self.logprobs), ("top_logprobs", &self.top_logprobs)] {
            let asked = match v {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(Value::Number(n)) => n.as_f64() != Some(0.0),
                Some(_) => true,
            };
            if asked {
                return Err(ApiError::invalid_param(name, format!("{name} is not supported by this server yet")));
            }
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 {
            return Err(ApiError::invalid_param("stop", format!("at most 4 stop sequences, not {}", stop.len())));
        }
        if stop.iter().any(String::is_empty) {
            return Err(ApiError::invalid_param("stop", "a stop sequence is empty"));
        }
        Ok(Checked {
            max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k,
            seed: self.seed.map(|s| s as u64),
            stop,
            include_usage: self.stream_options.as_ref().is_some_and(|o| o.include_usage),
            ignore_eos: self.ignore_eos,
        })
    }
}

impl ChatRequest {
    /// The messages as zoo's `Message`s (`developer` is `system`, as OpenAI maps it).
    pub fn messages(&self) -> Result<Vec<Message>, ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid_param("messages", "messages is empty"));
        }
        let mut out = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.iter().enumerate() {
            let text = match &m.content {
                None => String::new(),
                Some(Content::Text(t)) => t.clone(),
                Some(Content::Parts(parts)) => {
                    let mut t = String::new();
                    for p in parts {
                        match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                            (Some("text"), Some(s)) => t.push_str(s),
                            (kind, _) => {
                                return Err(ApiError::invalid_param(
                                    &format!("messages[{i}].content"),
                                    format!(
                                        "content part of type {} is not supported (text only)",
                                        kind.unwrap_or("?")
                                    ),
                                ));
                            }
                        }
                    }
                    t
                }
            };
            let msg = match m.role.as_str() {
                "system" | "developer" => Message::system(text),
                "user" => Message::user(text),
                "assistant" => Message::assistant(text),
                other => {
                    return Err(ApiError::invalid_param(
                        &format!("messages[{i}].role"),
                        format!("role `{other}` is not supported (system, developer, user, assistant)"),
                    ));
                }
            };
            out.push(msg);
        }
        Ok(out)
    }
}

impl CompletionRequest {
    pub fn input(&self) -> Result<PromptInput, ApiError> {
        let one = |n: usize| -> Result<(), ApiError> {
            if n == 1 {
                Ok(())
            } else {
                Err(ApiError::invalid_param("prompt", format!("one prompt per request, not {n}")))
            }
        };
        Ok(match &self.prompt {
            PromptField::Text(t) => PromptInput::Text(t.clone()),
            PromptField::Texts(v) => {
                one(v.len())?;
                PromptInput::Text(v.concat())
            }
            PromptField::Ids(ids) => PromptInput::Ids(ids.clone()),
            PromptField::IdLists(v) => {
                one(v.len())?;
                PromptInput::Ids(v.concat())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_leniently_and_check_strictly() {
        assert_eq!(parse::<ChatRequest>(b"{not json").unwrap_err().status, 400);
        assert_eq!(parse::<ChatRequest>(b"[1]").unwrap_err().status, 400);
        assert_eq!(parse::<ChatRequest>(b"{}").unwrap_err().status, 400);
        let e = parse::<ChatRequest>(br#"{"messages": [], "temperature": "hot"}"#).unwrap_err();
        assert_eq!(e.status, 422, "{e:?}");
        let r: ChatRequest = parse(
            br#"{"model":"m","messages":[{"role":"developer","content":"be brief"},
                {"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]},
                {"role":"assistant","content":null}],"stop":"x","max_completion_tokens":5}"#,
        )
        .unwrap();
        let m = r.messages().unwrap();
        assert_eq!((m[0].role.as_str(), m[1].content.as_str(), m[2].content.as_str()), ("system", "hi there", ""));
        let c = r.common.check().unwrap();
        assert_eq!((c.max_tokens, c.stop), (Some(5), vec!["x".to_string()]));
        let bad = |j: &str| parse::<ChatRequest>(j.as_bytes()).unwrap().common.check().unwrap_err();
        let msgs = r#""messages":[{"role":"user","content":"x"}]"#;
        assert_eq!(bad(&format!("{{{msgs},\"temperature\":3}}")).param.as_deref(), Some("temperature"));
        assert_eq!(bad(&format!("{{{msgs},\"top_p\":0}}")).param.as_deref(), Some("top_p"));
        assert_eq!(bad(&format!("{{{msgs},\"max_tokens\":0}}")).status, 422);
        assert_eq!(bad(&format!("{{{msgs},\"n\":2}}")).param.as_deref(), Some("n"));
        assert_eq!(bad(&format!("{{{msgs},\"logprobs\":true}}")).param.as_deref(), Some("logprobs"));
        let ok = parse::<ChatRequest>(format!("{{{msgs},\"logprobs\":false,\"top_logprobs\":0}}").as_bytes()).unwrap();
        assert!(ok.common.check().is_ok());
        // top_k: not asked (the model's default applies), off (-1 or 0, as vLLM and FastChat), or k.
        let top_k =
            |j: &str| parse::<ChatRequest>(format!("{{{msgs}{j}}}").as_bytes()).unwrap().common.check().unwrap().top_k;
        assert_eq!(
            (top_k(""), top_k(",\"top_k\":-1"), top_k(",\"top_k\":0"), top_k(",\"top_k\":5")),
            (None, Some(0), Some(0), Some(5))
        );
        assert_eq!(bad(&format!("{{{msgs},\"top_k\":-2}}")).param.as_deref(), Some("top_k"));
        assert_eq!(bad(&format!("{{{msgs},\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}}")).param.as_deref(), Some("stop"));
        let tool = parse::<ChatRequest>(br#"{"messages":[{"role":"tool","content":"x"}]}"#).unwrap();
        assert_eq!(tool.messages().unwrap_err().status, 422);
        let c: CompletionRequest = parse(br#"{"prompt":[[1,2,3]]}"#).unwrap();
        assert_eq!(c.input().unwrap(), PromptInput::Ids(vec![1, 2, 3]));
        let c: CompletionRequest = parse(br#"{"prompt":["a","b"]}"#).unwrap();
        assert_eq!(c.input().unwrap_err().status, 422);
    }
}
