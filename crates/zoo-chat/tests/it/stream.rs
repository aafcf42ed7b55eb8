//! Token-by-token detokenization: byte-fallback Chinese characters and SentencePiece spaces.

use std::convert::Infallible;

use zoo_chat::{Detokenize, Error, TokenTextStream};

/// A byte-level vocabulary where a token is a handful of raw bytes, so a 3-byte CJK character can span 2 or 3
/// tokens. Decoding replaces invalid (incomplete) UTF-8 with U+FFFD, like Hugging Face tokenizers.
struct Bytes(Vec<Vec<u8>>);

impl Detokenize for Bytes {
    type Error = String;
    fn decode(&self, ids: &[u32]) -> Result<String, String> {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend(self.0.get(*id as usize).ok_or_else(|| format!("unknown id {id}"))?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

#[test]
fn a_split_chinese_character_is_emitted_once_whole_and_on_time() {
    let text = "头痛，ok";
    let b = text.as_bytes();
    // 头 = e5 a4 b4 in 2 tokens; 痛 = e7 97 9b in 3 tokens; "，" = ef bc 8c in 2 tokens sharing none.
    let vocab = vec![
        b[0..2].to_vec(),
        b[2..3].to_vec(),
        b[3..4].to_vec(),
        b[4..5].to_vec(),
        b[5..6].to_vec(),
        b[6..7].to_vec(),
        b[7..9].to_vec(),
        b[9..11].to_vec(),
    ];
    let mut stream = TokenTextStream::new(Bytes(vocab));
    let outputs: Vec<Option<String>> = (0..8).map(|id| stream.push(id).unwrap()).collect();
    assert_eq!(
        outputs,
        vec![
            None,
            Some("头".to_string()),
            None,
            None,
            Some("痛".to_string()),
            None,
            Some("，".to_string()),
            Some("ok".to_string())
        ]
    );
    assert_eq!(stream.finish().unwrap(), None);
}

#[test]
fn generation_ending_inside_a_character_is_flushed_by_finish() {
    let b = "好".as_bytes();
    let mut stream = TokenTextStream::new(Bytes(vec![b[0..1].to_vec()]));
    assert_eq!(stream.push(0).unwrap(), None);
    assert_eq!(stream.finish().unwrap(), Some("\u{FFFD}".to_string()));
    assert_eq!(stream.finish().unwrap(), None);
}

/// SentencePiece-style: `▁` is a space, and a decoded sequence drops its own leading space.
fn sentencepiece(vocab: &'static [&'static str]) -> impl Fn(&[u32]) -> Result<String, Infallible> {
    move |ids: &[u32]| {
        let s: String = ids.iter().map(|&i| vocab.get(i as usize).copied().unwrap_or("")).collect();
        let s = s.replace('▁', " ");
        Ok(s.strip_prefix(' ').map(str::to_string).unwrap_or(s))
    }
}

#[test]
fn spaces_between_words_survive_and_nothing_repeats() {
    const VOCAB: &[&str] = &["▁Hello", "▁world", ",", "▁again"];
    let mut stream = TokenTextStream::new(sentencepiece(VOCAB));
    let mut out = Vec::new();
    for id in [0, 1, 2, 3] {
        out.push(stream.push(id).unwrap().unwrap_or_default());
    }
    assert_eq!(out, vec!["Hello", " world", ",", " again"]);
    assert_eq!(out.concat(), "Hello world, again");
}

#[test]
fn context_ids_keep_the_first_word_space() {
    const VOCAB: &[&str] = &["▁Answer:", "▁Paris"];
    let mut stream = TokenTextStream::with_context(sentencepiece(VOCAB), &[0]);
    assert_eq!(stream.push(1).unwrap(), Some(" Paris".to_string()));
    assert_eq!(stream.ids(), &[0, 1]);
}

#[test]
fn decoder_failures_are_typed() {
    let mut stream = TokenTextStream::new(Bytes(vec![]));
    let err = stream.push(7).unwrap_err();
    assert!(matches!(&err, Error::Detokenize(m) if m == "unknown id 7"), "{err}");
}
