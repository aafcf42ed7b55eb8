//! Chat prompts for the LLM Zoo models: message and conversation types, the built-in prompt formats (LLM Zoo,
//! HuatuoGPT, Apollo and the common public ones), Hugging Face Jinja chat templates, stop strings, streaming
//! detokenization and context-window fitting.
//!
//! The binary and the inference runner call this crate; it does no I/O of its own: files are passed in as text.
//!
//! ```
//! use zoo_chat::{FormatOptions, Message, PromptFormat};
//! let format = PromptFormat::from_name("huatuo2", FormatOptions::default())?;
//! let prompt = format.render(&[Message::user("头痛怎么办？")], true)?;
//! assert_eq!(prompt, "<问>：头痛怎么办？\n<答>：");
//! # Ok::<(), zoo_chat::Error>(())
//! ```

mod error;
mod format;
mod history;
mod message;
mod pyjson;
mod stream;
mod template;

pub use error::{Error, Result};
pub use format::{ALPACA_SYSTEM, FormatOptions, HUATUO_SYSTEM, LLMZOO_SYSTEM, PromptFormat, VICUNA_SYSTEM};
pub use history::{FittedHistory, fit_history};
pub use message::{CONVERSATION_FILE_FORMAT, CONVERSATION_FILE_VERSION, Conversation, Message, Role};
pub use stream::{Detokenize, StopMatcher, StopStep, TokenTextStream};
pub use template::{ChatTemplate, SpecialTokens, TemplateVars};
