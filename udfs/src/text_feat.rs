//! `text_feat(question, answer)`: the hashed text side feature of the method.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Float64Builder, ListBuilder};
use datafusion::arrow::datatypes::{DataType, Field};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use sha1::{Digest, Sha1};

use crate::common::{DOC_SECTION_GDO, map_strings};
use crate::method::tokens;

/// Number of hash bins of `text_feat`.
pub const TEXT_FEAT_BINS: usize = 16;

/// The bin of one token: the first 8 bytes of SHA-1(token as UTF-8), read big-endian,
/// modulo 16. The reference used Python's per-process salted `hash`, which cannot be
/// reproduced; SHA-1 (RustCrypto `sha1`) is fixed and available everywhere.
pub fn token_bin(token: &str) -> usize {
    let digest = Sha1::digest(token.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % TEXT_FEAT_BINS as u64) as usize
}

/// The 16-bin text feature of a pair: one count per `[A-Za-z0-9_]+` token of the
/// lower-cased question and answer in bin [`token_bin`], divided by (L2 norm + 1e-6).
pub fn text_feat_values(question: &str, answer: &str) -> [f64; TEXT_FEAT_BINS] {
    let mut bins = [0f64; TEXT_FEAT_BINS];
    for t in tokens(question).iter().chain(tokens(answer).iter()) {
        bins[token_bin(t)] += 1.0;
    }
    let norm = bins.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-6;
    bins.iter_mut().for_each(|v| *v /= norm);
    bins
}

/// SQL function `text_feat`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TextFeat {
    signature: Signature,
}

impl Default for TextFeat {
    fn default() -> Self {
        Self { signature: Signature::string(2, Volatility::Immutable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Text side feature of the method (docs/method.md section 3), a `LIST<DOUBLE>` of 16 bins: each \
         lower-cased [A-Za-z0-9_]+ token of the question and of the answer adds 1 to bin \
         `u64_be(sha1(token)[0..8]) mod 16` (first 8 bytes of SHA-1 of the token, big-endian); the vector \
         is divided by its L2 norm + 1e-6. A NULL text counts as empty; both NULL gives NULL. No token \
         gives 16 zeros.",
        "text_feat(question, answer)",
    )
    .with_argument("question", "The question text.")
    .with_argument("answer", "The answer text.")
    .with_sql_example(
        "SELECT text_feat('What moves?', 'a red ball'); -- 16 doubles\n\
         SELECT qa_uid, text_feat(question, answer) FROM pool LIMIT 5;",
    )
    .build()
});

impl ScalarUDFImpl for TextFeat {
    fn name(&self) -> &str {
        "text_feat"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [q, a] = args.args.as_slice() else {
            return exec_err!("text_feat takes two arguments (question, answer), got {}", args.args.len());
        };
        let q = map_strings(&q.to_array(args.number_rows)?, self.name(), str::to_owned)?;
        let a = map_strings(&a.to_array(args.number_rows)?, self.name(), str::to_owned)?;
        let mut out = ListBuilder::new(Float64Builder::new());
        for (q, a) in q.iter().zip(&a) {
            if q.is_none() && a.is_none() {
                out.append(false);
                continue;
            }
            let v = text_feat_values(q.as_deref().unwrap_or(""), a.as_deref().unwrap_or(""));
            out.values().append_slice(&v);
            out.append(true);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_are_fixed_and_normalised() {
        // sha1("ball") = 6e6d0ab5..., first 8 bytes big-endian mod 16 = low nibble of byte 7.
        let digest = Sha1::digest(b"ball");
        assert_eq!(token_bin("ball"), (digest[7] & 0x0f) as usize);
        let v = text_feat_values("Ball ball", "");
        let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!((norm - 2.0 / (2.0 + 1e-6)).abs() < 1e-12, "{norm}");
        assert_eq!(v.iter().filter(|x| **x > 0.0).count(), 1);
        assert_eq!(text_feat_values("", ""), [0.0; 16]);
    }
}
