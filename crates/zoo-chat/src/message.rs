//! Chat messages in the OpenAI JSON shape, and the conversation file that `/save` and `/load` use.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

/// Who wrote a message. Roles other than the three standard ones (for example `tool`) are kept as text so that a
/// model's own Jinja template can see them; the built-in formats reject them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum Role {
    System,
    User,
    Assistant,
    Other(String),
}

impl Role {
    /// The role as it appears in OpenAI JSON and in Jinja templates.
    pub fn as_str(&self) -> &str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Other(s) => s,
        }
    }
}

impl From<String> for Role {
    fn from(s: String) -> Self {
        match s.as_str() {
            "system" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => Role::Other(s),
        }
    }
}

impl From<&str> for Role {
    fn from(s: &str) -> Self {
        Role::from(s.to_string())
    }
}

impl From<Role> for String {
    fn from(r: Role) -> Self {
        match r {
            Role::Other(s) => s,
            r => r.as_str().to_string(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One chat message: `{"role": "user", "content": "..."}`.
///
/// On input `content` may also be `null` (read as empty) or an OpenAI list of parts, of which the `text` parts
/// are joined; on output it is always a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default, deserialize_with = "content_from_openai")]
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<Role>, content: impl Into<String>) -> Self {
        Message { role: role.into(), content: content.into() }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Message::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message::new(Role::Assistant, content)
    }
}

/// OpenAI clients send `content` as a string, as `null` (assistant tool calls), or as a list of typed parts.
fn content_from_openai<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
        Null(()),
    }
    #[derive(Deserialize)]
    struct Part {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        text: Option<String>,
    }
    Ok(match Content::deserialize(d)? {
        Content::Text(s) => s,
        Content::Null(()) => String::new(),
        Content::Parts(parts) => {
            parts.into_iter().filter(|p| p.kind == "text").filter_map(|p| p.text).collect::<Vec<_>>().join("")
        }
    })
}

/// The file format version written by [`Conversation::to_json`].
pub const CONVERSATION_FILE_VERSION: u64 = 1;

/// The value of the `format` field that marks a conversation file.
pub const CONVERSATION_FILE_FORMAT: &str = "zoo-chat-conversation";

/// A chat history plus what is needed to continue it. Serialized as described in the crate README:
///
/// ```json
/// {"format": "zoo-chat-conversation", "version": 1, "model": "phoenix-inst-chat-7b",
///  "prompt_format": "llmzoo", "messages": [{"role": "user", "content": "Hi"}]}
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    /// The registry name of the model the chat was held with, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The prompt format name (`llmzoo`, `jinja`, ...) the chat was rendered with, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_format: Option<String>,
    pub messages: Vec<Message>,
}

/// The on-disk envelope; kept apart from `Conversation` so that the version stays a file concern.
#[derive(Serialize)]
struct FileOut<'a> {
    format: &'static str,
    version: u64,
    #[serde(flatten)]
    conversation: &'a Conversation,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FileIn {
    Bare(Vec<Message>),
    Object {
        #[serde(default)]
        version: Option<u64>,
        #[serde(flatten)]
        conversation: Conversation,
    },
}

impl Conversation {
    pub fn new() -> Self {
        Conversation::default()
    }

    /// A conversation that starts with a system message.
    pub fn with_system(system: impl Into<String>) -> Self {
        Conversation { messages: vec![Message::system(system)], ..Conversation::default() }
    }

    /// The leading system message's text, if there is one.
    pub fn system(&self) -> Option<&str> {
        self.messages.first().filter(|m| m.role == Role::System).map(|m| m.content.as_str())
    }

    /// Replace (or add, or with `None` remove) the leading system message.
    pub fn set_system(&mut self, system: Option<String>) {
        let has = self.system().is_some();
        match (has, system) {
            (true, Some(s)) => {
                if let Some(m) = self.messages.first_mut() {
                    m.content = s;
                }
            }
            (true, None) => {
                self.messages.remove(0);
            }
            (false, Some(s)) => self.messages.insert(0, Message::system(s)),
            (false, None) => {}
        }
    }

    pub fn push_user(&mut self, text: impl Into<String>) {
        self.messages.push(Message::user(text));
    }

    /// Store a model reply. It is stripped of surrounding whitespace first, as LLM Zoo and HuatuoGPT do
    /// (`outputs.strip()`), because the models were trained on stripped replies.
    pub fn push_assistant(&mut self, text: &str) {
        self.messages.push(Message::assistant(text.trim()));
    }

    /// Forget every turn but keep the system message (`/reset`).
    pub fn reset(&mut self) {
        self.messages.retain(|m| m.role == Role::System);
        self.messages.truncate(1);
    }

    /// Remove the last user message and everything after it (`/undo`, or before `/regen` re-asks it).
    /// Returns the removed user text, or `None` when there is no user message.
    pub fn pop_last_turn(&mut self) -> Option<String> {
        let at = self.messages.iter().rposition(|m| m.role == Role::User)?;
        let text = self.messages.get(at).map(|m| m.content.clone());
        self.messages.truncate(at);
        text
    }

    /// The file text written by `/save`: pretty JSON with `format` and `version` fields.
    pub fn to_json(&self) -> String {
        let out = FileOut { format: CONVERSATION_FILE_FORMAT, version: CONVERSATION_FILE_VERSION, conversation: self };
        // Serializing plain strings and options into a String cannot fail.
        serde_json::to_string_pretty(&out).unwrap_or_default()
    }

    /// Read a conversation file, or a bare OpenAI-style JSON array of messages.
    pub fn from_json(text: &str) -> Result<Self> {
        match serde_json::from_str::<FileIn>(text) {
            Ok(FileIn::Bare(messages)) => Ok(Conversation { messages, ..Conversation::default() }),
            Ok(FileIn::Object { version, conversation }) => match version {
                Some(v) if v > CONVERSATION_FILE_VERSION => {
                    Err(Error::ConversationVersion { found: v, supported: CONVERSATION_FILE_VERSION })
                }
                _ => Ok(conversation),
            },
            // The untagged error says only "did not match any variant"; a typed parse names the real problem.
            Err(_) => Err(Error::ConversationJson(
                match text.trim_start().starts_with('[') {
                    true => serde_json::from_str::<Vec<Message>>(text).err(),
                    false => serde_json::from_str::<Conversation>(text).err(),
                }
                .unwrap_or_else(|| serde::de::Error::custom("not a conversation object or message array")),
            )),
        }
    }
}
