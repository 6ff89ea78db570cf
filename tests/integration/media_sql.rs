//! The frame descriptor functions in SQL: same values as the kernel, decode once,
//! bad frames reported per row, frames from a bucket equal to local frames.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::Float64Type;
use gdo::pool::{IngestOptions, ingest};
use gdo::session::{new_context, register_table};
use gdo::sql::run_statements;
use gdo_udfs::method::uniform_indices;
use gdo_udfs::motion::{FLOW_FRAMES, motion_descriptors, prepare_gray};

use crate::common::{gdo, ingest_sample_pool, run_ok, sample_pool_session, video_row, write_lines};
use crate::s3::S3Server;

async fn sql(ctx: &datafusion::prelude::SessionContext, text: &str) -> Vec<RecordBatch> {
    run_statements(ctx, text).await.expect("query runs").pop().expect("a result").batches
}

/// AMM and frame diversity by calling the kernel directly on local frame files.
fn kernel(frames: &[String]) -> (f64, f64) {
    let gray: Vec<_> = uniform_indices(frames.len(), FLOW_FRAMES)
        .into_iter()
        .map(|i| {
            let path = url::Url::parse(&frames[i]).unwrap().to_file_path().unwrap();
            let img = image::open(path).unwrap().into_rgb8();
            prepare_gray(img.as_raw(), img.width() as usize, img.height() as usize)
        })
        .collect();
    motion_descriptors(&gray)
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_descriptors_equal_the_kernel_and_decode_each_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = sample_pool_session(dir.path()).await;
    // A fixed handful of video pairs and two image pairs (the filter runs before the projection).
    let picked = sql(&ctx, "SELECT qa_uid FROM pool WHERE bucket = 'short_video' ORDER BY qa_uid LIMIT 10").await;
    let mut uids = utf8(picked[0].column(0));
    let images = sql(&ctx, "SELECT qa_uid FROM pool WHERE bucket = 'image_qa' ORDER BY qa_uid LIMIT 2").await;
    uids.extend(utf8(images[0].column(0)));
    let list = uids.iter().map(|u| format!("'{u}'")).collect::<Vec<_>>().join(",");

    let before = gdo_udfs::media_decode_count(&ctx).unwrap();
    assert_eq!(before, 0);
    let batches = sql(
        &ctx,
        &format!(
            "SELECT qa_uid, frames, amm(frames) AS a, frame_diversity(frames) AS d, vis_feat(frames) AS v \
             FROM pool WHERE qa_uid IN ({list}) ORDER BY qa_uid"
        ),
    )
    .await;
    let decoded = gdo_udfs::media_decode_count(&ctx).unwrap();
    let mut expected_decodes = 0u64;
    let mut rows = 0;
    let mut moving = 0;
    for b in &batches {
        let frames = b.column(1).as_list::<i32>();
        let (a, d) = (b.column(2).as_primitive::<Float64Type>(), b.column(3).as_primitive::<Float64Type>());
        let v = b.column(4).as_list::<i32>();
        for r in 0..b.num_rows() {
            let f: Vec<String> = utf8(&frames.value(r));
            let mut needed: Vec<usize> =
                uniform_indices(f.len(), FLOW_FRAMES).into_iter().chain(uniform_indices(f.len(), 6)).collect();
            needed.sort_unstable();
            needed.dedup();
            expected_decodes += needed.len() as u64;
            let (ka, kd) = kernel(&f);
            assert_eq!((a.value(r), d.value(r)), (ka, kd), "row {r}: {f:?}");
            if f.len() == 1 {
                assert_eq!((ka, kd), (0.0, 0.0));
            } else if ka > 0.05 {
                moving += 1;
            }
            let vis = v.value(r);
            let vis = vis.as_primitive::<Float64Type>();
            assert_eq!(vis.len(), 6);
            assert!(vis.values().iter().all(|x| (0.0..=1.0).contains(x)), "{vis:?}");
            rows += 1;
        }
    }
    assert_eq!(rows, 12);
    assert!(moving >= 3, "the sample clips move: {moving} of 10 with amm > 0.05");
    println!("decoded {decoded} frames for 3 descriptors over {rows} rows (frames needed: {expected_decodes})");
    // Every needed frame was decoded. Decode-once across the three functions is NOT
    // reached yet (DataFusion 55 does not extract the shared media_descriptors call; see
    // the ignored EXPLAIN test): today this query decodes each frame once per function.
    assert!(decoded >= expected_decodes, "{decoded} < {expected_decodes}");
}

/// Frames decoded by the session's registered `media_descriptors` instance.
fn decodes(ctx: &datafusion::prelude::SessionContext) -> u64 {
    use datafusion::execution::FunctionRegistry as _;
    let udf = ctx.udf("media_descriptors").unwrap();
    let any: &dyn std::any::Any = udf.inner().as_ref();
    any.downcast_ref::<gdo_udfs::media_descriptors::MediaDescriptors>().unwrap().decode_count()
}

/// Decode once: the struct form (`media_descriptors(frames) AS m`, then `m['amm']`,
/// `m['frame_diversity']`, `m['vis_feat']`, as `queries/describe/cheap.sql` writes it)
/// plans one call and decodes exactly as many frames as asking for one field.
#[tokio::test(flavor = "multi_thread")]
async fn struct_projection_decodes_each_frame_once() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_sample_pool(&pool).await;
    let rows = "SELECT frames FROM pool WHERE bucket = 'short_video' ORDER BY pool_index LIMIT 12";
    let three = format!(
        "SELECT m['amm'] AS amm, m['frame_diversity'] AS fd, m['vis_feat'] AS vf \
         FROM (SELECT media_descriptors(frames) AS m FROM ({rows}))"
    );
    let one = format!("SELECT m['amm'] AS amm FROM (SELECT media_descriptors(frames) AS m FROM ({rows}))");
    let fresh = || async {
        let ctx = new_context();
        register_table(&ctx, "pool", &pool.display().to_string()).await.unwrap();
        ctx
    };

    let ctx = fresh().await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&sql(&ctx, &format!("EXPLAIN {three}")).await)
        .unwrap()
        .to_string();
    println!("{text}");
    let physical = text.split("physical_plan").nth(1).expect("a physical plan");
    assert_eq!(physical.matches("media_descriptors(").count(), 1, "one media_descriptors call:\n{text}");
    let b = sql(&ctx, &three).await;
    assert_eq!(b.iter().map(|b| b.num_rows()).sum::<usize>(), 12);
    let d3 = decodes(&ctx);

    let ctx = fresh().await;
    sql(&ctx, &one).await;
    let d1 = decodes(&ctx);
    let frames: i64 = {
        let ctx = fresh().await;
        let b = sql(&ctx, &format!("SELECT sum(array_length(frames)) AS n FROM ({rows})")).await;
        b[0].column(0).as_primitive::<datafusion::arrow::datatypes::UInt64Type>().value(0) as i64
    };
    println!("frames listed {frames}, decoded for one field {d1}, for three fields {d3}");
    assert!(d1 > 0 && d1 as i64 <= frames, "{d1} decodes for {frames} listed frames");
    assert_eq!(d3, d1, "three fields decode no more frames than one");
}

fn write_jpeg(path: &Path, shift: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(96, 64, |x, y| {
        let v = (((x + shift) / 8 + y / 8) % 2) as u8 * 200 + 20;
        image::Rgb([v, v / 2, 255 - v])
    });
    img.save(path).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_corrupt_frames_give_counts_and_errors_not_failures() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        write_jpeg(&dir.path().join(format!("frames/good/{i:03}.jpg")), i * 3);
        write_jpeg(&dir.path().join(format!("frames/mixed/{i:03}.jpg")), i * 3);
    }
    std::fs::remove_file(dir.path().join("frames/mixed/001.jpg")).unwrap();
    std::fs::write(dir.path().join("frames/mixed/002.jpg"), b"not a jpeg").unwrap();
    let jsonl = dir.path().join("video.jsonl");
    let rows = [
        video_row("a", "good", "What moves?", "the board", 4),
        video_row("b", "mixed", "What moves?", "the board", 4),
        video_row("c", "gone", "What moves?", "nothing", 3),
    ];
    write_lines(&jsonl, &rows.iter().map(String::as_str).collect::<Vec<_>>());
    let pool = dir.path().join("pool");
    let opts = IngestOptions {
        video: vec![jsonl.display().to_string()],
        out: pool.display().to_string(),
        ..IngestOptions::default()
    };
    ingest(&opts).await.unwrap();
    let ctx = new_context();
    register_table(&ctx, "pool", &pool.display().to_string()).await.unwrap();
    let b = sql(
        &ctx,
        "SELECT video_uid, amm(frames) AS a, m['n_frames_read'] AS n, m['frame_errors'] AS e, m['error'] AS err \
         FROM (SELECT *, media_descriptors(frames) AS m FROM pool) ORDER BY video_uid",
    )
    .await;
    let b = datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    let a = b.column(1).as_primitive::<Float64Type>();
    let n = b.column(2).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let e = b.column(3).as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let err = b.column(4).as_string::<i32>();
    // Rows in video_uid order: gone, good, mixed.
    // gone: nothing readable -> NULL amm and an error, and the query still succeeded.
    assert_eq!((n.value(0), e.value(0)), (0, 3));
    assert!(a.is_null(0));
    assert!(err.value(0).contains("3 of 3 frames unreadable"), "{}", err.value(0));
    // good: 4 frames read, no error, moving.
    assert_eq!((n.value(1), e.value(1)), (4, 0));
    assert!(err.is_null(1) && a.value(1) > 0.1, "{:?}", a.value(1));
    // mixed: 2 readable frames (0 and 3), one missing and one corrupt, reported by kind.
    assert_eq!((n.value(2), e.value(2)), (2, 2));
    let text = err.value(2);
    assert!(text.starts_with("2 of 4 frames unreadable"), "{text}");
    assert!(text.contains("frame_missing") && text.contains("mixed/001.jpg"), "{text}");
    assert!(text.contains("frame_undecodable") && text.contains("mixed/002.jpg"), "{text}");
    assert!(a.value(2) > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_in_a_bucket_equal_local_frames() {
    let server = S3Server::start();
    let store = server.store();
    let dir = tempfile::tempdir().unwrap();
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for i in 0..5u32 {
        let p = dir.path().join(format!("f{i}.jpg"));
        write_jpeg(&p, i * 4);
        let key = format!("frames/clip/f{i}.jpg");
        use object_store::ObjectStoreExt;
        store.put(&object_store::path::Path::from(key.as_str()), std::fs::read(&p).unwrap().into()).await.unwrap();
        local.push(format!("'{}'", url::Url::from_file_path(&p).unwrap()));
        remote.push(format!("'s3://{}/{key}'", crate::s3::BUCKET));
    }
    let q = |uris: &[String]| {
        format!(
            "SELECT amm(make_array({0})) AS a, frame_diversity(make_array({0})) AS d, vis_feat(make_array({0})) AS v",
            uris.join(",")
        )
    };
    let run = |sql: String| {
        let mut cmd = gdo();
        cmd.args(["sql", "--format", "json", &sql]);
        server.env(&mut cmd);
        cmd
    };
    let (mut l, mut r) = (run(q(&local)), run(q(&remote)));
    let lo = tokio::task::spawn_blocking(move || run_ok(&mut l)).await.unwrap();
    let ro = tokio::task::spawn_blocking(move || run_ok(&mut r)).await.unwrap();
    let (lo, ro) = (String::from_utf8_lossy(&lo.stdout).to_string(), String::from_utf8_lossy(&ro.stdout).to_string());
    println!("local: {lo}\nbucket: {ro}");
    assert!(lo.contains("\"a\":") && lo.contains("\"v\":[") && !lo.contains("null"), "{lo}");
    assert_eq!(lo, ro);
}

/// A string column (any string type) as owned strings.
fn utf8(col: &datafusion::arrow::array::ArrayRef) -> Vec<String> {
    let c = datafusion::arrow::compute::cast(col, &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
    c.as_string::<i32>().iter().flatten().map(str::to_owned).collect()
}

/// `SET gdo.motion_device = 'candle-cpu'` runs AMM and frame diversity through the candle
/// path (the one `cuda` uses) in SQL: same rows, AMM within 1e-3 of the tuned kernel,
/// frame diversity and vis_feat equal; an unknown device is a clear error.
#[tokio::test(flavor = "multi_thread")]
async fn motion_device_setting_switches_to_the_candle_path() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_sample_pool(&pool).await;
    // The rows are picked before the function runs: 10 video pairs and 2 image pairs.
    let query = "SELECT qa_uid, m['amm'] AS a, m['frame_diversity'] AS d, m['vis_feat'] AS v \
                 FROM (SELECT qa_uid, media_descriptors(frames) AS m FROM ( \
                   (SELECT * FROM pool WHERE bucket = 'short_video' ORDER BY qa_uid LIMIT 10) \
                   UNION ALL (SELECT * FROM pool WHERE bucket = 'image_qa' ORDER BY qa_uid LIMIT 2))) \
                 ORDER BY qa_uid";
    let run = |setting: Option<&'static str>| {
        let pool = pool.clone();
        async move {
            let ctx = new_context();
            register_table(&ctx, "pool", &pool.display().to_string()).await.unwrap();
            if let Some(s) = setting {
                sql_ok(&ctx, &format!("SET gdo.motion_device = '{s}'")).await;
            }
            let b = sql(&ctx, query).await;
            datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
        }
    };
    let (tuned, candle) = (run(None).await, run(Some("candle-cpu")).await);
    assert_eq!(tuned.num_rows(), 12);
    assert_eq!(utf8(tuned.column(0)), utf8(candle.column(0)));
    let (ta, ca) = (tuned.column(1).as_primitive::<Float64Type>(), candle.column(1).as_primitive::<Float64Type>());
    let mut moving = 0;
    for r in 0..tuned.num_rows() {
        let (t, c) = (ta.value(r), ca.value(r));
        assert!((t - c).abs() <= 1e-6 + 1e-3 * t, "row {r}: amm {c} (candle) vs {t} (tuned)");
        moving += (t > 0.05) as usize;
    }
    assert!(moving >= 3, "the sample has moving clips: {moving}");
    assert_eq!(tuned.column(2), candle.column(2), "frame diversity");
    assert_eq!(tuned.column(3), candle.column(3), "vis_feat");

    let ctx = new_context();
    register_table(&ctx, "pool", &pool.display().to_string()).await.unwrap();
    sql_ok(&ctx, "SET gdo.motion_device = 'tpu'").await;
    let err = match run_statements(&ctx, "SELECT amm(frames) FROM pool LIMIT 3").await {
        Ok(_) => panic!("an unknown motion device must fail the query"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("gdo.motion_device = 'tpu'") && err.contains("cuda:N"), "{err}");
}

async fn sql_ok(ctx: &datafusion::prelude::SessionContext, text: &str) {
    run_statements(ctx, text).await.expect("statement runs");
}
