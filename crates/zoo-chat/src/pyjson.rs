//! Python-compatible JSON for chat templates: insertion-ordered template values and `json.dumps` output.
//!
//! Hugging Face templates run under Python, where dicts keep insertion order and `tojson` is `json.dumps`.
//! minijinja maps (without its `preserve_order` feature) and `serde_json::Value` sort their keys, and
//! minijinja's `tojson` escapes HTML characters, so tool schemas would render differently. This module keeps
//! key order from the JSON text and formats numbers, strings and separators as CPython does.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, ObjectRepr, Value, ValueKind};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON document that remembers the order of object keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
                Json::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Int(n))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(i64::try_from(n).map(Json::Int).unwrap_or(Json::UInt(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Float(n))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Json, E> {
                Ok(Json::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = a.next_element::<Json>()? {
                    items.push(x);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut items: Vec<(String, Json)> = Vec::new();
                while let Some((k, v)) = a.next_entry::<String, Json>()? {
                    // A repeated key overwrites in place, as a Python dict built from JSON does.
                    match items.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => items.push((k, v)),
                    }
                }
                Ok(Json::Object(items))
            }
        }
        d.deserialize_any(V)
    }
}

impl Json {
    /// Parse any `Serialize` value through JSON text, which keeps struct field and map insertion order.
    pub(crate) fn from_serialize<T: serde::Serialize + ?Sized>(v: &T) -> Result<Json, serde_json::Error> {
        let text = serde_json::to_string(v)?;
        serde_json::from_str(&text)
    }

    /// The template value: objects become insertion-ordered maps.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::from(()),
            Json::Bool(b) => Value::from(*b),
            Json::Int(n) => Value::from(*n),
            Json::UInt(n) => Value::from(*n),
            Json::Float(f) => Value::from(*f),
            Json::Str(s) => Value::from(s.as_str()),
            Json::Array(items) => Value::from(items.iter().map(Json::to_value).collect::<Vec<_>>()),
            Json::Object(items) => ordered_map(items.iter().map(|(k, v)| (k.clone(), v.to_value())).collect()),
        }
    }
}

/// A template value that is a map iterating in the given key order.
pub(crate) fn ordered_map(entries: Vec<(String, Value)>) -> Value {
    Value::from_object(OrderedMap(entries.into_iter().map(|(k, v)| (Value::from(k), v)).collect()))
}

#[derive(Debug)]
struct OrderedMap(Vec<(Value, Value)>);

impl Object for OrderedMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.iter().map(|(k, _)| k.clone()).collect())
    }
}

/// The `json.dumps` arguments that Hugging Face's `tojson` passes through.
#[derive(Debug, Clone, Default)]
pub(crate) struct DumpOptions {
    pub indent: Option<usize>,
    pub ensure_ascii: bool,
    pub sort_keys: bool,
    /// `(item_separator, key_separator)`; `None` is Python's default, which depends on `indent`.
    pub separators: Option<(String, String)>,
}

/// `json.dumps(value, ...)` as CPython writes it.
pub(crate) fn dumps(value: &Value, opts: &DumpOptions) -> Result<String, minijinja::Error> {
    let (item_sep, key_sep) = match &opts.separators {
        Some((i, k)) => (i.clone(), k.clone()),
        None if opts.indent.is_some() => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    let mut out = String::new();
    let mut w = Writer { opts, item_sep: &item_sep, key_sep: &key_sep, out: &mut out };
    w.value(value, 0)?;
    Ok(out)
}

struct Writer<'a> {
    opts: &'a DumpOptions,
    item_sep: &'a str,
    key_sep: &'a str,
    out: &'a mut String,
}

impl Writer<'_> {
    fn value(&mut self, v: &Value, depth: usize) -> Result<(), minijinja::Error> {
        match v.kind() {
            ValueKind::Undefined => {
                // Python's json.dumps cannot serialise jinja2's Undefined either; failing keeps templates honest.
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::UndefinedError,
                    "tojson got an undefined value (Object of type Undefined is not JSON serializable)",
                ));
            }
            ValueKind::None => self.out.push_str("null"),
            ValueKind::Bool => self.out.push_str(if v.is_true() { "true" } else { "false" }),
            ValueKind::Number => self.out.push_str(&py_number(v)),
            ValueKind::String => self.string(v.as_str().unwrap_or_default()),
            ValueKind::Map => {
                let mut keys: Vec<Value> = v.try_iter()?.collect();
                if self.opts.sort_keys {
                    keys.sort_by_key(|k| k.to_string());
                }
                let mut items = Vec::with_capacity(keys.len());
                for k in keys {
                    let item = v.get_item(&k)?;
                    items.push((k, item));
                }
                self.container('{', '}', items.len(), depth, |w, i, depth| {
                    let (k, item) = &items[i];
                    match k.as_str() {
                        Some(s) => w.string(s),
                        None => w.string(&k.to_string()),
                    }
                    w.out.push_str(w.key_sep);
                    w.value(item, depth)
                })?;
            }
            ValueKind::Seq | ValueKind::Iterable => {
                let items: Vec<Value> = v.try_iter()?.collect();
                self.container('[', ']', items.len(), depth, |w, i, depth| w.value(&items[i], depth))?;
            }
            // Bytes, plain objects: Python would raise; the string form is the most useful thing to show.
            _ => self.string(&v.to_string()),
        }
        Ok(())
    }

    fn container(
        &mut self,
        open: char,
        close: char,
        len: usize,
        depth: usize,
        mut item: impl FnMut(&mut Self, usize, usize) -> Result<(), minijinja::Error>,
    ) -> Result<(), minijinja::Error> {
        self.out.push(open);
        if len == 0 {
            self.out.push(close);
            return Ok(());
        }
        for i in 0..len {
            if i > 0 {
                self.out.push_str(self.item_sep);
            }
            if let Some(n) = self.opts.indent {
                self.out.push('\n');
                self.out.push_str(&" ".repeat(n * (depth + 1)));
            }
            item(self, i, depth + 1)?;
        }
        if let Some(n) = self.opts.indent {
            self.out.push('\n');
            self.out.push_str(&" ".repeat(n * depth));
        }
        self.out.push(close);
        Ok(())
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                '\r' => self.out.push_str("\\r"),
                '\t' => self.out.push_str("\\t"),
                '\u{8}' => self.out.push_str("\\b"),
                '\u{c}' => self.out.push_str("\\f"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c if self.opts.ensure_ascii && !c.is_ascii() => {
                    let mut buf = [0u16; 2];
                    for unit in c.encode_utf16(&mut buf) {
                        let _ = write!(self.out, "\\u{unit:04x}");
                    }
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }
}

/// A number as Python prints it (`repr` for floats, which `json.dumps` and `str` both use).
pub(crate) fn py_number(v: &Value) -> String {
    if v.is_integer() {
        return v.to_string();
    }
    match f64::try_from(v.clone()) {
        Ok(f) => py_float(f),
        Err(_) => v.to_string(),
    }
}

/// CPython's `repr(float)`: shortest round-trip digits, positional for exponents in -4..16, else `1e-05` style.
pub(crate) fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    // Rust's `{:e}` yields the same shortest round-trip digits as Python's repr.
    let sci = format!("{f:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else { return sci };
    let Ok(exp) = exp.parse::<i32>() else { return sci };
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            let (int_part, frac) = if digits.len() > int_len {
                (digits[..int_len].to_string(), digits[int_len..].to_string())
            } else {
                (format!("{digits:0<int_len$}"), "0".to_string())
            };
            format!("{sign}{int_part}.{frac}")
        } else {
            format!("{sign}0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_cpython_repr() {
        for (f, want) in [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (123.25, "123.25"),
            (-2.0, "-2.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.1 + 0.2, "0.30000000000000004"),
            (0.0, "0.0"),
        ] {
            assert_eq!(py_float(f), want, "{f}");
        }
    }

    #[test]
    fn key_order_survives_and_dumps_matches_python() {
        let json: Json = serde_json::from_str(r#"{"z": 1, "a": [true, null, 2.5], "m": "é\"\n<"}"#).unwrap();
        let v = json.to_value();
        assert_eq!(dumps(&v, &DumpOptions::default()).unwrap(), r#"{"z": 1, "a": [true, null, 2.5], "m": "é\"\n<"}"#);
        let ascii = DumpOptions { ensure_ascii: true, sort_keys: true, ..DumpOptions::default() };
        assert_eq!(dumps(&v, &ascii).unwrap(), r#"{"a": [true, null, 2.5], "m": "\u00e9\"\n<", "z": 1}"#);
        let indented = DumpOptions { indent: Some(2), ..DumpOptions::default() };
        assert_eq!(
            dumps(&v, &indented).unwrap(),
            "{\n  \"z\": 1,\n  \"a\": [\n    true,\n    null,\n    2.5\n  ],\n  \"m\": \"é\\\"\\n<\"\n}"
        );
        let empty: Json = serde_json::from_str(r#"{"a": [], "b": {}}"#).unwrap();
        assert_eq!(dumps(&empty.to_value(), &indented).unwrap(), "{\n  \"a\": [],\n  \"b\": {}\n}");
    }

    #[test]
    fn astral_chars_become_surrogate_pairs_with_ensure_ascii() {
        let v = Value::from("😀");
        let opts = DumpOptions { ensure_ascii: true, ..DumpOptions::default() };
        assert_eq!(dumps(&v, &opts).unwrap(), r#""\ud83d\ude00""#);
    }
}
