//! Fitting a conversation into the context window by dropping its oldest turns.

use crate::error::{Error, Result};
use crate::message::{Message, Role};

/// The messages that fit, the prompt they render to, and how much was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FittedHistory {
    pub messages: Vec<Message>,
    pub prompt: String,
    pub prompt_tokens: usize,
    /// How many earlier turns (a user message with the replies that follow it) were left out.
    pub dropped_turns: usize,
}

/// Drop the oldest turns until the rendered prompt needs at most `budget_tokens` tokens.
///
/// Leading system messages and the current turn (the last user message and what follows it) are always kept;
/// if they alone are too long the error says by how many tokens. `render` turns messages into the prompt (for
/// example `|m| format.render(m, true)`), `count` counts a prompt's tokens.
pub fn fit_history(
    messages: &[Message],
    budget_tokens: usize,
    mut render: impl FnMut(&[Message]) -> Result<String>,
    mut count: impl FnMut(&str) -> usize,
) -> Result<FittedHistory> {
    let system_len = messages.iter().take_while(|m| m.role == Role::System).count();
    let (system, body) = messages.split_at(system_len);
    // Turn starts: every user message. Anything before the first user message belongs to the first turn.
    let mut starts: Vec<usize> =
        body.iter().enumerate().filter(|(i, m)| m.role == Role::User || *i == 0).map(|(i, _)| i).collect();
    starts.dedup();
    // The current turn is never dropped; everything before its start is droppable history.
    let droppable = starts.len().saturating_sub(1);
    let mut dropped = 0;
    loop {
        let from = starts.get(dropped).copied().unwrap_or(0);
        let kept: Vec<Message> = system.iter().chain(body.get(from..).unwrap_or_default()).cloned().collect();
        let prompt = render(&kept)?;
        let tokens = count(&prompt);
        if tokens <= budget_tokens {
            return Ok(FittedHistory { messages: kept, prompt, prompt_tokens: tokens, dropped_turns: dropped });
        }
        if dropped >= droppable {
            return Err(Error::PromptTooLong { prompt_tokens: tokens, budget_tokens, over_by: tokens - budget_tokens });
        }
        dropped += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &[Message]) -> Result<String> {
        Ok(m.iter().map(|m| format!("[{}]{}", m.role, m.content)).collect())
    }

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn chat() -> Vec<Message> {
        vec![
            Message::system("sys"),
            Message::user("one two"),
            Message::assistant("three four"),
            Message::user("five six"),
            Message::assistant("seven eight"),
            Message::user("nine ten"),
        ]
    }

    #[test]
    fn everything_fits() {
        let f = fit_history(&chat(), 100, render, words).unwrap();
        assert_eq!((f.dropped_turns, f.messages.len()), (0, 6));
    }

    #[test]
    fn oldest_turns_go_first_and_system_stays() {
        // The full render splits into 6 whitespace words; without the first turn, 4; with only the last, 2.
        let f = fit_history(&chat(), 5, render, words).unwrap();
        assert_eq!(f.dropped_turns, 1);
        assert_eq!(f.messages[0], Message::system("sys"));
        assert_eq!(f.messages[1], Message::user("five six"));
        let f = fit_history(&chat(), 2, render, words).unwrap();
        assert_eq!(f.dropped_turns, 2);
        assert_eq!(f.messages, vec![Message::system("sys"), Message::user("nine ten")]);
    }

    #[test]
    fn current_turn_too_long_says_by_how_much() {
        let err = fit_history(&chat(), 1, render, words).unwrap_err();
        assert!(matches!(err, Error::PromptTooLong { prompt_tokens: 2, budget_tokens: 1, over_by: 1 }), "{err}");
    }
}
