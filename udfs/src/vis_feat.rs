//! `vis_feat(frames)`: one field of `media_descriptors`.

use std::sync::{Arc, LazyLock};

use datafusion::logical_expr::{Documentation, ScalarUDF};

use crate::common::DOC_SECTION_GDO;
use crate::media_descriptors::MediaField;

/// SQL function `vis_feat`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
pub fn vis_feat_udf(media: Arc<ScalarUDF>) -> MediaField {
    MediaField::new("vis_feat", "vis_feat", &DOC, media)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "Visual side feature (GDO descriptor, docs/method.md): per-channel mean and standard deviation of RGB \
         in [0,1] over all pixels of up to 6 uniformly resampled frames. Returns `LIST<DOUBLE>` of 6 values, \
         [mean_r, mean_g, mean_b, std_r, std_g, std_b]; six zeros for an empty list, NULL when no frame is \
         readable. The same as media_descriptors(frames)['vis_feat'].",
        "vis_feat(frames)",
    )
    .with_argument("frames", "List of frame URIs (file://, s3://, gs://, az://) in time order.")
    .with_sql_example("SELECT qa_uid, vis_feat(frames) FROM pool LIMIT 5;")
    .with_related_udf("media_descriptors")
    .build()
});
