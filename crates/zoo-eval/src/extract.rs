//! Apollo's answer extraction for generated answers (`extract_and_choose_answer` in repo Apollo
//! `src/evaluate/eval_*.py` and `generate_score.py`), rule for rule:
//! 1. an output with a line break keeps only its first non-empty line;
//! 2. strict: a letter A–F (either case) inside half- or full-width parentheses, `(B)` `（b）`;
//! 3. else loose: any capital A–F (case-sensitive, so the `B` of `Based` counts, as in Apollo);
//! 4. else `Yes.` → A and `No.` → B when the line is exactly that;
//! 5. the most frequent letter wins; a tie goes to the letter seen first.
//!
//! With `arabic` (ApolloMoE's `eval_qwen2.py`), Arabic letters in parentheses count too:
//! `أ` → A, `ب` → B, `س` or `ك` → C, `د` → D.

/// The extracted letter, or `None` (scored as wrong).
pub fn apollo_answer(output: &str, arabic: bool) -> Option<char> {
    let line = if output.contains('\n') {
        output.split('\n').map(str::trim).find(|l| !l.is_empty()).unwrap_or("")
    } else {
        output
    };
    let chars: Vec<char> = line.chars().collect();
    let mut found: Vec<char> = Vec::new();
    for w in chars.windows(3) {
        let [open, c, close] = [w[0], w[1], w[2]];
        if matches!(open, '(' | '（') && matches!(close, ')' | '）') {
            let letter = match c {
                'A'..='F' => Some(c),
                'a'..='f' => Some(c.to_ascii_uppercase()),
                'أ' if arabic => Some('A'),
                'ب' if arabic => Some('B'),
                'س' | 'ك' if arabic => Some('C'),
                'د' if arabic => Some('D'),
                _ => None,
            };
            found.extend(letter);
        }
    }
    if found.is_empty() {
        found = chars.iter().copied().filter(|c| matches!(c, 'A'..='F')).collect();
    }
    if found.is_empty() {
        return match line {
            "Yes." => Some('A'),
            "No." => Some('B'),
            _ => None,
        };
    }
    // Most frequent; ties to the first seen (Counter.most_common keeps insertion order).
    let mut best: Option<(char, usize)> = None;
    for &c in &found {
        let n = found.iter().filter(|&&x| x == c).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((c, n));
        }
    }
    best.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::apollo_answer as a;

    #[test]
    fn the_documented_cases() {
        assert_eq!(a("The correct answer is (B).", false), Some('B'));
        assert_eq!(a("正确答案是（c）。", false), Some('C'));
        // Only the first non-empty line counts.
        assert_eq!(a("\n\nThe answer is (D).\nBut (A) is also (A) plausible", false), Some('D'));
        // Loose letters when nothing is in parentheses: "Based" gives a B, as in Apollo.
        assert_eq!(a("Based on the findings, C", false), Some('B'));
        assert_eq!(a("C", false), Some('C'));
        // Yes./No. only as the whole line.
        assert_eq!(a("Yes.", false), Some('A'));
        assert_eq!(a("No.", false), Some('B'));
        assert_eq!(a("yes, it is", false), None);
        assert_eq!(a("no letters here", false), None);
        // Most frequent wins; a tie goes to the first seen.
        assert_eq!(a("(A) or (C) or (C)", false), Some('C'));
        assert_eq!(a("(D) or (B)", false), Some('D'));
        // Strict matches win over loose ones.
        assert_eq!(a("A B C (D)", false), Some('D'));
        // Arabic letters only when asked.
        assert_eq!(a("الإجابة الصحيحة هي (ب)", true), Some('B'));
        assert_eq!(a("الإجابة الصحيحة هي (ب)", false), None);
        assert_eq!(a("(ك)", true), Some('C'));
    }
}
