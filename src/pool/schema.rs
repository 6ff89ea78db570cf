//! The pool table's schema: one row per question-answer pair.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Columns of the pool table, in order. `docs/` and the README describe each.
pub static POOL_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let s = |name: &str| Field::new(name, DataType::Utf8, false);
    let i32f = |name: &str| Field::new(name, DataType::Int32, false);
    Arc::new(Schema::new(vec![
        // Position in the pool (image inputs first, then video, in file order): the
        // order the method's profile pass and first-seen tie-breaks depend on.
        Field::new("pool_index", DataType::Int64, false),
        s("qa_uid"),
        s("video_uid"),
        s("bucket"),
        s("question"),
        s("answer"),
        i32f("turn"),
        Field::new("frames", DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, false))), false),
        i32f("n_frames"),
        i32f("n_frames_raw"),
        s("data_source"),
        s("source_group"),
        s("duration_bucket"),
        s("temporal_category"),
        s("question_form"),
        s("q_len_bucket"),
        s("a_len_bucket"),
        s("stratum"),
        i32f("q_tokens"),
        i32f("a_tokens"),
        s("text_hash"),
        s("source_id"),
        s("source_file"),
        Field::new("source_line", DataType::Int64, false),
    ]))
});

/// The pool schema without `pool_index` (added when chunks are put in order).
pub static POOL_SCHEMA_UNINDEXED: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields: Vec<_> = POOL_SCHEMA.fields().iter().skip(1).cloned().collect();
    Arc::new(Schema::new(fields))
});

/// Columns of the `_rejects` side table: every input line ingest did not turn into pairs.
pub static REJECTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("source_file", DataType::Utf8, false),
        Field::new("source_line", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("detail", DataType::Utf8, false),
        Field::new("raw_prefix", DataType::Utf8, false),
    ]))
});
