//! `token_count(text)`: the method's token count.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Int64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::{DOC_SECTION_GDO, map_strings, single_array};

/// SQL function `token_count`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TokenCount {
    signature: Signature,
}

impl Default for TokenCount {
    fn default() -> Self {
        Self { signature: Signature::string(1, Volatility::Immutable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Number of [A-Za-z0-9_]+ tokens in the lower-cased text, as BIGINT (NULL gives NULL): GDO's token \
         count, behind q_len_bucket, a_len_bucket and the length terms of GDO's score.",
        "token_count(text)",
    )
    .with_argument("text", "Any string, typically question or answer.")
    .with_sql_example(
        "SELECT token_count('What happens next?'); -- 3\n\
         SELECT token_count(question) AS q, count(*) FROM pool GROUP BY q ORDER BY q;",
    )
    .with_related_udf("distinct_token_count")
    .build()
});

impl ScalarUDFImpl for TokenCount {
    fn name(&self) -> &str {
        "token_count"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = single_array(&args.args, args.number_rows, self.name())?;
        let values = map_strings(&array, self.name(), |t| crate::method::token_count(t) as i64)?;
        Ok(ColumnarValue::Array(Arc::new(Int64Array::from(values))))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
