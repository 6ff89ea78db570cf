//! The pure text rules of the GDO method (method §1): normalisation, token counts,
//! the stratification fields and uniform frame resampling.
//!
//! Ingest, the SQL functions in this crate and (later) scoring all call these, so a
//! stratum computed in SQL and one computed at ingest can never disagree.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// Python's `str.isspace`: Unicode `White_Space` plus the four ASCII information
/// separators U+001C..U+001F, which Python also splits on. The reference normalises
/// with Python, so we match its notion of whitespace exactly.
#[inline]
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `norm(x)`: collapse every run of whitespace into one space and trim.
pub fn norm(text: &str) -> String {
    norm_cow(text).into_owned()
}

/// [`norm`] without a copy when the text is already normalised (most text is: one scan
/// instead of a split-and-join, and no allocation; ingest calls this for every turn).
pub fn norm_cow(text: &str) -> Cow<'_, str> {
    if is_normalised(text) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    if text.is_ascii() {
        // Bytes, not chars (most questions start with `<image>\n`, so this path is
        // common): ASCII whitespace is a set of single bytes, and every cut between
        // ASCII bytes is a char boundary.
        let mut word_start = None;
        for (i, &b) in text.as_bytes().iter().enumerate() {
            let space = b == b' ' || is_ascii_control_space(b);
            match (space, word_start) {
                (false, None) => word_start = Some(i),
                (true, Some(start)) => {
                    push_word(&mut out, &text[start..i]);
                    word_start = None;
                }
                _ => {}
            }
        }
        if let Some(start) = word_start {
            push_word(&mut out, &text[start..]);
        }
        return Cow::Owned(out);
    }
    for word in text.split(is_py_space).filter(|w| !w.is_empty()) {
        push_word(&mut out, word);
    }
    Cow::Owned(out)
}

/// ASCII bytes Python's `str.split()` splits on besides the space: `\t\n\x0b\x0c\r` and
/// the separators `\x1c`-`\x1f`.
#[inline]
fn is_ascii_control_space(b: u8) -> bool {
    matches!(b, 0x09..=0x0d | 0x1c..=0x1f)
}

/// Append a word to normalised text, a space before it unless it is the first.
fn push_word(out: &mut String, word: &str) {
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(word);
}

/// True when `norm(text) == text`, so callers can skip an allocation.
pub fn is_normalised(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_ascii() {
        // ASCII: no whitespace but single inner spaces. Whole-slice folds (no early
        // exit) so the compiler vectorises them; the common text is normalised and
        // needs every byte looked at anyway.
        let control_space = bytes.iter().fold(false, |acc, &b| acc | is_ascii_control_space(b));
        let double_space = bytes
            .iter()
            .zip(&bytes[1.min(bytes.len())..])
            .fold(false, |acc, (&a, &b)| acc | ((a == b' ') & (b == b' ')));
        return !(control_space || double_space || bytes.first() == Some(&b' ') || bytes.last() == Some(&b' '));
    }
    let mut prev_space = true; // a leading space is not normalised
    for c in text.chars() {
        if is_py_space(c) {
            if prev_space || c != ' ' {
                return false;
            }
            prev_space = true;
        } else {
            prev_space = false;
        }
    }
    !prev_space || text.is_empty()
}

/// User-turn text: media tokens `<image>`, `<video>`, `<audio>` become spaces, then `norm`
/// (borrowed when nothing changes).
pub fn norm_user_text(text: &str) -> Cow<'_, str> {
    const TAGS: [&[u8]; 3] = [b"<image>", b"<video>", b"<audio>"];
    let bytes = text.as_bytes();
    // One pass over the `<`s: each tag becomes a space, the rest is copied as is.
    let mut stripped: Option<String> = None;
    let mut copied = 0;
    for at in memchr::memchr_iter(b'<', bytes) {
        if at < copied || !TAGS.iter().any(|t| bytes[at..].starts_with(t)) {
            continue;
        }
        let out = stripped.get_or_insert_with(|| String::with_capacity(text.len()));
        // Tags and `<` are ASCII, so these cuts fall on char boundaries.
        out.push_str(&text[copied..at]);
        out.push(' ');
        copied = at + TAGS[0].len();
    }
    match stripped {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(norm(&out))
        }
        None => norm_cow(text),
    }
}

/// Number of `[A-Za-z0-9_]+` tokens in the lower-cased text.
///
/// Lower-casing can turn a non-ASCII letter into an ASCII one (the Kelvin sign becomes
/// `k`), so non-ASCII text is lower-cased first, exactly like the reference.
pub fn token_count(text: &str) -> usize {
    if text.is_ascii() {
        count_ascii_tokens(text.as_bytes())
    } else {
        count_ascii_tokens(text.to_lowercase().as_bytes())
    }
}

#[inline]
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() | (b == b'_')
}

/// Tokens start where a token byte follows a non-token byte (or the text's start);
/// counted over byte pairs without branches, which the compiler vectorises.
fn count_ascii_tokens(bytes: &[u8]) -> usize {
    let Some(&first) = bytes.first() else { return 0 };
    let (before, after) = (&bytes[..bytes.len() - 1], &bytes[1..]);
    // u16 lanes; a chunk of u16::MAX pairs cannot overflow them.
    let lane = usize::from(u16::MAX);
    let starts: usize = before
        .chunks(lane)
        .zip(after.chunks(lane))
        .map(|(a, b)| {
            // A wrapping fold: an overflow-checked sum would not vectorise in test builds.
            a.iter().zip(b).fold(0u16, |n, (&x, &y)| n.wrapping_add(u16::from(!is_token_byte(x) & is_token_byte(y))))
                as usize
        })
        .sum();
    starts + usize::from(is_token_byte(first))
}

/// The lower-cased `[A-Za-z0-9_]+` tokens of `text`, in order (used for distinct-token
/// ratios and the hashed text features).
pub fn tokens(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

static TEMPORAL_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(before|after|then|while|during|first|next|finally|sequence|later|earlier|transition|happen)\b")
        .expect("temporal regex is valid")
});

// The newline alternatives can never match a normalised question (the reference's
// quirk, kept for parity); they stay so the rule reads as the reference wrote it.
static MCQ_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(\bchoices?\b)|(\nA\.)|(\nA\))").expect("mcq regex is valid"));

/// Does the question ask for temporal reasoning (the method's temporal keyword regex)?
pub fn is_temporal_question(question: &str) -> bool {
    TEMPORAL_RE.is_match(question)
}

/// Bucket names of the two pools.
pub const BUCKET_IMAGE: &str = "image_qa";
pub const BUCKET_VIDEO: &str = "short_video";

/// `temporal_category`: `Static` for image pairs; `Temporal` or `Mixed` for video pairs.
pub fn temporal_category(is_video: bool, question: &str) -> &'static str {
    if !is_video {
        "Static"
    } else if is_temporal_question(question) {
        "Temporal"
    } else {
        "Mixed"
    }
}

/// `question_form`: `MCQ` when the question mentions choice(s), else `Open`.
pub fn question_form(question: &str) -> &'static str {
    if MCQ_RE.is_match(question) { "MCQ" } else { "Open" }
}

/// `duration_bucket` from the number of kept frames.
pub fn duration_bucket(kept_frames: usize) -> &'static str {
    match kept_frames {
        0..=1 => "image",
        2..=8 => "very_short",
        9..=24 => "short",
        25..=64 => "medium",
        65..=160 => "long",
        _ => "very_long",
    }
}

/// `q_len_bucket` from the question's token count.
pub fn q_len_bucket(q_tokens: usize) -> &'static str {
    match q_tokens {
        0..=6 => "q_tiny",
        7..=14 => "q_short",
        15..=30 => "q_medium",
        31..=60 => "q_long",
        _ => "q_very_long",
    }
}

/// `a_len_bucket` from the answer's token count.
pub fn a_len_bucket(a_tokens: usize) -> &'static str {
    match a_tokens {
        0..=2 => "a_tiny",
        3..=8 => "a_short",
        9..=24 => "a_medium",
        25..=64 => "a_long",
        _ => "a_very_long",
    }
}

/// `source_group` of a data source: the name before `(`, or the first four `_` parts.
pub fn source_group(data_source: &str) -> String {
    let s = norm(data_source);
    if s.is_empty() {
        return "unknown".to_owned();
    }
    if let Some(pos) = s.find('(') {
        let head = s[..pos].trim_matches(is_py_space);
        return if head.is_empty() { "unknown".to_owned() } else { head.to_owned() };
    }
    let parts: Vec<&str> = s.split('_').collect();
    if parts.len() >= 4 { parts[..4].join("_") } else { s }
}

/// The seven stratification values of one pair, in stratum order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strata<'a> {
    pub bucket: &'static str,
    pub duration_bucket: &'static str,
    pub temporal_category: &'static str,
    pub question_form: &'static str,
    pub q_len_bucket: &'static str,
    pub a_len_bucket: &'static str,
    /// The row's source group, shared by all its pairs.
    pub source_group: &'a str,
    pub q_tokens: usize,
    pub a_tokens: usize,
}

impl<'a> Strata<'a> {
    /// Compute the fields for a normalised question/answer pair.
    pub fn compute(is_video: bool, kept_frames: usize, question: &str, answer: &str, source_group: &'a str) -> Self {
        let q_tokens = token_count(question);
        let a_tokens = token_count(answer);
        Self {
            bucket: if is_video { BUCKET_VIDEO } else { BUCKET_IMAGE },
            duration_bucket: duration_bucket(kept_frames),
            temporal_category: temporal_category(is_video, question),
            question_form: question_form(question),
            q_len_bucket: q_len_bucket(q_tokens),
            a_len_bucket: a_len_bucket(a_tokens),
            source_group,
            q_tokens,
            a_tokens,
        }
    }

    /// `stratum`: the seven values joined with `|`.
    pub fn stratum(&self) -> String {
        let mut out = String::new();
        self.push_stratum(&mut out);
        out
    }

    /// Append the `stratum` to `out` (ingest reuses one buffer for every pair).
    pub fn push_stratum(&self, out: &mut String) {
        let values = [
            self.bucket,
            self.duration_bucket,
            self.temporal_category,
            self.question_form,
            self.q_len_bucket,
            self.a_len_bucket,
            self.source_group,
        ];
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                out.push('|');
            }
            out.push_str(v);
        }
    }
}

/// Uniform resampling of `n` items to at most `t`: the kept item indices.
///
/// Index `i` maps to `round(i*(n-1)/(t-1))` with round-half-to-even, as Python's
/// `round` does; computed on integers so no float can tip a tie.
pub fn uniform_indices(n: usize, t: usize) -> Vec<usize> {
    if n <= t {
        return (0..n).collect();
    }
    if t == 0 {
        return Vec::new();
    }
    if t == 1 {
        return vec![0];
    }
    let den = (t - 1) as u64;
    (0..t as u64)
        .map(|i| {
            let num = i * (n as u64 - 1);
            let (q, r) = (num / den, num % den);
            let rounded = match (2 * r).cmp(&den) {
                std::cmp::Ordering::Less => q,
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal => q + (q & 1),
            };
            rounded as usize
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain forms the fast paths must equal: char by char, as the reference reads.
    fn plain_is_normalised(text: &str) -> bool {
        text.split(is_py_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ") == text
    }
    fn plain_token_count(text: &str) -> usize {
        text.to_lowercase().split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|t| !t.is_empty()).count()
    }
    fn plain_norm(text: &str) -> String {
        text.split(is_py_space).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ")
    }
    fn plain_norm_user_text(text: &str) -> String {
        plain_norm(&text.replace("<image>", " ").replace("<video>", " ").replace("<audio>", " "))
    }

    #[test]
    fn fast_text_paths_equal_their_plain_forms() {
        // Texts drawn from an alphabet dense in the edge cases: every kind of Python
        // whitespace, tag fragments, underscores, non-ASCII letters (one lower-cases
        // to ASCII), at lengths that cross the vector widths.
        let alphabet: Vec<&str> = vec![
            " ", "  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\u{85}", "\u{a0}", "\u{3000}", "a", "Z", "9",
            "_", "-", ",", "é", "\u{212a}", "<", ">", "<image>", "<video>", "<audio>", "<imag", "<<image>", "image>",
            "ok",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        // Half the texts from the ASCII letters alone, for the byte-wise fast paths.
        let ascii: Vec<&str> = alphabet.iter().copied().filter(|a| a.is_ascii()).collect();
        for round in 0..40_000 {
            let letters = if round % 2 == 0 { &alphabet } else { &ascii };
            let len = next(90);
            let text: String = (0..len).map(|_| letters[next(letters.len())]).collect();
            assert_eq!(is_normalised(&text), plain_is_normalised(&text), "{text:?}");
            assert_eq!(norm(&text), plain_norm(&text), "{text:?}");
            assert_eq!(token_count(&text), plain_token_count(&text), "{text:?}");
            assert_eq!(norm_user_text(&text), plain_norm_user_text(&text), "{text:?}");
        }
        // Long texts cross the u16 lane chunks.
        let long = "ab_1 ".repeat(40_000);
        assert_eq!(token_count(&long), 40_000);
        assert_eq!(token_count(&long[1..]), 40_000);
    }

    #[test]
    fn norm_collapses_python_whitespace() {
        assert_eq!(norm("  a \t b\n\nc  "), "a b c");
        assert_eq!(norm("x\u{1c}y\u{a0}z"), "x y z");
        assert_eq!(norm(""), "");
        assert!(is_normalised("a b c"));
        assert!(!is_normalised(" a"));
        assert!(!is_normalised("a  b"));
        assert!(!is_normalised("a\tb"));
        assert!(!is_normalised("a "));
        assert!(is_normalised(""));
    }

    #[test]
    fn media_tokens_are_removed_from_user_text() {
        assert_eq!(norm_user_text("<image>\nWhat is<video>this?"), "What is this?");
    }

    #[test]
    fn tokens_follow_the_reference_regex() {
        assert_eq!(token_count("Hello, world_1 -- x"), 3);
        assert_eq!(token_count("héllo"), 2); // é is not in [A-Za-z0-9_]
        assert_eq!(token_count("\u{212a}"), 1); // Kelvin sign lower-cases to ASCII k
        assert_eq!(tokens("The CAT, the cat!"), vec!["the", "cat", "the", "cat"]);
    }

    #[test]
    fn strata_fields() {
        assert_eq!(temporal_category(true, "What happens AFTER the jump?"), "Temporal");
        assert_eq!(temporal_category(true, "What is afterwards shown?"), "Mixed");
        assert_eq!(temporal_category(false, "before"), "Static");
        assert_eq!(question_form("Pick one of the Choices below"), "MCQ");
        assert_eq!(question_form("Options: A. x"), "Open");
        assert_eq!(duration_bucket(1), "image");
        assert_eq!(duration_bucket(8), "very_short");
        assert_eq!(duration_bucket(32), "medium");
        assert_eq!(duration_bucket(161), "very_long");
        assert_eq!(q_len_bucket(6), "q_tiny");
        assert_eq!(q_len_bucket(61), "q_very_long");
        assert_eq!(a_len_bucket(2), "a_tiny");
        assert_eq!(a_len_bucket(64), "a_long");
    }

    #[test]
    fn source_groups() {
        assert_eq!(source_group("ai2d(cauldron,llava_format)"), "ai2d");
        assert_eq!(source_group(" (x)"), "unknown");
        assert_eq!(source_group(""), "unknown");
        assert_eq!(source_group("0_30_s_academic_v0_1"), "0_30_s_academic");
        assert_eq!(source_group("0_30_s_nextqa"), "0_30_s_nextqa");
        assert_eq!(source_group("textcaps"), "textcaps");
    }

    #[test]
    fn uniform_resampling_rounds_half_to_even() {
        assert_eq!(uniform_indices(3, 32), vec![0, 1, 2]);
        // 6 items to 3: i*(5)/2 = 0, 2.5, 5 -> 0, 2, 5 (2.5 rounds to 2)
        assert_eq!(uniform_indices(6, 3), vec![0, 2, 5]);
        // 8 items to 3: 0, 3.5, 7 -> 0, 4, 7 (3.5 rounds to 4)
        assert_eq!(uniform_indices(8, 3), vec![0, 4, 7]);
        let idx = uniform_indices(180, 32);
        assert_eq!(idx.len(), 32);
        assert_eq!((idx[0], idx[31]), (0, 179));
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
    }
}
