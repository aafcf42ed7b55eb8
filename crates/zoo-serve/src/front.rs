//! `zoo serve --controller URL`: the OpenAI front of a FastChat cluster. Each request asks the
//! controller for a worker of its model (the controller's dispatch), then streams from that
//! worker's `/worker_generate_stream`, turning FastChat's cumulative texts into OpenAI deltas.
//!
//! **Decision:** chat requests carry the OpenAI `messages` (a zoo extension that zoo workers
//! render with the model's own prompt format) and, for completions, the `prompt` text. A
//! FastChat worker (which takes only a rendered `prompt`) is asked through FastChat's own
//! `openai_api_server`, which renders with the worker's conversation template.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::{Value, json};

use crate::api::{ApiError, Checked};
use crate::cluster::{self, ControllerClient};
use crate::engine::{Finish, GenEvent};

/// Starts one generation on a worker of `model`; returns the model's name and the events.
pub async fn start(
    client: &ControllerClient,
    model: Option<&str>,
    input: Value,
    c: &Checked,
) -> Result<(String, BoxStream<'static, GenEvent>), ApiError> {
    let unavailable = |e: cluster::ClusterError| ApiError::unavailable(format!("the cluster did not answer: {e}"));
    let models = client.list_models().await.map_err(unavailable)?;
    let model = match model {
        Some(m) => m.to_string(),
        None if models.len() == 1 => models.first().cloned().unwrap_or_default(),
        None => return Err(ApiError::invalid_param("model", "name the model (`model`): the cluster serves several")),
    };
    if !models.contains(&model) {
        return Err(ApiError::model_not_found(&model, &models));
    }
    let worker = client
        .get_worker_address(&model)
        .await
        .map_err(unavailable)?
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::unavailable(format!("no worker of {model} is registered with the controller")))?;
    let mut params = json!({
        "model": model,
        "temperature": c.temperature.unwrap_or(0.7),
        "top_p": c.top_p.unwrap_or(1.0),
        "top_k": c.top_k.filter(|&k| k > 0).map_or(-1, |k| k as i64),
        "echo": false,
        "stop": c.stop,
    });
    if let Some(n) = c.max_tokens {
        params["max_new_tokens"] = json!(n);
    }
    if let Some(s) = c.seed {
        params["seed"] = json!(s);
    }
    if let (Some(p), Some(i)) = (params.as_object_mut(), input.as_object()) {
        p.extend(i.clone());
    }
    let chunks = cluster::generate_stream(&worker, params)
        .await
        .map_err(|e| ApiError::unavailable(format!("the worker {worker} did not answer: {e}")))?;
    Ok((model, deltas(chunks.boxed())))
}

/// FastChat chunks (cumulative `text`, `error_code`, last one with `usage`/`finish_reason`)
/// as engine events: the new part of each text, then `Done` (or `Error`).
fn deltas(chunks: BoxStream<'static, Result<Value, cluster::ClusterError>>) -> BoxStream<'static, GenEvent> {
    struct St {
        chunks: BoxStream<'static, Result<Value, cluster::ClusterError>>,
        sent: String,
        last: Option<Value>,
        done: bool,
    }
    let st = St { chunks, sent: String::new(), last: None, done: false };
    futures_util::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            match st.chunks.next().await {
                Some(Ok(chunk)) => {
                    let code = chunk.get("error_code").and_then(Value::as_i64).unwrap_or(0);
                    let text = chunk.get("text").and_then(Value::as_str).unwrap_or_default().replace('\u{FFFD}', "");
                    if code != 0 {
                        st.done = true;
                        return Some((GenEvent::Error(format!("worker error {code}: {text}")), st));
                    }
                    let new = text.strip_prefix(st.sent.as_str()).map(str::to_string);
                    st.last = Some(chunk);
                    match new {
                        Some(n) if !n.is_empty() => {
                            st.sent = text;
                            return Some((GenEvent::Text(n), st));
                        }
                        _ => continue,
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((GenEvent::Error(format!("the worker stream broke: {e}")), st));
                }
                None => {
                    st.done = true;
                    let last = st.last.take().unwrap_or(Value::Null);
                    let usage = last.get("usage");
                    let n = |k: &str| usage.and_then(|u| u.get(k)).and_then(Value::as_u64).unwrap_or(0) as usize;
                    let reason = match last.get("finish_reason").and_then(Value::as_str) {
                        Some("length") => "length",
                        _ => "stop",
                    };
                    let done =
                        Finish { reason, prompt_tokens: n("prompt_tokens"), completion_tokens: n("completion_tokens") };
                    return Some((GenEvent::Done(done), st));
                }
            }
        }
    })
    .boxed()
}
