//! Lenient JSON lines: Python's `json.dumps` writes NaN and +-Infinity as bare words,
//! which strict JSON parsers reject. Descriptor and metrics readers accept them.

/// The bare words Python writes for non-finite floats (longest first).
pub const NON_FINITE_WORDS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// Replace each bare non-finite word outside strings by `with(word)`. None when the
/// line has none.
pub fn replace_non_finite_words(line: &[u8], with: impl Fn(&'static [u8]) -> &'static [u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(line.len() + 16);
    let (mut in_string, mut escaped, mut replaced) = (false, false, false);
    let mut i = 0;
    'outer: while i < line.len() {
        let b = line[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else {
            for w in NON_FINITE_WORDS {
                if line[i..].starts_with(w) {
                    out.extend_from_slice(with(w));
                    i += w.len();
                    replaced = true;
                    continue 'outer;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    replaced.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_outside_strings_only() {
        let null = |_: &'static [u8]| -> &'static [u8] { b"null" };
        assert_eq!(replace_non_finite_words(br#"{"q":"NaN \" Infinity"}"#, null), None);
        assert_eq!(replace_non_finite_words(br#"[NaN,-Infinity,Infinity]"#, null).unwrap(), b"[null,null,null]");
        let quoted = |w: &'static [u8]| -> &'static [u8] {
            match w {
                b"-Infinity" => br#""-Infinity""#,
                b"Infinity" => br#""Infinity""#,
                _ => br#""NaN""#,
            }
        };
        assert_eq!(
            replace_non_finite_words(br#"{"a": -Infinity, "b": Infinity, "c": NaN}"#, quoted).unwrap(),
            br#"{"a": "-Infinity", "b": "Infinity", "c": "NaN"}"#
        );
    }
}
