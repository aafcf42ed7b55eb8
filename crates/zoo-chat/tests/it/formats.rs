//! Every built-in prompt format against its exact expected text, written out from the reference sources
//! (llmzoo-fastchat.md §1.2/§3.1/§3.2, apollo-xmedbench.md §1, the public model templates).

use zoo_chat::{ChatTemplate, Error, FormatOptions, Message, PromptFormat, SpecialTokens};

fn format(name: &str) -> PromptFormat {
    PromptFormat::from_name(name, FormatOptions::default()).unwrap()
}

fn check(name: &str, messages: &[Message], add_generation_prompt: bool, expected: &str) {
    let got = format(name).render(messages, add_generation_prompt).unwrap();
    assert_eq!(got, expected, "format {name}");
}

fn en3() -> Vec<Message> {
    vec![Message::user("Hi"), Message::assistant("Hello!"), Message::user("How are you?")]
}

fn en3_system() -> Vec<Message> {
    let mut m = vec![Message::system("Be brief.")];
    m.extend(en3());
    m
}

fn zh3() -> Vec<Message> {
    vec![Message::user("头痛怎么办？"), Message::assistant("多休息。"), Message::user("还有呢？")]
}

#[test]
fn llmzoo() {
    check(
        "llmzoo",
        &[Message::user("Hi")],
        true,
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n\nHuman: <s>Hi</s>Assistant: <s>",
    );
    check(
        "llmzoo",
        &en3(),
        true,
        "A chat between a curious human and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the human's questions.\n\nHuman: <s>Hi</s>Assistant: <s>Hello!</s>Human: <s>How are you?</s>Assistant: <s>",
    );
    check(
        "llmzoo",
        &en3_system(),
        false,
        "Be brief.\n\nHuman: <s>Hi</s>Assistant: <s>Hello!</s>Human: <s>How are you?</s>",
    );
    assert_eq!(format("llmzoo").stop_strings(), vec!["</s>"]);
    assert!(!format("llmzoo").includes_bos());
}

#[test]
fn huatuo() {
    check(
        "huatuo",
        &[Message::user("头痛怎么办？")],
        true,
        "一位用户和智能医疗大模型HuatuoGPT之间的对话。对于用户的医疗问诊，HuatuoGPT给出准确的、详细的、温暖的指导建议。对于用户的指令问题，HuatuoGPT给出有益的、详细的、有礼貌的回答。<病人>：头痛怎么办？ <HuatuoGPT>：",
    );
    check(
        "huatuo",
        &zh3(),
        true,
        "一位用户和智能医疗大模型HuatuoGPT之间的对话。对于用户的医疗问诊，HuatuoGPT给出准确的、详细的、温暖的指导建议。对于用户的指令问题，HuatuoGPT给出有益的、详细的、有礼貌的回答。<病人>：头痛怎么办？ <HuatuoGPT>：多休息。</s><病人>：还有呢？ <HuatuoGPT>：",
    );
    let custom_eos =
        PromptFormat::from_name("huatuo", FormatOptions { eos: Some("<|eos|>".into()), chat_template: None }).unwrap();
    let got = custom_eos
        .render(&[Message::system("S"), Message::user("a"), Message::assistant("b"), Message::user("c")], true);
    assert_eq!(got.unwrap(), "S<病人>：a <HuatuoGPT>：b<|eos|><病人>：c <HuatuoGPT>：");
    assert_eq!(custom_eos.stop_strings(), vec!["<|eos|>", "<病人>"]);
}

#[test]
fn huatuo2() {
    check("huatuo2", &[Message::user("头痛怎么办？")], true, "<问>：头痛怎么办？\n<答>：");
    check("huatuo2", &zh3(), true, "<问>：头痛怎么办？\n<答>：多休息。\n<问>：还有呢？\n<答>：");
    check("huatuo2", &[Message::system("你是医生。"), Message::user("嗨")], true, "你是医生。\n<问>：嗨\n<答>：");
    assert_eq!(format("huatuo2").stop_strings(), vec!["</s>", "<问>"]);
    assert_eq!(format("huatuo2").default_system_prompt(), None);
}

#[test]
fn apollo_family() {
    check("apollo", &[Message::user("What is flu?")], true, "User:What is flu?\nAssistant:");
    check("apollo", &en3(), true, "User:Hi\nAssistant:Hello!\nUser:How are you?\nAssistant:");
    check("apollo-large", &en3(), true, "<|User|>:Hi\n<|Assistant|>:Hello!\n<|User|>:How are you?\n<|Assistant|>:");
    check(
        "apollo2-phi3",
        &en3(),
        true,
        "<|user|>\nHi<|end|><|assistant|>\nHello!<|end|><|user|>\nHow are you?<|end|><|assistant|>\n",
    );
    assert_eq!(format("apollo").stop_strings(), vec!["<|endoftext|>", "\nUser:"]);
    assert_eq!(format("apollo-large").stop_strings(), vec!["<|endoftext|>", "<|User|>"]);
    assert_eq!(format("apollo2-phi3").stop_strings(), vec!["<|end|>", "<|endoftext|>", "<|user|>"]);
    let gemma_based =
        PromptFormat::from_name("apollo", FormatOptions { eos: Some("<eos>".into()), chat_template: None });
    assert_eq!(gemma_based.unwrap().stop_strings(), vec!["<eos>", "\nUser:"]);
}

#[test]
fn vicuna_and_alpaca() {
    check(
        "vicuna",
        &en3(),
        true,
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, and polite answers to the user's questions. USER: Hi ASSISTANT: Hello!</s>USER: How are you? ASSISTANT:",
    );
    check(
        "alpaca",
        &en3(),
        true,
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nHi\n\n### Response:\nHello!\n\n### Instruction:\nHow are you?\n\n### Response:\n",
    );
}

#[test]
fn chatml_llama_gemma() {
    check(
        "chatml",
        &en3_system(),
        true,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n",
    );
    check(
        "llama2",
        &en3_system(),
        true,
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] How are you? [/INST]",
    );
    check(
        "llama3",
        &en3_system(),
        true,
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHow are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    check(
        "gemma",
        &en3_system(),
        true,
        "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nHow are you?<end_of_turn>\n<start_of_turn>model\n",
    );
    for (name, bos) in [("llama2", true), ("llama3", true), ("gemma", true), ("chatml", false), ("vicuna", false)] {
        assert_eq!(format(name).includes_bos(), bos, "{name}");
    }
}

#[test]
fn raw_is_plain_text() {
    check("none", &[Message::user("Once upon a time")], true, "Once upon a time");
    assert!(format("none").stop_strings().is_empty());
}

/// The built-in public formats must agree with the models' published Jinja templates rendered by our engine.
#[test]
fn builtins_match_published_jinja_templates() {
    const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
    const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
    const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";
    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    let tokens =
        |bos: &str, eos: &str| SpecialTokens { bos: Some(bos.into()), eos: Some(eos.into()), unk: None, pad: None };
    let cases = [
        ("llama2", LLAMA2, tokens("<s>", "</s>"), en3_system()),
        ("llama3", LLAMA3, tokens("<|begin_of_text|>", "<|end_of_text|>"), en3_system()),
        ("gemma", GEMMA, tokens("<bos>", "<eos>"), en3()),
        ("chatml", CHATML, tokens("<|im_start|>", "<|im_end|>"), en3_system()),
    ];
    for (name, source, special, messages) in cases {
        let template = ChatTemplate::new(source, special).unwrap();
        for add in [true, false] {
            let built_in = format(name).render(&messages, add).unwrap();
            let jinja = template.render(&messages, add).unwrap();
            assert_eq!(built_in, jinja, "{name} add_generation_prompt={add}");
        }
    }
    let gemma = ChatTemplate::new(GEMMA, tokens("<bos>", "<eos>")).unwrap();
    let err = gemma.render(&en3_system(), true).unwrap_err();
    assert!(matches!(&err, Error::TemplateRaised(m) if m == "System role not supported"), "{err}");
    let llama2 = ChatTemplate::new(LLAMA2, tokens("<s>", "</s>")).unwrap();
    let err = llama2.render(&[Message::user("a"), Message::user("b")], true).unwrap_err();
    assert!(matches!(&err, Error::TemplateRaised(m) if m.starts_with("Conversation roles must alternate")), "{err}");
}

#[test]
fn jinja_needs_a_template_and_uses_its_eos() {
    let err = PromptFormat::from_name("jinja", FormatOptions::default()).unwrap_err();
    assert!(matches!(err, Error::MissingChatTemplate));
    let t = ChatTemplate::new(
        "{{ messages[0].content }}",
        SpecialTokens { eos: Some("<|im_end|>".into()), ..Default::default() },
    )
    .unwrap();
    let f = PromptFormat::from_name("jinja", FormatOptions { eos: None, chat_template: Some(t) }).unwrap();
    assert_eq!(f.render(&[Message::user("x")], true).unwrap(), "x");
    assert_eq!(f.stop_strings(), vec!["<|im_end|>"]);
}

#[test]
fn unknown_format_error_lists_names() {
    let msg = PromptFormat::from_name("phoenix", FormatOptions::default()).unwrap_err().to_string();
    assert_eq!(
        msg,
        "unknown prompt format \"phoenix\"; known formats: llmzoo, huatuo, huatuo2, apollo, apollo-large, apollo2-phi3, vicuna, alpaca, chatml, gemma, llama2, llama3, jinja, none"
    );
}

#[test]
fn fit_history_with_a_real_format() {
    let f = format("huatuo2");
    let mut messages = Vec::new();
    for i in 0..5 {
        messages.push(Message::user(format!("问题{i}")));
        messages.push(Message::assistant(format!("回答{i}")));
    }
    messages.push(Message::user("最后的问题"));
    let count = |s: &str| s.chars().count();
    let full = count(&f.render(&messages, true).unwrap());
    let fitted = zoo_chat::fit_history(&messages, full - 1, |m| f.render(m, true), count).unwrap();
    assert_eq!(fitted.dropped_turns, 1);
    assert_eq!(fitted.messages.first(), Some(&Message::user("问题1")));
    assert_eq!(fitted.prompt_tokens, count(&fitted.prompt));
    let err = zoo_chat::fit_history(&messages, 3, |m| f.render(m, true), count).unwrap_err();
    // "<问>：最后的问题\n<答>：" is 14 characters.
    assert!(matches!(err, Error::PromptTooLong { prompt_tokens: 14, budget_tokens: 3, over_by: 11 }), "{err}");
}

/// The registry validates `chat_template` against its own list; every name it accepts must be renderable here.
#[test]
fn names_match_the_registry_list() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../zoo-registry/src/check.rs");
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let start = source.find("KNOWN_TEMPLATES: &[&str] = &[").expect("KNOWN_TEMPLATES in zoo-registry check.rs");
    let list = &source[start..start + source[start..].find("];").unwrap()];
    let names: Vec<&str> = list.split('"').skip(1).step_by(2).collect();
    assert_eq!(names, PromptFormat::NAMES);
}
