//! Jinja features real chat templates rely on, checked against what transformers (Jinja2) prints.

use zoo_chat::{ChatTemplate, Error, Message, SpecialTokens, TemplateVars};

fn tokens() -> SpecialTokens {
    SpecialTokens { bos: Some("<s>".into()), eos: Some("</s>".into()), unk: None, pad: None }
}

fn render(source: &str, messages: &[Message], add: bool) -> String {
    ChatTemplate::new(source, tokens()).unwrap().render(messages, add).unwrap()
}

fn render_vars(source: &str, vars: &TemplateVars) -> String {
    ChatTemplate::new(source, tokens()).unwrap().render_with(&[Message::user("q")], true, vars).unwrap()
}

#[test]
fn trim_blocks_and_lstrip_blocks_like_transformers() {
    // With trim_blocks the newline after a block tag goes; with lstrip_blocks the indentation before it goes.
    let source =
        "{% for m in messages %}\n    {% if m.role == 'user' %}\nU:{{ m.content }}\n    {% endif %}\n{% endfor %}\n";
    assert_eq!(render(source, &[Message::user("a"), Message::user("b")], false), "U:a\nU:b\n");
}

#[test]
fn loop_last_namespace_trim_and_both_access_styles() {
    let source = "{% set ns = namespace(found=false, n=0) %}{% for message in messages %}{% if message['role'] == 'system' %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + 1 %}{{ message.role }}={{ message['content'] | trim }}{% if not loop.last %}|{% endif %}{% endfor %};{{ ns.found }};{{ ns.n }}";
    let messages = [Message::system("  s  "), Message::user("\nu\n")];
    assert_eq!(render(source, &messages, false), "system=s|user=u;True;2");
}

#[test]
fn python_string_methods_through_pycompat() {
    let source = "{% for m in messages %}{{ m.content.strip().upper() }}|{{ m.content.split('</think>')[-1].lstrip() }}|{{ m.content.strip().startswith('<think>') }}|{{ m.content.replace('a', 'b') }}{% endfor %}";
    assert_eq!(
        render(source, &[Message::assistant(" <think>x</think> a ")], false),
        "<THINK>X</THINK> A|a |True| <think>x</think> b "
    );
}

#[test]
fn special_tokens_and_generation_prompt() {
    let source = "{{ bos_token }}{% for m in messages %}{{ m.content + eos_token }}{% endfor %}{% if add_generation_prompt %}>{% endif %}{{ unk_token }}";
    assert_eq!(render(source, &[Message::user("a")], true), "<s>a</s>>");
    assert_eq!(render(source, &[Message::user("a")], false), "<s>a</s>");
}

#[test]
fn raise_exception_is_a_typed_error() {
    let t = ChatTemplate::new(
        "{% if messages | length > 1 %}{{ raise_exception('Only one message, please') }}{% endif %}ok",
        tokens(),
    )
    .unwrap();
    assert_eq!(t.render(&[Message::user("a")], true).unwrap(), "ok");
    let err = t.render(&[Message::user("a"), Message::user("b")], true).unwrap_err();
    assert!(matches!(&err, Error::TemplateRaised(m) if m == "Only one message, please"), "{err}");
}

#[test]
fn syntax_errors_are_reported_at_construction() {
    let err = ChatTemplate::new("{% for m in messages %}{{ m.content }}", tokens()).unwrap_err();
    assert!(matches!(err, Error::TemplateSyntax(_)), "{err}");
}

#[test]
fn tojson_is_python_json_dumps() {
    let mut vars = TemplateVars::new();
    vars.set_json(
        "tools",
        r#"[{"type": "function", "function": {"name": "get_weather", "description": "Wetter <heute> in \"Zürich\"", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]"#,
    )
    .unwrap();
    assert_eq!(
        render_vars("{% for t in tools %}{{ t | tojson }}{% endfor %}", &vars),
        r#"{"type": "function", "function": {"name": "get_weather", "description": "Wetter <heute> in \"Zürich\"", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}"#
    );
    assert_eq!(
        render_vars("{{ tools[0].function.parameters | tojson(indent=4) }}", &vars),
        "{\n    \"type\": \"object\",\n    \"properties\": {\n        \"city\": {\n            \"type\": \"string\"\n        }\n    },\n    \"required\": [\n        \"city\"\n    ]\n}"
    );
    assert_eq!(render_vars("{{ 'ü' | tojson(ensure_ascii=true) }}", &vars), r#""\u00fc""#);
    assert_eq!(
        render_vars("{% for k, v in tools[0].function.parameters.items() %}{{ k }};{% endfor %}", &vars),
        "type;properties;required;"
    );
}

#[test]
fn python_values_print_like_python() {
    let mut vars = TemplateVars::new();
    vars.set("tools", &serde_json::Value::Null).unwrap().set("flag", &true).unwrap().set("x", &0.5f64).unwrap();
    assert_eq!(
        render_vars("{{ tools }} {{ flag }} {{ x }} {{ 2 }} {{ tools is none }}", &vars),
        "None True 0.5 2 True"
    );
    assert_eq!(render_vars("{% if tools %}t{% else %}f{% endif %}{{ undefined_name }}", &vars), "f");
}

#[test]
fn strftime_now_with_a_fixed_clock() {
    let mut vars = TemplateVars::new();
    vars.set_now(1_721_743_509);
    assert_eq!(render_vars("Today Date: {{ strftime_now('%d %b %Y') }}", &vars), "Today Date: 23 Jul 2024");
    // Without a fixed clock it formats the current time; only the shape can be checked.
    let live = render_vars("{{ strftime_now('%Y') }}", &TemplateVars::new());
    assert!(live.len() == 4 && live.chars().all(|c| c.is_ascii_digit()), "{live}");
}

#[test]
fn generation_tag_renders_its_body() {
    // transformers' AssistantTracker tag only marks text; trimming around it must match an ordinary block tag.
    let tagged = "{% for m in messages %}{% if m.role == 'assistant' %}{%- generation %}\n{{ m.content }}\n{% endgeneration -%}\n{% else %}{{ m.content }}{% endif %}\n{% endfor %}";
    let plain = tagged.replace("generation %}", "if true %}").replace("{% endgeneration", "{% endif");
    let messages = [Message::user("u"), Message::assistant("a")];
    assert_eq!(render(tagged, &messages, false), render(&plain, &messages, false));
    assert_eq!(render(tagged, &messages, false), "ua\n");
}

#[test]
fn messages_can_be_replaced_by_richer_json() {
    let mut vars = TemplateVars::new();
    vars.set_json(
        "messages",
        r#"[{"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}]"#,
    )
    .unwrap();
    let source = "{% for m in messages %}{{ m.content }}:{% for c in m.tool_calls %}{{ c.function.name }}{{ c.function.arguments | tojson }}{% endfor %}{% endfor %}";
    assert_eq!(render_vars(source, &vars), "None:f{\"a\": 1}");
}

#[test]
fn named_templates_from_tokenizer_config() {
    let config = r#"{"eos_token": "</s>", "chat_template": [
        {"name": "default", "template": "D{{ messages[0].content }}"},
        {"name": "tool_use", "template": "T{{ messages[0].content }}"}]}"#;
    let q = [Message::user("x")];
    assert_eq!(ChatTemplate::from_tokenizer_config(config).unwrap().render(&q, true).unwrap(), "Dx");
    let tool = ChatTemplate::from_tokenizer_config_named(config, "tool_use").unwrap();
    assert_eq!(tool.render(&q, true).unwrap(), "Tx");
    let err = ChatTemplate::from_tokenizer_config_named(config, "rag").unwrap_err();
    assert_eq!(err.to_string(), "chat template \"rag\" not found; the tokenizer config has: default, tool_use");
    let bad = ChatTemplate::from_tokenizer_config(r#"{"chat_template": 3}"#).unwrap_err();
    assert!(matches!(bad, Error::TokenizerConfig(_)), "{bad}");
    let not_json = ChatTemplate::from_tokenizer_config("{").unwrap_err();
    assert!(matches!(not_json, Error::TokenizerConfig(_)), "{not_json}");
}
