//! `frame_diversity(frames)`: one field of `media_descriptors`.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{Documentation, ScalarUDF};

use crate::common::DOC_SECTION_GDO;
use crate::media_descriptors::MediaField;

/// SQL function `frame_diversity`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
pub fn frame_diversity_udf(media: Arc<ScalarUDF>) -> MediaField {
    MediaField::new("frame_diversity", "frame_diversity", &DOC, media)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Frame diversity (GDO descriptor, docs/method.md): mean over consecutive pairs of up to 8 uniformly \
         resampled frames of mean(abs(g_t - g_{t-1}))/255 on 224x224 gray frames. Returns DOUBLE: 0 with at \
         most one readable frame; NULL when no frame is readable. The same as \
         media_descriptors(frames)['frame_diversity'].",
        "frame_diversity(frames)",
    )
    .with_argument("frames", "List of frame URIs (file://, s3://, gs://, az://) in time order.")
    .with_sql_example("SELECT qa_uid, frame_diversity(frames) FROM pool LIMIT 5;")
    .with_related_udf("media_descriptors")
    .build()
});
