//! Shared plumbing for the SQL functions: the doc section and string-argument access.

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{ColumnarValue, DocSection};

/// Every gdo function is documented under this section (`gdo sql --help-functions`).
pub const DOC_SECTION_GDO: DocSection = DocSection {
    include: true,
    label: "GDO functions",
    description: Some("Descriptors and stratification rules of the GDO method"),
};

/// Turn the function's only argument into an array of `number_rows` rows.
pub fn single_array(args: &[ColumnarValue], number_rows: usize, name: &str) -> Result<ArrayRef> {
    match args {
        [arg] => arg.to_array(number_rows),
        _ => exec_err!("{name} takes exactly one argument, got {}", args.len()),
    }
}

/// Apply `f` to every value of a string array (Utf8, LargeUtf8 or Utf8View), keeping nulls.
pub fn map_strings<T>(array: &ArrayRef, name: &str, mut f: impl FnMut(&str) -> T) -> Result<Vec<Option<T>>> {
    let out = match array.data_type() {
        DataType::Utf8 => array.as_string::<i32>().iter().map(|v| v.map(&mut f)).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(|v| v.map(&mut f)).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(|v| v.map(&mut f)).collect(),
        DataType::Null => (0..array.len()).map(|_| None).collect(),
        other => return exec_err!("{name} expects a string argument, got {other}"),
    };
    Ok(out)
}

/// A signature that takes any `n` arguments (the function checks and casts them
/// itself: frames come as List, LargeList or ListView of Utf8 or Utf8View) but names
/// `usual` as its argument types, so `SHOW FUNCTIONS` and `information_schema.parameters`
/// list the function (they list only signatures with example types, which `Any` has not).
pub fn any_listing(
    usual: Vec<DataType>,
    volatility: datafusion::logical_expr::Volatility,
) -> datafusion::logical_expr::Signature {
    use datafusion::logical_expr::{Signature, TypeSignature};
    let n = usual.len();
    Signature::one_of(vec![TypeSignature::Any(n), TypeSignature::Exact(usual)], volatility)
}

/// `List(Utf8)`: a row's frame URIs, as `SHOW FUNCTIONS` names the type of `frames`.
pub fn frames_type() -> DataType {
    DataType::List(std::sync::Arc::new(datafusion::arrow::datatypes::Field::new_list_field(DataType::Utf8, true)))
}
