//! `tnc_regex(question)`: temporal necessity by keyword rule.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Float64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::{DOC_SECTION_GDO, map_strings, single_array};
use crate::method::is_temporal_question;

/// SQL function `tnc_regex`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TncRegex {
    signature: Signature,
}

impl Default for TncRegex {
    fn default() -> Self {
        Self { signature: Signature::string(1, Volatility::Immutable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Temporal necessity (TNC) in the method's regex mode: 1.0 when the question contains a temporal \
         keyword (before, after, then, while, during, first, next, finally, sequence, later, earlier, \
         transition, happen; whole words, any case), else 0.0; NULL for a NULL question. Returns DOUBLE. It \
         is also the value the llm mode falls back to when the model fails.",
        "tnc_regex(question)",
    )
    .with_argument("question", "The normalised question text.")
    .with_sql_example(
        "SELECT tnc_regex('What happens after the jump?'); -- 1.0\n\
         SELECT qa_uid, tnc_regex(question) FROM pool WHERE bucket = 'short_video' LIMIT 5;",
    )
    .build()
});

impl ScalarUDFImpl for TncRegex {
    fn name(&self) -> &str {
        "tnc_regex"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = single_array(&args.args, args.number_rows, self.name())?;
        let values = map_strings(&array, self.name(), |q| if is_temporal_question(q) { 1.0 } else { 0.0 })?;
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(values))))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
