//! `gdo_norm(text)`: the method's text normalisation.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::{DOC_SECTION_GDO, map_strings, single_array};

/// SQL function `gdo_norm`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GdoNorm {
    signature: Signature,
}

impl Default for GdoNorm {
    fn default() -> Self {
        Self { signature: Signature::string(1, Volatility::Immutable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "GDO's text normalisation: every run of whitespace (Python's notion, including U+001C..U+001F) \
         becomes one space, and the ends are trimmed. Returns VARCHAR; NULL gives NULL. Useful to find \
         near-duplicate texts that differ only in spacing.",
        "gdo_norm(text)",
    )
    .with_argument("text", "Any string.")
    .with_sql_example(
        "SELECT gdo_norm('  a \\t b  '); -- 'a b'\n\
         SELECT lower(gdo_norm(question)) AS q, count(*) FROM pool GROUP BY q HAVING count(*) > 1;",
    )
    .build()
});

impl ScalarUDFImpl for GdoNorm {
    fn name(&self) -> &str {
        "gdo_norm"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = single_array(&args.args, args.number_rows, self.name())?;
        let values = map_strings(&array, self.name(), crate::method::norm)?;
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(values))))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
