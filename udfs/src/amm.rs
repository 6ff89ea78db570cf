//! `amm(frames)`: one field of `media_descriptors`.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{Documentation, ScalarUDF};

use crate::common::DOC_SECTION_GDO;
use crate::media_descriptors::MediaField;

/// SQL function `amm`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
pub fn amm_udf(media: Arc<ScalarUDF>) -> MediaField {
    MediaField::new("amm", "amm", &DOC, media)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Average motion magnitude (GDO descriptor, docs/method.md): mean over consecutive pairs of up to 8 \
         uniformly resampled frames of the mean Farneback flow magnitude, in pixels at 224x224 gray. Returns \
         DOUBLE: 0 with at most one readable frame (image pairs); NULL when no frame is readable. The same as \
         media_descriptors(frames)['amm'], computed once per row with the other frame descriptors.",
        "amm(frames)",
    )
    .with_argument("frames", "List of frame URIs (file://, s3://, gs://, az://) in time order.")
    .with_sql_example("SELECT qa_uid, amm(frames) FROM pool WHERE bucket = 'short_video' LIMIT 5;")
    .with_related_udf("media_descriptors")
    .build()
});
