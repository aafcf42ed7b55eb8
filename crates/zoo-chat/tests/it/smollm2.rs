//! The SmolLM2 reference prompts (transformers-rendered, tests/fixtures/reference/smollm2/reference.json) rendered
//! from the model's real chat template, loaded every way a model directory or GGUF file can carry it.

use std::path::PathBuf;

use zoo_chat::{ChatTemplate, Error, FormatOptions, Message, PromptFormat, StopMatcher, StopStep};

fn fixtures() -> PathBuf {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reference/smollm2"));
    assert!(
        p.join("reference.json").is_file(),
        "SmolLM2 fixtures missing at {}: they are part of the repository (tests/fixtures/reference)",
        p.display()
    );
    p
}

fn read(name: &str) -> String {
    let path = fixtures().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Case {
    messages: Vec<Message>,
    rendered: String,
    greedy_text: String,
}

fn cases() -> Vec<Case> {
    let reference: serde_json::Value = serde_json::from_str(&read("reference.json")).unwrap();
    let cases = reference["cases"].as_array().unwrap();
    assert!(!cases.is_empty(), "reference.json has no cases");
    cases
        .iter()
        .map(|c| Case {
            messages: serde_json::from_value(c["messages"].clone()).unwrap(),
            rendered: c["rendered"].as_str().unwrap().to_string(),
            greedy_text: c["greedy_text"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// transformers was called with `add_generation_prompt=True` whenever the chat ends on a user turn.
fn add_generation_prompt(messages: &[Message]) -> bool {
    messages.last().is_some_and(|m| m.role != zoo_chat::Role::Assistant)
}

/// tokenizer_config.json with the template put back in, as a string and as a named list (older transformers).
fn configs_with_template() -> Vec<String> {
    let jinja = read("chat_template.jinja");
    let base: serde_json::Value = serde_json::from_str(&read("tokenizer_config.json")).unwrap();
    let mut as_string = base.clone();
    as_string["chat_template"] = serde_json::Value::String(jinja.clone());
    let mut as_list = base;
    as_list["chat_template"] = serde_json::json!([
        {"name": "tool_use", "template": "unused"},
        {"name": "default", "template": jinja},
    ]);
    vec![as_string.to_string(), as_list.to_string()]
}

#[test]
fn every_reference_prompt_renders_byte_identical() {
    let config = read("tokenizer_config.json");
    let jinja = read("chat_template.jinja");
    let mut templates = vec![(
        "chat_template.jinja + tokenizer_config.json",
        ChatTemplate::from_hf_files(Some(&config), Some(&jinja)).unwrap(),
    )];
    for (i, c) in configs_with_template().iter().enumerate() {
        templates.push((
            if i == 0 { "config string" } else { "config list" },
            ChatTemplate::from_tokenizer_config(c).unwrap(),
        ));
    }
    for (how, template) in &templates {
        assert_eq!(template.special_tokens().eos.as_deref(), Some("<|im_end|>"), "{how}");
        for case in cases() {
            let got = template.render(&case.messages, add_generation_prompt(&case.messages)).unwrap();
            assert_eq!(got, case.rendered, "{how}: {:?}", case.messages);
            // Without the generation prompt the text is the same minus the opened assistant turn.
            let closed = template.render(&case.messages, false).unwrap();
            assert_eq!(format!("{closed}<|im_start|>assistant\n"), case.rendered, "{how}");
        }
    }
}

#[test]
fn fixture_config_alone_has_no_template() {
    // transformers 5 keeps the template in chat_template.jinja, not in tokenizer_config.json.
    let err = ChatTemplate::from_tokenizer_config(&read("tokenizer_config.json")).unwrap_err();
    assert!(matches!(err, Error::NoChatTemplate), "{err}");
    let err = ChatTemplate::from_hf_files(Some(&read("tokenizer_config.json")), None).unwrap_err();
    assert!(matches!(err, Error::NoChatTemplate), "{err}");
}

#[test]
fn builtin_chatml_agrees_given_smollm_system_prompt() {
    let chatml = PromptFormat::from_name("chatml", FormatOptions::default()).unwrap();
    for case in cases() {
        let mut messages = case.messages.clone();
        if messages.first().is_none_or(|m| m.role != zoo_chat::Role::System) {
            messages.insert(0, Message::system("You are a helpful AI assistant named SmolLM, trained by Hugging Face"));
        }
        assert_eq!(chatml.render(&messages, true).unwrap(), case.rendered);
    }
}

#[test]
fn stop_strings_cut_the_reference_generations() {
    let config = read("tokenizer_config.json");
    let template = ChatTemplate::from_hf_files(Some(&config), Some(&read("chat_template.jinja"))).unwrap();
    let format = PromptFormat::from_name("jinja", FormatOptions { eos: None, chat_template: Some(template) }).unwrap();
    for case in cases() {
        let want = case.greedy_text.split("<|im_end|>").next().unwrap().to_string();
        let mut matcher = StopMatcher::new(format.stop_strings());
        let mut printed = String::new();
        let mut stopped = false;
        // Feed two characters at a time so the stop string arrives in pieces.
        let chars: Vec<char> = case.greedy_text.chars().collect();
        for piece in chars.chunks(2) {
            match matcher.push(&piece.iter().collect::<String>()) {
                StopStep::Continue(t) => printed.push_str(&t),
                StopStep::Stopped { text, stop } => {
                    assert_eq!(stop, "<|im_end|>");
                    printed.push_str(&text);
                    stopped = true;
                    break;
                }
            }
            assert!(!printed.contains('<'), "a partial stop string was printed: {printed:?}");
        }
        // The reference generations have a token budget: one ends before its model said
        // `<|im_end|>`, and then nothing may stop it.
        assert_eq!(stopped, case.greedy_text.contains("<|im_end|>"), "{:?}", case.greedy_text);
        assert_eq!(printed, want);
    }
}
