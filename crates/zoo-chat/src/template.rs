//! Hugging Face chat templates (Jinja) rendered with minijinja in the environment transformers sets up.
//!
//! transformers renders `chat_template` in a sandboxed Jinja2 environment with `trim_blocks`, `lstrip_blocks`,
//! the `loopcontrols` extension, the `{% generation %}` tag, `raise_exception`, `strftime_now` and a `tojson`
//! that is `json.dumps(ensure_ascii=False)`. Templates are written against Python, so Python string and dict
//! methods come from minijinja-contrib's pycompat layer, and `None`/`True`/`False` print as Python prints them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, State};
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::message::Message;
use crate::pyjson::{self, DumpOptions, Json};

/// The template's name inside its minijinja environment; it shows up in error locations (`chat:3`).
const NAME: &str = "chat";
/// Context key that carries a fixed clock for `strftime_now` (tests, reproducible prompts).
const NOW_KEY: &str = "__zoo_chat_now";

/// Special tokens the template can refer to as `bos_token`, `eos_token`, `unk_token`, `pad_token`.
/// A token that is `None` is left undefined in the template, as transformers does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SpecialTokens {
    pub bos: Option<String>,
    pub eos: Option<String>,
    pub unk: Option<String>,
    pub pad: Option<String>,
}

impl SpecialTokens {
    /// Read `bos_token`, `eos_token`, `unk_token`, `pad_token` from `tokenizer_config.json` text. Each may be a
    /// string, an `AddedToken` object (`{"content": "<s>", ...}`), `null`, or absent.
    pub fn from_tokenizer_config(json_text: &str) -> Result<Self> {
        let v = parse_config(json_text)?;
        Ok(Self::from_config_value(&v))
    }

    fn from_config_value(v: &serde_json::Value) -> Self {
        let token = |key: &str| match v.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
            _ => None,
        };
        SpecialTokens {
            bos: token("bos_token"),
            eos: token("eos_token"),
            unk: token("unk_token"),
            pad: token("pad_token"),
        }
    }
}

/// Extra variables for one render: `tools`, `documents`, `enable_thinking`, a fixed clock, or a `messages` list
/// richer than [`Message`] (tool calls). Values keep their JSON key order, as Python dicts would.
#[derive(Debug, Clone, Default)]
pub struct TemplateVars {
    vars: Vec<(String, Json)>,
    now_unix_seconds: Option<i64>,
}

impl TemplateVars {
    pub fn new() -> Self {
        TemplateVars::default()
    }

    /// Set a variable from any serializable value (struct fields keep their declaration order).
    pub fn set<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) -> Result<&mut Self> {
        let json = Json::from_serialize(value)
            .map_err(|e| Error::TemplateVariable { name: name.to_string(), message: e.to_string() })?;
        Ok(self.put(name, json))
    }

    /// Set a variable from JSON text, keeping the key order of the text (for tool schemas read from a request).
    pub fn set_json(&mut self, name: &str, json_text: &str) -> Result<&mut Self> {
        let json = serde_json::from_str::<Json>(json_text)
            .map_err(|e| Error::TemplateVariable { name: name.to_string(), message: e.to_string() })?;
        Ok(self.put(name, json))
    }

    /// Make `strftime_now` format this instant instead of the current time.
    pub fn set_now(&mut self, unix_seconds: i64) -> &mut Self {
        self.now_unix_seconds = Some(unix_seconds);
        self
    }

    fn put(&mut self, name: &str, json: Json) -> &mut Self {
        self.vars.retain(|(n, _)| n != name);
        self.vars.push((name.to_string(), json));
        self
    }
}

/// A compiled Hugging Face chat template together with the special tokens it may refer to.
#[derive(Clone)]
pub struct ChatTemplate {
    source: Arc<str>,
    env: Arc<Environment<'static>>,
    special: SpecialTokens,
}

impl fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatTemplate").field("source", &self.source).field("special", &self.special).finish()
    }
}

impl ChatTemplate {
    /// Compile a template from its Jinja source: `chat_template.jinja` text, a GGUF `tokenizer.chat_template`
    /// value, or `chat_template` from a tokenizer config. Syntax errors are reported here, not at render time.
    pub fn new(source: impl Into<String>, special: SpecialTokens) -> Result<Self> {
        let source: String = source.into();
        let env = environment(rewrite_generation_tags(&source))?;
        Ok(ChatTemplate { source: source.into(), env: Arc::new(env), special })
    }

    /// The template from `tokenizer_config.json` text, with its special tokens. `chat_template` may be a string
    /// or a list of `{"name", "template"}`; from a list the one named `default` is used.
    pub fn from_tokenizer_config(json_text: &str) -> Result<Self> {
        Self::from_tokenizer_config_named(json_text, "default")
    }

    /// Like [`ChatTemplate::from_tokenizer_config`], choosing a named template (`tool_use`, `rag`, ...) from a
    /// list. A plain string template is used whatever the name.
    pub fn from_tokenizer_config_named(json_text: &str, name: &str) -> Result<Self> {
        let v = parse_config(json_text)?;
        let special = SpecialTokens::from_config_value(&v);
        let source = match v.get("chat_template") {
            None | Some(serde_json::Value::Null) => return Err(Error::NoChatTemplate),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(items)) => {
                let named = |item: &serde_json::Value| {
                    Some((item.get("name")?.as_str()?.to_string(), item.get("template")?.as_str()?.to_string()))
                };
                let all: Vec<(String, String)> = items.iter().filter_map(named).collect();
                match all.iter().find(|(n, _)| n == name) {
                    Some((_, t)) => t.clone(),
                    None => {
                        let available = all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ");
                        return Err(Error::NoNamedTemplate { wanted: name.to_string(), available });
                    }
                }
            }
            Some(other) => {
                return Err(Error::TokenizerConfig(format!(
                    "`chat_template` must be a string or a list of {{name, template}}, found {other}"
                )));
            }
        };
        Self::new(source, special)
    }

    /// The template a Hugging Face model directory defines: `chat_template.jinja` wins over the config's
    /// `chat_template` (as in transformers), and the special tokens come from `tokenizer_config.json`.
    pub fn from_hf_files(tokenizer_config: Option<&str>, chat_template_jinja: Option<&str>) -> Result<Self> {
        let special = match tokenizer_config {
            Some(text) => SpecialTokens::from_tokenizer_config(text)?,
            None => SpecialTokens::default(),
        };
        match (chat_template_jinja, tokenizer_config) {
            (Some(jinja), _) => Self::new(jinja, special),
            (None, Some(config)) => Self::from_tokenizer_config(config),
            (None, None) => Err(Error::NoChatTemplate),
        }
    }

    /// The Jinja source as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Render `messages` (`add_generation_prompt` as in `apply_chat_template`).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_with(messages, add_generation_prompt, &TemplateVars::default())
    }

    /// Render with extra variables; a `messages` variable in `vars` replaces `messages`.
    pub fn render_with(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        vars: &TemplateVars,
    ) -> Result<String> {
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        let msgs: Vec<Value> = messages
            .iter()
            .map(|m| {
                pyjson::ordered_map(vec![
                    ("role".to_string(), Value::from(m.role.as_str())),
                    ("content".to_string(), Value::from(m.content.as_str())),
                ])
            })
            .collect();
        ctx.insert("messages".into(), Value::from(msgs));
        ctx.insert("add_generation_prompt".into(), Value::from(add_generation_prompt));
        let tokens = [
            ("bos_token", &self.special.bos),
            ("eos_token", &self.special.eos),
            ("unk_token", &self.special.unk),
            ("pad_token", &self.special.pad),
        ];
        for (name, token) in tokens {
            if let Some(t) = token {
                ctx.insert(name.into(), Value::from(t.as_str()));
            }
        }
        for (name, json) in &vars.vars {
            ctx.insert(name.clone(), json.to_value());
        }
        if let Some(now) = vars.now_unix_seconds {
            ctx.insert(NOW_KEY.into(), Value::from(now));
        }
        let template = self.env.get_template(NAME).map_err(|e| Error::TemplateRender(e.to_string()))?;
        template.render(ctx).map_err(render_error)
    }
}

/// The minijinja environment matching transformers' `ImmutableSandboxedEnvironment` for chat templates.
fn environment(source: String) -> Result<Environment<'static>> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    // Jinja2's default, also transformers': one trailing newline of the template is dropped.
    env.set_keep_trailing_newline(false);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.set_formatter(python_formatter);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.add_template_owned(NAME, source).map_err(|e| Error::TemplateSyntax(e.to_string()))?;
    Ok(env)
}

/// Print values as Python's `str()` would, where it differs from minijinja: `None`, `True`, `False`, floats.
fn python_formatter(out: &mut minijinja::Output, state: &State, value: &Value) -> Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::None => out.write_str("None")?,
        ValueKind::Bool => out.write_str(if value.is_true() { "True" } else { "False" })?,
        ValueKind::Number if !value.is_integer() => out.write_str(&pyjson::py_number(value))?,
        _ => minijinja::escape_formatter(out, state, value)?,
    }
    Ok(())
}

/// Marks an error raised by the template itself, so it can be told apart from engine errors.
#[derive(Debug)]
struct Raised(String);

impl fmt::Display for Raised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Raised {}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message.clone()).with_source(Raised(message)))
}

fn render_error(e: minijinja::Error) -> Error {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        if let Some(Raised(msg)) = err.downcast_ref::<Raised>() {
            return Error::TemplateRaised(msg.clone());
        }
        cur = err.source();
    }
    Error::TemplateRender(e.to_string())
}

/// transformers' `tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, minijinja::Error> {
    let separators = match kwargs.get::<Option<Vec<String>>>("separators")? {
        Some(pair) => match pair.as_slice() {
            [item, key] => Some((item.clone(), key.clone())),
            _ => return Err(minijinja::Error::new(ErrorKind::InvalidOperation, "separators must be a pair")),
        },
        None => None,
    };
    let opts = DumpOptions {
        indent: kwargs.get::<Option<usize>>("indent")?,
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        separators,
    };
    kwargs.assert_all_used()?;
    Ok(Value::from_safe_string(pyjson::dumps(value, &opts)?))
}

/// `strftime_now(format)`: the current time (UTC; or the instant fixed through [`TemplateVars::set_now`]).
fn strftime_now(state: &State, format: &str) -> Result<String, minijinja::Error> {
    let fixed = state.lookup(NOW_KEY).and_then(|v| v.as_i64());
    let now = fixed.unwrap_or_else(|| OffsetDateTime::now_utc().unix_timestamp());
    Ok(strftime_utc(now, format))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// C `strftime` for the directives chat templates use (`%d %b %Y`, `%B`, `%A`, `%H:%M`, glibc's `%-d`).
/// Unknown directives are copied through, as glibc does. The calendar is the `time` crate's;
/// an instant outside its years (±9999) prints as the epoch.
pub(crate) fn strftime_utc(unix_seconds: i64, format: &str) -> String {
    let t = OffsetDateTime::from_unix_timestamp(unix_seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let (year, month, day) = (i64::from(t.year()), i64::from(u8::from(t.month())), i64::from(t.day()));
    let (hour, minute, second) = (i64::from(t.hour()), i64::from(t.minute()), i64::from(t.second()));
    let weekday = usize::from(t.weekday().number_days_from_monday());
    let yday = i64::from(t.ordinal());
    let month_name = MONTHS.get((month - 1) as usize).copied().unwrap_or("");
    let weekday_name = WEEKDAYS.get(weekday).copied().unwrap_or("");
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let num = |n: i64, width: usize| if no_pad { n.to_string() } else { format!("{n:0width$}") };
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&num(year.rem_euclid(100), 2)),
            Some('m') => out.push_str(&num(month, 2)),
            Some('d') => out.push_str(&num(day, 2)),
            Some('e') => out.push_str(&format!("{day:>2}")),
            Some('H') => out.push_str(&num(hour, 2)),
            Some('I') => out.push_str(&num(hour12, 2)),
            Some('M') => out.push_str(&num(minute, 2)),
            Some('S') => out.push_str(&num(second, 2)),
            Some('p') => out.push_str(if hour < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&num(yday, 3)),
            Some('B') => out.push_str(month_name),
            Some('b') | Some('h') => out.push_str(month_name.get(..3).unwrap_or("")),
            Some('A') => out.push_str(weekday_name),
            Some('a') => out.push_str(weekday_name.get(..3).unwrap_or("")),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if no_pad {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn parse_config(json_text: &str) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_str(json_text).map_err(|e| Error::TokenizerConfig(e.to_string()))?;
    if !v.is_object() {
        return Err(Error::TokenizerConfig("expected a JSON object".into()));
    }
    Ok(v)
}

/// transformers adds a `{% generation %}...{% endgeneration %}` tag that marks assistant text and renders its
/// body unchanged; minijinja has no such tag, so it becomes `{% if true %}...{% endif %}`, keeping the
/// whitespace-control markers so trimming stays the same.
fn rewrite_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("{%") {
        out.push_str(&rest[..at]);
        let tag = &rest[at..];
        match generation_tag(tag) {
            Some((len, replacement)) => {
                out.push_str(&replacement);
                rest = &tag[len..];
            }
            None => {
                out.push_str("{%");
                rest = &tag[2..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// If `tag` starts with a `generation`/`endgeneration` block tag: its length and the replacement.
fn generation_tag(tag: &str) -> Option<(usize, String)> {
    let body = tag.strip_prefix("{%")?;
    let (open, body) = match body.strip_prefix(['-', '+']) {
        Some(b) => (&body[..1], b),
        None => ("", body),
    };
    let trimmed = body.trim_start();
    let word_len = trimmed.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
    let replacement = match &trimmed[..word_len] {
        "generation" => "if true",
        "endgeneration" => "endif",
        _ => return None,
    };
    let after = trimmed[word_len..].trim_start();
    let (close, after) = match after.strip_prefix(['-', '+']) {
        Some(a) => (&after[..1], a),
        None => ("", after),
    };
    let after = after.strip_prefix("%}")?;
    Some((tag.len() - after.len(), format!("{{%{open} {replacement} {close}%}}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against Python's `datetime.date` (days since 1970-01-01), leap days and century rules included.
    #[test]
    fn civil_dates_match_python() {
        for (days, ymd) in [
            (0, "1970-01-01"),
            (-1, "1969-12-31"),
            (11_016, "2000-02-29"),
            (20_783, "2026-11-26"),
            (47_541, "2100-03-01"),
        ] {
            assert_eq!(strftime_utc(days * 86_400, "%Y-%m-%d"), ymd, "day {days}");
        }
    }

    #[test]
    fn strftime_matches_known_dates() {
        // 2024-07-23 14:05:09 UTC was a Tuesday, day 205 of a leap year.
        let t = 1_721_743_509;
        assert_eq!(strftime_utc(t, "%d %b %Y"), "23 Jul 2024");
        assert_eq!(strftime_utc(t, "%A, %B %-d, %Y %H:%M:%S %j %p %I"), "Tuesday, July 23, 2024 14:05:09 205 PM 02");
        assert_eq!(strftime_utc(0, "%Y-%m-%d %a %%"), "1970-01-01 Thu %");
        assert_eq!(strftime_utc(951_782_400, "%Y-%m-%d"), "2000-02-29");
        assert_eq!(strftime_utc(-86_400, "%Y-%m-%d %q"), "1969-12-31 %q");
    }

    #[test]
    fn generation_tags_become_if_blocks() {
        assert_eq!(
            rewrite_generation_tags("a{%- generation -%}b{% endgeneration %}c{% if x %}{% endif %}"),
            "a{%- if true -%}b{% endif %}c{% if x %}{% endif %}"
        );
        assert_eq!(rewrite_generation_tags("{% generations %}"), "{% generations %}");
    }

    #[test]
    fn special_tokens_accept_added_token_objects() {
        let st = SpecialTokens::from_tokenizer_config(
            r#"{"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>", "pad_token": null}"#,
        )
        .unwrap();
        assert_eq!(st, SpecialTokens { bos: Some("<s>".into()), eos: Some("</s>".into()), unk: None, pad: None });
    }
}
