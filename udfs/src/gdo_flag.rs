//! `gdo_flag(name)`: read a boolean gdo session setting inside SQL.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::common::DOC_SECTION_GDO;
use crate::options::gdo_options;

/// SQL function `gdo_flag`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct GdoFlag {
    signature: Signature,
}

impl Default for GdoFlag {
    fn default() -> Self {
        // Stable: constant within one query, may change between queries (SET).
        Self { signature: Signature::string(1, Volatility::Stable) }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "The value of the boolean session setting `gdo.<name>` (`SET gdo.no_vds = true`), as BOOLEAN. GDO's \
         scoring query reads its ablation switches this way, so one SQL text serves the full score and every \
         ablation. An unknown name is an error.",
        "gdo_flag(name)",
    )
    .with_argument("name", "A string literal, one of no_vds, no_ppl, no_sc, no_vds3_budget.")
    .with_sql_example("SET gdo.no_vds = true;\nSELECT gdo_flag('no_vds'); -- true")
    .build()
});

impl ScalarUDFImpl for GdoFlag {
    fn name(&self) -> &str {
        "gdo_flag"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match args.args.as_slice() {
            [ColumnarValue::Scalar(s)] => match s.try_as_str() {
                Some(Some(name)) => name.to_string(),
                _ => return exec_err!("gdo_flag expects a string literal, got {s}"),
            },
            _ => return exec_err!("gdo_flag takes one string literal"),
        };
        let o = gdo_options(&args.config_options);
        let value = match name.as_str() {
            "no_vds" => o.no_vds,
            "no_ppl" => o.no_ppl,
            "no_sc" => o.no_sc,
            "no_vds3_budget" => o.no_vds3_budget,
            other => {
                return exec_err!("gdo_flag: unknown setting {other:?} (known: no_vds, no_ppl, no_sc, no_vds3_budget)");
            }
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Boolean(Some(value))))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
