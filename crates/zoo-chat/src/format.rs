//! Prompt formats: the registry's `chat_template` names turned into prompt text, stop strings and system prompts.
//!
//! Every built-in format is plain string building, written from the reference sources named in the crate README,
//! so its output can be checked byte for byte against those sources.

use crate::error::{Error, Result};
use crate::message::{Message, Role};
use crate::template::ChatTemplate;

/// LLM Zoo's system text for Phoenix and Chimera (`llmzoo/utils.py`); it ends with two newlines.
pub const LLMZOO_SYSTEM: &str = "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n\n";

/// HuatuoGPT (v1) system sentence (`huatuo_cli_demo_stream.py`).
pub const HUATUO_SYSTEM: &str = "一位用户和智能医疗大模型HuatuoGPT之间的对话。对于用户的医疗问诊，HuatuoGPT给出准确的、详细的、温暖的指导建议。对于用户的指令问题，HuatuoGPT给出有益的、详细的、有礼貌的回答。";

/// FastChat's `vicuna_v1.1` system message.
pub const VICUNA_SYSTEM: &str = "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions.";

/// Stanford Alpaca's preamble for an instruction without input.
pub const ALPACA_SYSTEM: &str =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.";

/// Options for [`PromptFormat::from_name`] that only some formats use.
#[derive(Debug, Clone, Default)]
pub struct FormatOptions {
    /// The tokenizer's eos token as text. Used by `huatuo`, `huatuo2`, `apollo`, `apollo-large` and
    /// `apollo2-phi3`; each has a default (see [`PromptFormat::from_name`]).
    pub eos: Option<String>,
    /// The model's own chat template; required by `jinja`.
    pub chat_template: Option<ChatTemplate>,
}

/// How to turn messages into prompt text for one model family.
#[derive(Debug, Clone)]
pub enum PromptFormat {
    /// Phoenix and Chimera: `Human: <s>{q}</s>Assistant: <s>{a}</s>`.
    LlmZoo,
    /// HuatuoGPT 7B/13B: `<病人>：{q} <HuatuoGPT>：{a}{eos}`.
    Huatuo { eos: String },
    /// HuatuoGPT-II: `<问>：{q}\n<答>：{a}\n`.
    Huatuo2 { eos: String },
    /// Apollo (Qwen, Gemma, Yi backbones) and Apollo2 (Qwen2, Gemma2): `User:{q}\nAssistant:{a}`.
    Apollo { eos: String },
    /// Apollo-34B / 72B: `<|User|>:{q}\n<|Assistant|>:{a}`.
    ApolloLarge { eos: String },
    /// Apollo2-3.8B (Phi-3): `<|user|>\n{q}<|end|><|assistant|>\n{a}<|end|>`.
    Apollo2Phi3 { eos: String },
    /// Vicuna v1.1 (FastChat `vicuna_v1.1`).
    Vicuna,
    /// Stanford Alpaca instruction format.
    Alpaca,
    /// ChatML (`<|im_start|>role\n...<|im_end|>\n`).
    ChatMl,
    /// Gemma (`<start_of_turn>user\n...<end_of_turn>\n`).
    Gemma,
    /// Llama 2 chat (`<s>[INST] ... [/INST] ... </s>`).
    Llama2,
    /// Llama 3 instruct (`<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>`).
    Llama3,
    /// The model's own Jinja chat template.
    Jinja(Box<ChatTemplate>),
    /// No template: the prompt is the messages' text joined as is (base models).
    Raw,
}

impl PromptFormat {
    /// Every name [`PromptFormat::from_name`] accepts, the same list as the registry's `KNOWN_TEMPLATES`.
    pub const NAMES: &'static [&'static str] = &[
        "llmzoo",
        "huatuo",
        "huatuo2",
        "apollo",
        "apollo-large",
        "apollo2-phi3",
        "vicuna",
        "alpaca",
        "chatml",
        "gemma",
        "llama2",
        "llama3",
        "jinja",
        "none",
    ];

    /// The format for a registry `chat_template` name.
    ///
    /// Default eos literals where `options.eos` is `None`: `huatuo` and `huatuo2` `</s>` (Baichuan, Ziya,
    /// Baichuan2), `apollo` and `apollo-large` `<|endoftext|>` (Qwen; pass `<eos>` for Gemma-based Apollo),
    /// `apollo2-phi3` `<|endoftext|>`.
    pub fn from_name(name: &str, options: FormatOptions) -> Result<Self> {
        let eos = |default: &str| options.eos.clone().unwrap_or_else(|| default.to_string());
        Ok(match name {
            "llmzoo" => PromptFormat::LlmZoo,
            "huatuo" => PromptFormat::Huatuo { eos: eos("</s>") },
            "huatuo2" => PromptFormat::Huatuo2 { eos: eos("</s>") },
            "apollo" => PromptFormat::Apollo { eos: eos("<|endoftext|>") },
            "apollo-large" => PromptFormat::ApolloLarge { eos: eos("<|endoftext|>") },
            "apollo2-phi3" => PromptFormat::Apollo2Phi3 { eos: eos("<|endoftext|>") },
            "vicuna" => PromptFormat::Vicuna,
            "alpaca" => PromptFormat::Alpaca,
            "chatml" => PromptFormat::ChatMl,
            "gemma" => PromptFormat::Gemma,
            "llama2" => PromptFormat::Llama2,
            "llama3" => PromptFormat::Llama3,
            "jinja" => match options.chat_template {
                Some(t) => PromptFormat::Jinja(Box::new(t)),
                None => return Err(Error::MissingChatTemplate),
            },
            "none" => PromptFormat::Raw,
            _ => return Err(Error::UnknownFormat { name: name.to_string(), known: Self::NAMES.join(", ") }),
        })
    }

    /// The registry name of this format.
    pub fn name(&self) -> &'static str {
        match self {
            PromptFormat::LlmZoo => "llmzoo",
            PromptFormat::Huatuo { .. } => "huatuo",
            PromptFormat::Huatuo2 { .. } => "huatuo2",
            PromptFormat::Apollo { .. } => "apollo",
            PromptFormat::ApolloLarge { .. } => "apollo-large",
            PromptFormat::Apollo2Phi3 { .. } => "apollo2-phi3",
            PromptFormat::Vicuna => "vicuna",
            PromptFormat::Alpaca => "alpaca",
            PromptFormat::ChatMl => "chatml",
            PromptFormat::Gemma => "gemma",
            PromptFormat::Llama2 => "llama2",
            PromptFormat::Llama3 => "llama3",
            PromptFormat::Jinja(_) => "jinja",
            PromptFormat::Raw => "none",
        }
    }

    /// The system prompt the format uses when the messages bring none.
    pub fn default_system_prompt(&self) -> Option<&'static str> {
        match self {
            PromptFormat::LlmZoo => Some(LLMZOO_SYSTEM),
            PromptFormat::Huatuo { .. } => Some(HUATUO_SYSTEM),
            PromptFormat::Vicuna => Some(VICUNA_SYSTEM),
            PromptFormat::Alpaca => Some(ALPACA_SYSTEM),
            _ => None,
        }
    }

    /// Text that ends the model's reply when it appears in the output. Generation should also stop on the
    /// tokenizer's eos id; these catch the eos written out as text and the model starting the next turn itself.
    pub fn stop_strings(&self) -> Vec<String> {
        let v = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut stops = match self {
            PromptFormat::LlmZoo => v(&["</s>"]),
            PromptFormat::Huatuo { eos } => vec![eos.clone(), "<病人>".to_string()],
            PromptFormat::Huatuo2 { eos } => vec![eos.clone(), "<问>".to_string()],
            PromptFormat::Apollo { eos } => vec![eos.clone(), "\nUser:".to_string()],
            PromptFormat::ApolloLarge { eos } => vec![eos.clone(), "<|User|>".to_string()],
            PromptFormat::Apollo2Phi3 { eos } => vec!["<|end|>".to_string(), eos.clone(), "<|user|>".to_string()],
            PromptFormat::Vicuna => v(&["</s>"]),
            PromptFormat::Alpaca => v(&["</s>", "### Instruction:"]),
            PromptFormat::ChatMl => v(&["<|im_end|>", "<|im_start|>", "<|endoftext|>"]),
            PromptFormat::Gemma => v(&["<end_of_turn>", "<eos>"]),
            PromptFormat::Llama2 => v(&["</s>"]),
            PromptFormat::Llama3 => v(&["<|eot_id|>", "<|end_of_text|>"]),
            PromptFormat::Jinja(t) => t.special_tokens().eos.iter().cloned().collect(),
            PromptFormat::Raw => Vec::new(),
        };
        stops.retain(|s| !s.is_empty());
        stops.dedup();
        stops
    }

    /// Whether the rendered prompt already starts with the model's BOS text, so the tokenizer must not add
    /// another. For `jinja` this is the template mentioning `bos_token`; callers that can should instead check
    /// whether the rendered text starts with the BOS literal.
    pub fn includes_bos(&self) -> bool {
        match self {
            PromptFormat::Gemma | PromptFormat::Llama2 | PromptFormat::Llama3 => true,
            PromptFormat::Jinja(t) => t.source().contains("bos_token"),
            _ => false,
        }
    }

    /// Render the messages as prompt text. With `add_generation_prompt` the text ends with the opening of an
    /// assistant turn, ready for the model to write the reply.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        match self {
            PromptFormat::Jinja(t) => t.render(messages, add_generation_prompt),
            PromptFormat::Raw => Ok(messages.iter().map(|m| m.content.as_str()).collect()),
            PromptFormat::LlmZoo => {
                let (system, rest) = split_system(self, messages)?;
                // A user system text replaces the default; the trained layout has a blank line before the first
                // `Human:`, so trailing newlines are normalised to exactly two.
                let mut out = match system {
                    Some(s) => with_suffix(s, "\n\n"),
                    None => LLMZOO_SYSTEM.to_string(),
                };
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["Human: <s>", t, "</s>"]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["Assistant: <s>", t, "</s>"]),
                    (_, None) => out.push_str("Assistant: <s>"),
                })?;
                Ok(out)
            }
            PromptFormat::Huatuo { eos } => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = system.unwrap_or(HUATUO_SYSTEM).to_string();
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["<病人>：", t, " "]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["<HuatuoGPT>：", t, eos]),
                    (_, None) => out.push_str("<HuatuoGPT>："),
                })?;
                Ok(out)
            }
            PromptFormat::Huatuo2 { .. } => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = system.map(|s| with_suffix(s, "\n")).unwrap_or_default();
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["<问>：", t, "\n"]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["<答>：", t, "\n"]),
                    (_, None) => out.push_str("<答>："),
                })?;
                Ok(out)
            }
            PromptFormat::Apollo { .. } => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = system.map(|s| with_suffix(s, "\n")).unwrap_or_default();
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["User:", t, "\n"]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["Assistant:", t, "\n"]),
                    (_, None) => out.push_str("Assistant:"),
                })?;
                Ok(out)
            }
            PromptFormat::ApolloLarge { .. } => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = system.map(|s| with_suffix(s, "\n")).unwrap_or_default();
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["<|User|>:", t, "\n"]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["<|Assistant|>:", t, "\n"]),
                    (_, None) => out.push_str("<|Assistant|>:"),
                })?;
                Ok(out)
            }
            PromptFormat::Apollo2Phi3 { .. } => {
                let (system, rest) = split_system(self, messages)?;
                // Phi-3's own template has a system turn; Apollo2 published none, so a user system text gets
                // Phi-3's layout.
                let mut out = system.map(|s| format!("<|system|>\n{s}<|end|>")).unwrap_or_default();
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["<|user|>\n", t, "<|end|>"]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["<|assistant|>\n", t, "<|end|>"]),
                    (_, None) => out.push_str("<|assistant|>\n"),
                })?;
                Ok(out)
            }
            PromptFormat::Vicuna => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = system.unwrap_or(VICUNA_SYSTEM).to_string();
                out.push(' ');
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["USER: ", t, " "]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["ASSISTANT: ", t, "</s>"]),
                    (_, None) => out.push_str("ASSISTANT:"),
                })?;
                Ok(out)
            }
            PromptFormat::Alpaca => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = with_suffix(system.unwrap_or(ALPACA_SYSTEM), "\n\n");
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => push_all(out, &["### Instruction:\n", t, "\n\n"]),
                    (Turn::Assistant, Some(t)) => push_all(out, &["### Response:\n", t, "\n\n"]),
                    (_, None) => out.push_str("### Response:\n"),
                })?;
                Ok(out)
            }
            PromptFormat::ChatMl => {
                let mut out = String::new();
                for m in messages {
                    push_all(&mut out, &["<|im_start|>", m.role.as_str(), "\n", &m.content, "<|im_end|>\n"]);
                }
                if add_generation_prompt {
                    out.push_str("<|im_start|>assistant\n");
                }
                Ok(out)
            }
            PromptFormat::Llama3 => {
                let mut out = String::new();
                for (i, m) in messages.iter().enumerate() {
                    if i == 0 {
                        out.push_str("<|begin_of_text|>");
                    }
                    let body = m.content.trim();
                    push_all(&mut out, &["<|start_header_id|>", m.role.as_str(), "<|end_header_id|>\n\n", body]);
                    out.push_str("<|eot_id|>");
                }
                if add_generation_prompt {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
                Ok(out)
            }
            PromptFormat::Llama2 => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = String::new();
                let mut first = true;
                // The generation prompt is implicit: a user turn already ends with `[/INST]`.
                render_turns(self, rest, false, &mut out, |role, text, out| {
                    let Some(t) = text else { return };
                    let content = match (first, system) {
                        (true, Some(s)) => format!("<<SYS>>\n{s}\n<</SYS>>\n\n{t}"),
                        _ => t.to_string(),
                    };
                    first = false;
                    match role {
                        Turn::User => push_all(out, &["<s>[INST] ", content.trim(), " [/INST]"]),
                        Turn::Assistant => push_all(out, &[" ", content.trim(), " </s>"]),
                    }
                })?;
                Ok(out)
            }
            PromptFormat::Gemma => {
                let (system, rest) = split_system(self, messages)?;
                let mut out = "<bos>".to_string();
                let mut prefix = system.map(|s| format!("{s}\n\n"));
                render_turns(self, rest, add_generation_prompt, &mut out, |role, text, out| match (role, text) {
                    (Turn::User, Some(t)) => {
                        let p = prefix.take().unwrap_or_default();
                        push_all(out, &["<start_of_turn>user\n", &p, t.trim(), "<end_of_turn>\n"])
                    }
                    (Turn::Assistant, Some(t)) => {
                        push_all(out, &["<start_of_turn>model\n", t.trim(), "<end_of_turn>\n"])
                    }
                    (_, None) => out.push_str("<start_of_turn>model\n"),
                })?;
                Ok(out)
            }
        }
    }
}

/// A user or assistant turn in a built-in format; system messages are handled before the turns.
#[derive(Clone, Copy)]
enum Turn {
    User,
    Assistant,
}

fn push_all(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
}

/// `text` with its trailing newlines replaced by `suffix`, so that passing a format's own default system text
/// (which already ends in newlines) renders the same as not passing one.
fn with_suffix(text: &str, suffix: &str) -> String {
    let mut s = text.trim_end_matches('\n').to_string();
    s.push_str(suffix);
    s
}

/// Built-in formats take at most one system message, and only in first place.
fn split_system<'a>(format: &PromptFormat, messages: &'a [Message]) -> Result<(Option<&'a str>, &'a [Message])> {
    match messages.split_first() {
        Some((first, rest)) if first.role == Role::System => Ok((Some(first.content.as_str()), rest)),
        _ => Ok((None, messages)),
    }
    .and_then(|(system, rest)| match rest.iter().position(|m| m.role == Role::System) {
        Some(i) => Err(Error::Unrenderable {
            format: format.name(),
            message: format!("a system message is only allowed first, found one at position {}", i + 1),
        }),
        None => Ok((system, rest)),
    })
}

/// Feed each user/assistant message, then (if asked) the open assistant turn, to `emit`.
fn render_turns(
    format: &PromptFormat,
    messages: &[Message],
    add_generation_prompt: bool,
    out: &mut String,
    mut emit: impl FnMut(Turn, Option<&str>, &mut String),
) -> Result<()> {
    for m in messages {
        let turn = match &m.role {
            Role::User => Turn::User,
            Role::Assistant => Turn::Assistant,
            other => {
                return Err(Error::Unrenderable {
                    format: format.name(),
                    message: format!("role {other:?} has no place in this format (only system, user, assistant)"),
                });
            }
        };
        emit(turn, Some(&m.content), out);
    }
    if add_generation_prompt {
        emit(Turn::Assistant, None, out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_name_lists_known_names() {
        let err = PromptFormat::from_name("phoenix", FormatOptions::default()).err().map(|e| e.to_string());
        let msg = err.unwrap_or_default();
        assert!(msg.contains("\"phoenix\""), "{msg}");
        for n in PromptFormat::NAMES {
            assert!(msg.contains(n), "{msg} lacks {n}");
        }
    }

    #[test]
    fn every_name_round_trips_except_jinja_without_template() {
        for n in PromptFormat::NAMES {
            match PromptFormat::from_name(n, FormatOptions::default()) {
                Ok(f) => assert_eq!(f.name(), *n),
                Err(Error::MissingChatTemplate) => assert_eq!(*n, "jinja"),
                Err(e) => panic!("{n}: {e}"),
            }
        }
    }

    #[test]
    fn llmzoo_custom_system_gets_exactly_two_newlines() {
        let f = PromptFormat::LlmZoo;
        let a = f.render(&[Message::system("Be brief."), Message::user("Hi")], true).unwrap_or_default();
        assert_eq!(a, "Be brief.\n\nHuman: <s>Hi</s>Assistant: <s>");
        let b = f.render(&[Message::system(LLMZOO_SYSTEM), Message::user("Hi")], true).unwrap_or_default();
        let c = f.render(&[Message::user("Hi")], true).unwrap_or_default();
        assert_eq!(b, c);
    }

    #[test]
    fn tool_role_and_late_system_are_rejected_by_builtins() {
        let f = PromptFormat::LlmZoo;
        let tool = f.render(&[Message::user("a"), Message::new("tool", "x")], true);
        assert!(matches!(tool, Err(Error::Unrenderable { format: "llmzoo", .. })), "{tool:?}");
        let late = f.render(&[Message::user("a"), Message::system("x")], true);
        assert!(matches!(late, Err(Error::Unrenderable { .. })), "{late:?}");
    }

    #[test]
    fn eos_option_reaches_stop_strings() {
        let opts = FormatOptions { eos: Some("<eos>".into()), chat_template: None };
        let f = PromptFormat::from_name("apollo", opts).unwrap_or(PromptFormat::Raw);
        assert_eq!(f.stop_strings(), vec!["<eos>".to_string(), "\nUser:".to_string()]);
    }
}
