//! The one error type of this crate: every failure a caller can cause, with the facts needed to fix it.

/// Everything that can go wrong while rendering prompts, loading templates or conversations, or streaming text.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `PromptFormat::from_name` got a name that is not in [`crate::PromptFormat::NAMES`].
    #[error("unknown prompt format {name:?}; known formats: {known}")]
    UnknownFormat { name: String, known: String },

    /// The format `jinja` was asked for, but no chat template was supplied.
    #[error(
        "prompt format \"jinja\" needs the model's chat template (tokenizer_config.json `chat_template`, \
         chat_template.jinja, or GGUF `tokenizer.chat_template`), and none was given"
    )]
    MissingChatTemplate,

    /// A built-in format cannot express these messages (a role it has no place for, a system message that
    /// is not first, ...).
    #[error("prompt format {format}: {message}")]
    Unrenderable { format: &'static str, message: String },

    /// `tokenizer_config.json` text is not JSON of the expected shape.
    #[error("tokenizer_config.json: {0}")]
    TokenizerConfig(String),

    /// `tokenizer_config.json` parsed, but carries no `chat_template` field.
    #[error("tokenizer_config.json has no `chat_template` (newer models ship it as chat_template.jinja)")]
    NoChatTemplate,

    /// `chat_template` is a list of named templates and the wanted name is not among them.
    #[error("chat template {wanted:?} not found; the tokenizer config has: {available}")]
    NoNamedTemplate { wanted: String, available: String },

    /// The Jinja source does not parse.
    #[error("chat template does not parse: {0}")]
    TemplateSyntax(String),

    /// The template called `raise_exception(msg)`: the model's own template rejects these messages.
    #[error("chat template rejected the conversation: {0}")]
    TemplateRaised(String),

    /// Any other failure while rendering the template (undefined method, bad filter argument, ...).
    #[error("chat template failed: {0}")]
    TemplateRender(String),

    /// An extra template variable could not be turned into a template value.
    #[error("template variable {name:?}: {message}")]
    TemplateVariable { name: String, message: String },

    /// A conversation file is not valid JSON of the documented shape.
    #[error("conversation file: {0}")]
    ConversationJson(#[source] serde_json::Error),

    /// A conversation file was written by a newer version of this format.
    #[error("conversation file version {found} is newer than the supported version {supported}")]
    ConversationVersion { found: u64, supported: u64 },

    /// Even with every older turn dropped, the prompt does not fit the context budget.
    #[error(
        "the prompt needs {prompt_tokens} tokens even with all earlier turns dropped: {over_by} over the budget of \
         {budget_tokens}"
    )]
    PromptTooLong { prompt_tokens: usize, budget_tokens: usize, over_by: usize },

    /// The tokenizer behind a [`crate::TokenTextStream`] failed to decode.
    #[error("detokenizer failed: {0}")]
    Detokenize(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
