//! The schemas of gdo's tables, in one place: the pool (one row per question-answer
//! pair) and its rejects, descriptors, merged descriptors and the metrics selection
//! reads.

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

/// The descriptor fields: of a JSONL row (at the top, or under `data_quality_metrics`),
/// which needs at least one, absent ones read as the reference reads them; and, with
/// `qa_uid`, the columns a descriptor table must have (the contract's others are
/// optional).
pub const DESCRIPTOR_FIELDS: [&str; 10] = [
    "loss_video",
    "loss_blind",
    "vds",
    "ppl",
    "amm",
    "frame_diversity",
    "tnc_score",
    "self_consistency",
    "text_feat",
    "vis_feat",
];

/// The descriptor table contract (what `gdo describe` writes).
pub static DESCRIPTOR_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f64n = |n: &str| Field::new(n, DataType::Float64, true);
    let list = |n: &str| Field::new(n, DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))), true);
    Arc::new(Schema::new(vec![
        Field::new("qa_uid", DataType::Utf8, false),
        Field::new("video_uid", DataType::Utf8, true),
        Field::new("bucket", DataType::Utf8, true),
        f64n("loss_video"),
        f64n("loss_blind"),
        f64n("vds"),
        f64n("ppl"),
        f64n("amm"),
        f64n("frame_diversity"),
        f64n("tnc_score"),
        f64n("self_consistency"),
        list("text_feat"),
        list("vis_feat"),
        Field::new("n_frames", DataType::Int32, true),
        Field::new("question_len", DataType::Int32, true),
        Field::new("answer_len", DataType::Int32, true),
        Field::new("error", DataType::Utf8, true),
    ]))
});

/// Columns of the merged table.
pub static MERGED_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let f = |n: &str, nullable: bool| Field::new(n, DataType::Float64, nullable);
    Arc::new(Schema::new(vec![
        Field::new("qa_uid", DataType::Utf8, false),
        Field::new("video_uid", DataType::Utf8, false),
        f("loss_video", true),
        f("loss_blind", true),
        f("frame_diversity", false),
        f("vds", false),
        f("ppl", false),
        f("amm", false),
        f("tnc_score", false),
        f("self_consistency", false),
        Field::new("cluster_id", DataType::Int32, false),
        f("cluster_dist", false),
        f("cluster_score", false),
        f("cluster_hardness", false),
        f("quality_score", false),
    ]))
});

/// The metric columns selection reads, in order.
pub const METRIC_FIELDS: [&str; 5] = ["loss_video", "loss_blind", "frame_diversity", "vds", "quality_score"];

pub static METRICS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![Field::new("qa_uid", DataType::Utf8, false)];
    fields.extend(METRIC_FIELDS.iter().map(|f| Field::new(*f, DataType::Float64, true)));
    Arc::new(Schema::new(fields))
});
