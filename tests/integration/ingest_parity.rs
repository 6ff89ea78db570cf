//! Ingest of the reference pool matches the reference's counts exactly.

use std::collections::BTreeMap;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Int64Type;
use serde_json::Value;

use crate::common::{fixtures, ingest_reference_pool, last_commit, query};

/// The keys of `object_name` in the reference file in file order (serde_json's map
/// sorts keys; the reference wrote them in first-seen order).
fn keys_in_file_order(preset: &str, object_name: &str, keys: Vec<String>) -> Vec<String> {
    let raw = std::fs::read_to_string(fixtures().join(format!("gdo-reference/{preset}/report.json"))).unwrap();
    let start = raw.find(&format!("\"{object_name}\"")).expect("object present");
    let mut keyed: Vec<(usize, String)> =
        keys.into_iter().map(|k| (raw[start..].find(&format!("\"{k}\"")).expect("key present"), k)).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, k)| k).collect()
}

fn reference_report(preset: &str) -> Value {
    let path = fixtures().join(format!("gdo-reference/{preset}/report.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("report.json")).expect("valid json")
}

/// (key, count) pairs of a result with a string and an integer column, in result order.
fn pairs(batches: &[datafusion::arrow::record_batch::RecordBatch]) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let keys =
            datafusion::arrow::compute::cast(b.column(0), &datafusion::arrow::datatypes::DataType::Utf8).unwrap();
        let keys = keys.as_string::<i32>();
        let counts = b.column(1).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((keys.value(i).to_owned(), counts.value(i)));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_pool_pairs_rejects_and_strata() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    let report = ingest_reference_pool(&pool).await;

    assert_eq!(report.total_pairs, 18_358, "pairs");
    let expected: BTreeMap<String, u64> = [("invalid_json".to_owned(), 12), ("no_images".to_owned(), 16)].into();
    assert_eq!(report.rejected_by_reason, expected, "rejects by reason");
    assert_eq!(report.rows, 6_000 - 12 - 16 + 3_000);

    let reference = reference_report("minloss");
    let counts = reference["stratum_counts"].as_object().unwrap();
    let want_strata: Vec<(String, i64)> =
        keys_in_file_order("minloss", "stratum_counts", counts.keys().cloned().collect())
            .into_iter()
            .map(|k| (k.clone(), counts[&k].as_i64().unwrap()))
            .collect();
    assert_eq!(reference["num_strata"].as_u64().unwrap() as usize, want_strata.len());

    // The shipped audit query, in first-seen order (the reference's dict order).
    let got = query(&pool, gdo::queries::find("strata").unwrap().sql).await;
    let got: Vec<(String, i64)> = pairs(&got);
    let got_map: BTreeMap<&str, i64> = got.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let want_map: BTreeMap<&str, i64> = want_strata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let diff: Vec<String> = want_map
        .keys()
        .chain(got_map.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|k| got_map.get(*k) != want_map.get(*k))
        .take(10)
        .map(|k| format!("{k}: ours {:?}, reference {:?}", got_map.get(k), want_map.get(k)))
        .collect();
    assert!(diff.is_empty(), "stratum counts differ ({} vs {} strata), first: {diff:#?}", got.len(), want_strata.len());
    let order_diff = got.iter().zip(&want_strata).position(|(g, w)| g.0 != w.0);
    assert_eq!(order_diff, None, "first-seen order differs at position {order_diff:?}");

    // Every preset's report describes the same pool.
    for preset in ["diverse", "temp", "temp_plus"] {
        assert_eq!(reference_report(preset)["stratum_counts"], reference["stratum_counts"], "{preset}");
    }

    let buckets =
        pairs(&query(&pool, "SELECT bucket, count(*) FROM pool GROUP BY bucket ORDER BY min(pool_index)").await);
    let obj = reference["full_bucket_counts"].as_object().unwrap();
    let want: Vec<(String, i64)> = keys_in_file_order("minloss", "full_bucket_counts", obj.keys().cloned().collect())
        .into_iter()
        .map(|k| (k.clone(), obj[&k].as_i64().unwrap()))
        .collect();
    assert_eq!(buckets, want, "bucket counts");

    let sources = pairs(
        &query(&pool, "SELECT data_source, count(*) FROM pool GROUP BY data_source ORDER BY min(pool_index)").await,
    );
    let obj = reference["source_counts"].as_object().unwrap();
    let want: Vec<(String, i64)> = keys_in_file_order("minloss", "source_counts", obj.keys().cloned().collect())
        .into_iter()
        .map(|k| (k.clone(), obj[&k].as_i64().unwrap()))
        .collect();
    assert_eq!(sources, want, "raw data_source counts");

    let temporal = pairs(
        &query(&pool, "SELECT temporal_category, count(*) FROM pool WHERE bucket = 'short_video' GROUP BY 1 ORDER BY min(pool_index)").await,
    );
    let obj = reference["full_video_temporal_counts"].as_object().unwrap();
    let want: Vec<(String, i64)> =
        keys_in_file_order("minloss", "full_video_temporal_counts", obj.keys().cloned().collect())
            .into_iter()
            .map(|k| (k.clone(), obj[&k].as_i64().unwrap()))
            .collect();
    assert_eq!(temporal, want, "temporal categories among video pairs");
}

#[tokio::test(flavor = "multi_thread")]
async fn reference_pool_profile_shares_match() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let profile: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("gdo-reference/temp_plus/profile.json")).unwrap())
            .unwrap();
    let fields = profile.get("fields").unwrap_or(&profile);
    let mut checked = 0;
    for field in [
        "bucket",
        "duration_bucket",
        "temporal_category",
        "question_form",
        "q_len_bucket",
        "a_len_bucket",
        "source_group",
    ] {
        let Some(want) = fields.get(field).and_then(Value::as_object) else {
            panic!("profile.json has no field {field}: {}", &profile.to_string()[..200.min(profile.to_string().len())]);
        };
        let got = pairs(&query(&pool, &format!("SELECT {field}, count(*) FROM pool GROUP BY 1")).await);
        let total: i64 = got.iter().map(|(_, n)| n).sum();
        assert_eq!(got.len(), want.len(), "{field}: number of values");
        for (value, n) in got {
            let share = n as f64 / total as f64;
            let ref_share = want[&value].as_f64().unwrap();
            assert!((share - ref_share).abs() < 1e-12, "{field}={value}: {share} vs {ref_share}");
            checked += 1;
        }
    }
    assert!(checked > 30, "checked {checked} shares");
}

#[tokio::test(flavor = "multi_thread")]
async fn frames_are_resampled_with_the_reference_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    // Check every video pair's kept frames against an independent computation from the raw file.
    let batches = query(
        &pool,
        "SELECT source_line, n_frames, n_frames_raw, frames FROM pool WHERE bucket = 'short_video' AND turn = 0 ORDER BY pool_index",
    )
    .await;
    let raw = {
        use std::io::Read;
        let f = std::fs::File::open(fixtures().join("gdo-reference/pool/video.jsonl.gz")).unwrap();
        let mut s = String::new();
        flate2::read::MultiGzDecoder::new(f).read_to_string(&mut s).unwrap();
        s
    };
    let lines: Vec<&str> = raw.lines().collect();
    let mut checked = 0;
    for b in &batches {
        let line = b.column(0).as_primitive::<Int64Type>();
        let frames = b.column(3).as_list::<i32>();
        for i in 0..b.num_rows() {
            let row: Value = serde_json::from_str(lines[line.value(i) as usize - 1]).unwrap();
            let images: Vec<&str> = row["images"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
            let n = images.len();
            // Python: [round(i*(n-1)/(t-1)) for i in range(t)] with banker's rounding
            let want: Vec<&str> = if n <= 32 {
                images.clone()
            } else {
                (0..32)
                    .map(|k| {
                        let x = k as f64 * (n - 1) as f64 / 31.0;
                        let r = x.round_ties_even() as usize;
                        images[r]
                    })
                    .collect()
            };
            let got = frames.value(i);
            let got = got.as_string::<i32>();
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!(g.unwrap().ends_with(w), "{} vs {w}", g.unwrap());
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 3_000, "one check per video row");
}

#[tokio::test(flavor = "multi_thread")]
async fn same_input_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ingest_reference_pool(&a).await;
    ingest_reference_pool(&b).await;
    let read = |p: &std::path::Path| -> Value { last_commit(p) };
    let sums = |m: &Value| -> Vec<String> {
        m["files"].as_array().unwrap().iter().map(|f| f["sha256"].as_str().unwrap().to_owned()).collect()
    };
    let (ma, mb) = (read(&a), read(&b));
    assert_eq!(sums(&ma), sums(&mb), "identical Parquet bytes for identical input");
    assert_ne!(ma["run_id"], mb["run_id"]);
}
