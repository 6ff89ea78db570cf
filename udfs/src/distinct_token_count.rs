//! `distinct_token_count(text)`: how many different tokens a text uses.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{HashSet, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::{DOC_SECTION_GDO, map_strings, single_array};

/// SQL function `distinct_token_count`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DistinctTokenCount {
    signature: Signature,
}

impl Default for DistinctTokenCount {
    fn default() -> Self {
        Self { signature: Signature::string(1, Volatility::Immutable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Number of different [A-Za-z0-9_]+ tokens in the lower-cased text, as BIGINT (NULL gives NULL). \
         GDO's text quality term penalises answers whose distinct-token share, \
         distinct_token_count(answer) / token_count(answer), is below 0.55.",
        "distinct_token_count(text)",
    )
    .with_argument("text", "Any string, typically the answer.")
    .with_sql_example("SELECT distinct_token_count('the cat and the dog'); -- 4")
    .with_related_udf("token_count")
    .build()
});

impl ScalarUDFImpl for DistinctTokenCount {
    fn name(&self) -> &str {
        "distinct_token_count"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = single_array(&args.args, args.number_rows, self.name())?;
        let values = map_strings(&array, self.name(), distinct_tokens)?;
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(values))))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// Distinct tokens without allocating per token: borrow slices of the lower-cased text.
/// Splitting bytes equals splitting chars here: every byte of a non-ASCII char is a
/// separator. Only non-ASCII text needs Unicode lower-casing (it can yield ASCII
/// letters, e.g. the Kelvin sign); hashing uses DataFusion's fast default hasher.
fn distinct_tokens(text: &str) -> i64 {
    let lower: std::borrow::Cow<str> = if !text.is_ascii() {
        text.to_lowercase().into()
    } else if text.bytes().any(|b| b.is_ascii_uppercase()) {
        text.to_ascii_lowercase().into()
    } else {
        text.into()
    };
    let mut seen: HashSet<&[u8]> = HashSet::with_capacity(32);
    for tok in lower.as_bytes().split(|b| !(b.is_ascii_alphanumeric() || *b == b'_')) {
        if !tok.is_empty() {
            seen.insert(tok);
        }
    }
    seen.len() as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::datatypes::{Field, Int64Type};
    use datafusion::config::ConfigOptions;

    #[test]
    fn counts_distinct_lowercased_tokens() {
        let input = StringArray::from(vec![Some("The cat and the dog"), Some(""), None, Some("a A a_b")]);
        let f = DistinctTokenCount::default();
        let out = f
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![ColumnarValue::Array(Arc::new(input))],
                arg_fields: vec![Arc::new(Field::new("t", DataType::Utf8, true))],
                number_rows: 4,
                return_field: Arc::new(Field::new("r", DataType::Int64, true)),
                config_options: Arc::new(ConfigOptions::new()),
            })
            .unwrap()
            .to_array(4)
            .unwrap();
        let out = out.as_primitive::<Int64Type>();
        assert_eq!(out.value(0), 4);
        assert_eq!(out.value(1), 0);
        assert!(out.is_null(2));
        assert_eq!(out.value(3), 2);
    }

    #[test]
    fn agrees_with_the_spec_tokenizer_on_mixed_text() {
        for text in [
            "The cat and the dog",
            "Why does the ball roll? The BALL rolls: 3 times, then_stops.",
            "caf\u{e9} CAF\u{c9} cafe",
            "\u{212a}elvin kelvin KELVIN",
            "\u{3b1}\u{3b2}\u{3b3} 12 12 x_1 X_1",
            "",
            "   ",
        ] {
            let spec: std::collections::BTreeSet<String> = crate::method::tokens(text).into_iter().collect();
            assert_eq!(distinct_tokens(text), spec.len() as i64, "{text:?}");
        }
    }
}
