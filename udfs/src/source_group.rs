//! `source_group(data_source)`: the dataset family a pair comes from.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::{DOC_SECTION_GDO, map_strings, single_array};

/// SQL function `source_group`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SourceGroup {
    signature: Signature,
}

impl Default for SourceGroup {
    fn default() -> Self {
        Self { signature: Signature::string(1, Volatility::Immutable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "The source group used for GDO's source-group floors: of the name normalised as by gdo_norm, the \
         part before the first '(' (ai2d(cauldron,llava_format) -> ai2d), else the first four '_'-separated \
         parts (0_30_s_academic_v0_1 -> 0_30_s_academic), else the name itself; 'unknown' when empty. \
         Returns VARCHAR; NULL gives NULL.",
        "source_group(data_source)",
    )
    .with_argument("data_source", "The raw data_source string of a pair.")
    .with_sql_example(
        "SELECT source_group('0_30_s_academic_v0_1'); -- 0_30_s_academic\n\
         SELECT source_group(data_source) AS g, count(*) FROM pool GROUP BY g ORDER BY 2 DESC;",
    )
    .build()
});

impl ScalarUDFImpl for SourceGroup {
    fn name(&self) -> &str {
        "source_group"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = single_array(&args.args, args.number_rows, self.name())?;
        let values = map_strings(&array, self.name(), crate::method::source_group)?;
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(values))))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
