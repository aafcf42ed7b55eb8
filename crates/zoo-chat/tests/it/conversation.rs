//! The conversation file written by `/save` and read by `/load`, and the history edits the chat CLI makes.

use zoo_chat::{Conversation, Error, Message, Role};

#[test]
fn file_format_is_stable() {
    let mut c = Conversation::with_system("Be brief.");
    c.model = Some("phoenix-inst-chat-7b".into());
    c.prompt_format = Some("llmzoo".into());
    c.push_user("Hi");
    c.push_assistant("  Hello!\n");
    assert_eq!(
        c.to_json(),
        r#"{
  "format": "zoo-chat-conversation",
  "version": 1,
  "model": "phoenix-inst-chat-7b",
  "prompt_format": "llmzoo",
  "messages": [
    {
      "role": "system",
      "content": "Be brief."
    },
    {
      "role": "user",
      "content": "Hi"
    },
    {
      "role": "assistant",
      "content": "Hello!"
    }
  ]
}"#
    );
    assert_eq!(Conversation::from_json(&c.to_json()).unwrap(), c);
}

#[test]
fn bare_openai_arrays_and_content_variants_load() {
    let c = Conversation::from_json(
        r#"[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null},
            {"role": "tool", "content": "42"}]"#,
    )
    .unwrap();
    assert_eq!(c.model, None);
    assert_eq!(
        c.messages,
        vec![
            Message::user("ab"),
            Message::assistant(""),
            Message { role: Role::Other("tool".into()), content: "42".into() }
        ]
    );
}

#[test]
fn minimal_object_loads_and_newer_versions_are_refused() {
    let c = Conversation::from_json(r#"{"messages": [{"role": "user", "content": "x"}]}"#).unwrap();
    assert_eq!(c.messages, vec![Message::user("x")]);
    let err = Conversation::from_json(r#"{"version": 2, "messages": []}"#).unwrap_err();
    assert!(matches!(err, Error::ConversationVersion { found: 2, supported: 1 }), "{err}");
}

#[test]
fn malformed_files_say_what_is_wrong() {
    for bad in ["", "{", r#"{"messages": 3}"#, r#"[{"content": "no role"}]"#, "42"] {
        let err = Conversation::from_json(bad).unwrap_err();
        assert!(matches!(err, Error::ConversationJson(_)), "{bad}: {err}");
    }
    let err = Conversation::from_json(r#"[{"content": "no role"}]"#).unwrap_err().to_string();
    assert!(err.contains("role"), "{err}");
}

#[test]
fn history_edits() {
    let mut c = Conversation::with_system("S");
    c.push_user("q1");
    c.push_assistant("a1");
    c.push_user("q2");
    assert_eq!(c.pop_last_turn().as_deref(), Some("q2"));
    assert_eq!(c.messages.len(), 3);
    c.set_system(Some("T".into()));
    assert_eq!(c.system(), Some("T"));
    c.reset();
    assert_eq!(c.messages, vec![Message::system("T")]);
    c.set_system(None);
    assert!(c.messages.is_empty());
    assert_eq!(c.pop_last_turn(), None);
}
