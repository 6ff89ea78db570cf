//! Goal selection against the authors' reference outputs (`gdo-reference/<preset>/`),
//! plus the SQL face of the operators (EXPLAIN, goal files through `gdo sql`).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::common::{data_sums, fixtures, gdo, ingest_reference_pool, run_ok};
use gdo::select::run::{GoalSource, PAPER_GOALS, SelectJob, run_select};

fn gz_lines(path: &Path) -> Vec<String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("fixture opens"))
        .read_to_string(&mut text)
        .expect("fixture decompresses");
    text.lines().filter(|l| !l.trim().is_empty()).map(str::to_owned).collect()
}

/// A session with the reference pool (ingested into `dir/pool`) and its metrics.
async fn reference_session(dir: &Path) -> datafusion::prelude::SessionContext {
    let pool = dir.join("pool");
    ingest_reference_pool(&pool).await;
    let ctx = gdo::session::new_context();
    gdo::session::register_table(&ctx, "pool", &pool.display().to_string()).await.unwrap();
    gdo::select::metrics::load_metrics(&ctx, &[metrics_path()]).await.unwrap();
    ctx
}

fn metrics_path() -> String {
    fixtures().join("gdo-reference/pool/metrics.jsonl.gz").display().to_string()
}

fn job(pool: &Path, out: &Path, goals: &[&str]) -> SelectJob {
    SelectJob {
        pool: pool.display().to_string(),
        metrics: vec![metrics_path()],
        goals: goals.iter().map(|g| GoalSource::resolve(g).expect("shipped goal")).collect(),
        out: out.display().to_string(),
        per_goal_folders: true,
        settings: vec![],
        sft: gdo::select::sft_jsonl::SftOptions::default(),
        write_jsonl: true,
        exclude: vec![],
        exclude_mode: gdo::select::exclude::ExcludeMode::Both,
        memory_limit: None,
        cluster: None,
    }
}

fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("output jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid json line"))
        .collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_presets_match_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let out = dir.path().join("subsets");
    let outcomes = run_select(&job(&pool, &out, PAPER_GOALS)).await.expect("selection runs");
    assert_eq!(outcomes.len(), 4);
    for o in &outcomes {
        let g = o.goal.as_str();
        let refdir = fixtures().join("gdo-reference").join(g);
        let reference: Value = serde_json::from_slice(&std::fs::read(refdir.join("report.json")).unwrap()).unwrap();
        let ours = &o.report;
        let meta = &reference["meta"];
        assert_eq!(ours["total_pairs"], meta["total_pairs"], "{g}: total pairs");
        assert_eq!(ours["target_count"], meta["target_count"], "{g}: target count");
        assert_eq!(ours["uni_target_count"], meta["random_target_count"], "{g}: Uni-10x target");
        assert_eq!(ours["uni_count"], meta["random_target_count"], "{g}: Uni-10x size");
        // Budget derivation: every number the reference reports.
        for (k, v) in meta["budget_info"].as_object().unwrap() {
            if k == "vds3_adjustment" {
                for (k2, v2) in v.as_object().unwrap() {
                    let ours_v = &ours["budget"][k][k2];
                    match (ours_v.as_f64(), v2.as_f64()) {
                        (Some(a), Some(b)) => assert!(close(a, b, 1e-12), "{g}: vds3_adjustment.{k2} {a} vs {b}"),
                        _ => assert_eq!(ours_v, v2, "{g}: vds3_adjustment.{k2}"),
                    }
                }
                continue;
            }
            match (ours["budget"][k].as_f64(), v.as_f64()) {
                (Some(a), Some(b)) => assert!(close(a, b, 1e-12), "{g}: budget.{k} {a} vs {b}"),
                _ => assert_eq!(&ours["budget"][k], v, "{g}: budget.{k}"),
            }
        }
        assert_eq!(ours["bucket_quotas"], reference["bucket_quotas"], "{g}: bucket quotas");
        assert_eq!(ours["num_strata"], reference["num_strata"], "{g}: strata");
        let hard = reference["hard_constraints"].as_object().unwrap();
        for (k, v) in hard {
            match k.as_str() {
                "selection_stage_counts" => {
                    // The reference lists the stages that took pairs.
                    let taken: serde_json::Map<String, Value> = ours["stage_counts"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(_, c)| c.as_u64() != Some(0))
                        .map(|(s, c)| (s.clone(), c.clone()))
                        .collect();
                    assert_eq!(&Value::Object(taken), v, "{g}: stage counts");
                }
                "unmet_constraints" => assert_eq!(&ours["unmet"], v, "{g}: unmet floors"),
                "selected_source_group_counts_top20" => {}
                _ => match (ours["constraints"][k].as_f64(), v.as_f64()) {
                    (Some(a), Some(b)) => assert!(close(a, b, 1e-12), "{g}: constraint {k} {a} vs {b}"),
                    _ => assert_eq!(&ours["constraints"][k], v, "{g}: constraint {k}"),
                },
            }
        }
        // Per-field JS divergence of the subset against the pool.
        for (field, v) in reference["filtered"]["js_to_full_profile"].as_object().unwrap() {
            let a = ours["js_divergence"]["gdo_1x"][field].as_f64().unwrap();
            assert!((a - v.as_f64().unwrap()).abs() < 1e-9, "{g}: js {field}");
        }
        // The selected rows: scores and their parts, and the shared qa_uids.
        let ref_rows: Vec<Value> =
            gz_lines(&refdir.join("gdo_1x.jsonl.gz")).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        let ours_rows = read_jsonl(&Path::new(&o.folder).join("gdo_1x.jsonl"));
        let by_uid: HashMap<&str, &Value> = ours_rows.iter().map(|r| (r["id"].as_str().unwrap(), r)).collect();
        let mut shared = 0;
        for r in &ref_rows {
            let Some(ours_row) = by_uid.get(r["qa_uid"].as_str().unwrap()) else { continue };
            shared += 1;
            let m = &ours_row["meta"];
            let d = &r["meta"]["filter_score_detail"];
            for (ours_k, ref_v) in [
                ("score", &r["meta"]["filter_score"]),
                ("base_score", &d["base_score"]),
                ("vds3", &d["legacy_vds3"]),
                ("metric_quality", &d["legacy_quality_score"]),
            ] {
                let (a, b) = (m[ours_k].as_f64().unwrap(), ref_v.as_f64().unwrap());
                assert!((a - b).abs() <= 1e-9, "{g}: {} {ours_k} {a} vs {b}", r["qa_uid"]);
            }
        }
        let share = shared as f64 / ref_rows.len() as f64;
        let same_order = ref_rows.iter().map(|r| r["qa_uid"].clone()).collect::<Vec<_>>()
            == ours_rows.iter().map(|r| r["id"].clone()).collect::<Vec<_>>();
        println!(
            "{g}: {shared}/{} reference qa_uids selected ({:.1}%), same order: {same_order}",
            ref_rows.len(),
            share * 100.0
        );
        assert!(share >= 0.97, "{g}: only {shared} of {} reference pairs selected", ref_rows.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_baseline_follows_the_dedup_rules_and_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let a = run_select(&job(&pool, &dir.path().join("a"), &["temp_plus"])).await.unwrap();
    let b = run_select(&job(&pool, &dir.path().join("b"), &["temp_plus"])).await.unwrap();
    for table in ["gdo_1x", "uni_10x"] {
        let (x, y) = (data_sums(&Path::new(&a[0].folder).join(table)), data_sums(&Path::new(&b[0].folder).join(table)));
        assert!(!x.is_empty() && x == y, "{table} differs between two runs with the same seed");
    }
    for file in ["gdo_1x.jsonl", "uni_10x.jsonl"] {
        let x = std::fs::read(Path::new(&a[0].folder).join(file)).unwrap();
        let y = std::fs::read(Path::new(&b[0].folder).join(file)).unwrap();
        assert!(x == y, "{file} differs between two runs with the same seed");
    }
    // Metrics as Parquet (the shape `gdo merge` writes) select the same pairs.
    let parquet = dir.path().join("metrics.parquet");
    run_ok(
        gdo()
            .args(["sql", "SELECT * FROM metrics", "--metrics", &metrics_path(), "--format", "parquet", "--out"])
            .arg(&parquet),
    );
    let mut from_parquet = job(&pool, &dir.path().join("pq"), &["temp_plus"]);
    from_parquet.metrics = vec![parquet.display().to_string()];
    let p = run_select(&from_parquet).await.unwrap();
    for file in ["gdo_1x.jsonl", "uni_10x.jsonl"] {
        let x = std::fs::read(Path::new(&a[0].folder).join(file)).unwrap();
        let y = std::fs::read(Path::new(&p[0].folder).join(file)).unwrap();
        assert!(x == y, "{file}: Parquet metrics select differently from the same metrics as JSONL");
    }
    let uni = read_jsonl(&Path::new(&a[0].folder).join("uni_10x.jsonl"));
    assert_eq!(uni.len(), 3300);
    let mut uids = HashSet::new();
    let mut per_video: HashMap<String, u32> = HashMap::new();
    for r in &uni {
        assert!(uids.insert(r["id"].as_str().unwrap().to_string()), "duplicate qa_uid in Uni-10x");
        let v = r["meta"]["video_uid"].as_str().unwrap();
        if !v.is_empty() {
            *per_video.entry(v.to_string()).or_default() += 1;
        }
        // SFT layout: one <image> per frame before the question.
        let n = r["images"].as_array().unwrap().len();
        let prompt = r["messages"][0]["content"].as_str().unwrap();
        assert_eq!(prompt.matches("<image>").count(), n);
        assert!(n <= 32);
    }
    assert!(per_video.values().all(|&c| c <= 8), "per-video cap broken: {:?}", per_video.values().max());
    // A different seed draws a different baseline.
    let mut other = job(&pool, &dir.path().join("c"), &["temp_plus"]);
    other.settings = vec![("seed".into(), "7".into())];
    let c = run_select(&other).await.unwrap();
    let uni_c = read_jsonl(&Path::new(&c[0].folder).join("uni_10x.jsonl"));
    let shared = uni_c.iter().filter(|r| uids.contains(r["id"].as_str().unwrap())).count();
    assert!(shared < uni.len(), "seed 7 drew the same baseline as seed 42");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goal_files_run_through_sql_and_explain_shows_the_operators() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let p = pool.display().to_string();
    let goal = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/goals/temp_plus.sql");
    let out = run_ok(
        gdo().args(["sql", "--pool", &p, "--metrics", &metrics_path(), "--format", "json", "--file"]).arg(&goal),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let sql_uids: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["qa_uid"].as_str().unwrap().to_string())
        .collect();
    let reference: Vec<String> = gz_lines(&fixtures().join("gdo-reference/temp_plus/gdo_1x.jsonl.gz"))
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["qa_uid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sql_uids.len(), 330);
    assert_eq!(sql_uids.iter().collect::<HashSet<_>>(), reference.iter().collect::<HashSet<_>>());

    let explain = run_ok(gdo().args([
        "sql",
        "EXPLAIN SELECT * FROM uni_sample('gdo_scored', named_struct('count', 100, 'seed', 9)) \
         UNION ALL SELECT pool_index, qa_uid, selection_order, stage, score, base_score, vds3, metric_quality \
         FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3', named_struct('goal', 'x', 'min_count', 5, \
         'max_count', 50, 'min_ratio', 0.001, 'max_ratio', 0.01, 'strata_mult', 1.0, 'coverage_mass', 0.9, \
         'tail_target', 1.0, 'vds3_target_positive', 10, 'vds3_threshold', 0.0, 'vds3_max_mult', 1.0, \
         'min_video_ratio', 0.2, 'max_video_ratio', 0.6, 'min_temporal_in_video_ratio', 0.1, \
         'temporal_categories', 'Temporal', 'oversample', 1.1, 'video_oversample', 1.2, 'temporal_oversample', 1.3, \
         'source_group_floor_topk', 3, 'min_source_group_ratio', 0.01, 'source_group_floor_frac_of_expected', 0.3, \
         'seed', 123))",
        "--pool",
        &p,
        "--metrics",
        &metrics_path(),
    ]));
    let plan = String::from_utf8(out_text(explain)).unwrap();
    assert!(plan.contains("GoalSelect: goal=x, seed=123"), "{plan}");
    assert!(plan.contains("GoalSelectExec: goal=x, seed=123"), "{plan}");
    assert!(plan.contains("\"temporal_oversample\":1.3"), "{plan}");
    assert!(plan.contains("UniSample: count=100, seed=9"), "{plan}");
    assert!(plan.contains("UniSampleExec: count=100, seed=9"), "{plan}");

    // The operators' row bounds (max_count, count) let the join that brings back full
    // rows build on the subset: the pool streams through instead of being
    // hash-repartitioned on pool_index.
    let explain = run_ok(
        gdo()
            .args(["sql", "--pool", &p, "--metrics", &metrics_path()])
            .arg(format!("EXPLAIN {}", std::fs::read_to_string(&goal).unwrap())),
    );
    let plan = String::from_utf8(out_text(explain)).unwrap();
    // The logical plan marks the shipped query (the physical one is the query's own).
    assert!(plan.contains("ShippedGoalQuery: pool rows of the goal_select pairs in selection order"), "{plan}");
    let join =
        plan.lines().find(|l| l.contains("HashJoinExec") && l.contains("on=[(pool_index@")).expect("the full-row join");
    assert!(join.contains("mode=CollectLeft"), "{join}");
    assert!(!plan.contains("Hash([pool_index@"), "{plan}");
}

fn out_text(o: std::process::Output) -> Vec<u8> {
    o.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balanced_goal_tracks_source_groups_closer_than_temp_plus() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let o = run_select(&job(&pool, &dir.path().join("s"), &["temp_plus", "balanced"])).await.unwrap();
    let js = |i: usize| o[i].report["js_divergence"]["gdo_1x"]["source_group"].as_f64().unwrap();
    let floors = |i: usize| o[i].report["constraints"]["source_group_floor_requirements"].as_object().unwrap().len();
    println!("source_group JS: temp_plus {:.5}, balanced {:.5}; floors {} vs {}", js(0), js(1), floors(0), floors(1));
    assert!(floors(1) > floors(0), "balanced should floor more source groups");
    assert!(js(1) < js(0), "balanced's source mix should be closer to the pool's");
    // Same temporal focus as Temp+.
    assert_eq!(o[0].report["constraints"]["min_video_count"], o[1].report["constraints"]["min_video_count"]);
}

#[test]
fn bad_selection_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    tokio::runtime::Runtime::new().unwrap().block_on(ingest_reference_pool(&pool));
    let p = pool.display().to_string();
    let out = dir.path().join("o").display().to_string();
    let fail = |args: &[&str]| {
        let o = gdo().args(args).output().unwrap();
        assert!(!o.status.success(), "{args:?} should fail");
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    let err = fail(&["select", "--pool", &p, "--metrics", "/nope/metrics.jsonl", "--goal", "temp_plus", "--out", &out]);
    assert!(err.contains("/nope/metrics.jsonl"), "{err}");
    let err = fail(&["select", "--pool", &p, "--metrics", &metrics_path(), "--goal", "temp_pluss", "--out", &out]);
    assert!(err.contains("Did you mean temp_plus?"), "{err}");
    // A goal file with a typo in a parameter name.
    let typo = dir.path().join("typo.sql");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/goals/temp.sql")).unwrap();
    std::fs::write(&typo, text.replace("'oversample'", "'oversampel'")).unwrap();
    let err =
        fail(&["select", "--pool", &p, "--metrics", &metrics_path(), "--goal", typo.to_str().unwrap(), "--out", &out]);
    assert!(err.contains("unknown parameter \"oversampel\" (did you mean oversample?)"), "{err}");
    // A goal file that does not select.
    let plain = dir.path().join("plain.sql");
    std::fs::write(&plain, "SELECT 1 AS x").unwrap();
    let err =
        fail(&["select", "--pool", &p, "--metrics", &metrics_path(), "--goal", plain.to_str().unwrap(), "--out", &out]);
    assert!(err.contains("does not run goal_select"), "{err}");

    // Messy metrics: duplicates (later wins), NaN, a broken line, unknown qa_uids.
    let messy = dir.path().join("messy.jsonl");
    std::fs::write(
        &messy,
        concat!(
            "{\"qa_uid\": \"ov::ov-0::t0\", \"loss_video\": 1.0, \"loss_blind\": 2.0, \"frame_diversity\": 0.1, \"vds\": 1.0, \"quality_score\": 0.5}\n",
            "{\"qa_uid\": \"ov::ov-0::t0\", \"loss_video\": 1.5, \"loss_blind\": 2.0, \"frame_diversity\": 0.1, \"vds\": 0.5, \"quality_score\": 0.4}\n",
            "{\"qa_uid\": \"ov::ov-1::t0\", \"loss_video\": NaN, \"loss_blind\": 2.0, \"frame_diversity\": 0.1, \"vds\": 0.5, \"quality_score\": 0.4}\n",
            "{\"qa_uid\": \"no-such-pair\", \"loss_video\": 1.0, \"vds\": 0.2}\n",
            "{broken\n",
        ),
    )
    .unwrap();
    let o2 = dir.path().join("o2");
    run_ok(
        gdo()
            .args([
                "select",
                "--pool",
                &p,
                "--metrics",
                messy.to_str().unwrap(),
                "--goal",
                "minloss",
                "--count",
                "50000",
            ])
            .arg("--out")
            .arg(&o2),
    );
    let report: Value = serde_json::from_slice(&std::fs::read(o2.join("report.json")).unwrap()).unwrap();
    let m = &report["metrics"];
    assert_eq!(m["report"]["duplicates"], 1);
    assert_eq!(m["report"]["bad_rows"]["invalid_json"], 1);
    assert_eq!(m["report"]["non_finite"]["loss_video"], 1);
    assert_eq!(m["unknown_qa_uids"], 1);
    assert_eq!(m["pool_pairs_with_metrics"], 2);
    // A count above the pool is capped at the pool, and said so.
    assert_eq!(report["target_count"], 18358);
    assert_eq!(report["budget"]["requested_count"], 50000);
    // The video cap (32% for MinLoss) and the dedup rules leave it short: reported.
    let selected = report["selected_count"].as_u64().unwrap();
    assert!(selected < 18358);
    assert_eq!(report["unmet"]["target_count"].as_u64().unwrap(), 18358 - selected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusion_list_removes_pairs_before_selection() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    // Take the reference's first three Temp+ picks as "benchmark questions".
    let picks: Vec<Value> = gz_lines(&fixtures().join("gdo-reference/temp_plus/gdo_1x.jsonl.gz"))
        .iter()
        .take(3)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let list = dir.path().join("bench.jsonl");
    let mut text = String::new();
    for p in &picks {
        // Extra whitespace: matching is on normalised text.
        text.push_str(
            &serde_json::json!({"question": format!("  {}  ", p["question"].as_str().unwrap()), "answer": p["answer"]})
                .to_string(),
        );
        text.push('\n');
    }
    text.push_str("not json\n");
    std::fs::write(&list, text).unwrap();
    let mut j = job(&pool, &dir.path().join("s"), &["temp_plus"]);
    j.exclude = vec![list.display().to_string()];
    let o = run_select(&j).await.unwrap();
    let r = &o[0].report;
    let ex = &r["exclusion"];
    assert_eq!(ex["rows_seen"], 4);
    assert_eq!(ex["rows_bad"], 1);
    let removed = ex["excluded"].as_u64().unwrap();
    assert!(removed >= 3, "each benchmark question matches at least its own pair");
    assert_eq!(r["total_pairs"].as_u64().unwrap(), 18358 - removed);
    let rows = read_jsonl(&Path::new(&o[0].folder).join("gdo_1x.jsonl"));
    let picked: HashSet<&str> = picks.iter().map(|p| p["qa_uid"].as_str().unwrap()).collect();
    assert!(rows.iter().all(|r| !picked.contains(r["id"].as_str().unwrap())), "an excluded pair was selected");
    let uni = read_jsonl(&Path::new(&o[0].folder).join("uni_10x.jsonl"));
    assert!(uni.iter().all(|r| !picked.contains(r["id"].as_str().unwrap())), "an excluded pair entered Uni-10x");
}

/// Metrics read from a folder of Parquet files: file order decides which duplicate wins,
/// and the metric statistics (means and standard deviations behind every z-score) are
/// the same bits on every load. Both once depended on which partition finished first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_metrics_load_in_file_order_with_stable_statistics() {
    use std::sync::Arc;

    use datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
    use datafusion::parquet::arrow::ArrowWriter;
    use gdo::schema::METRICS_SCHEMA;
    use gdo::select::metrics::load_metrics;

    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("metrics");
    std::fs::create_dir(&folder).unwrap();
    for (file, dup_loss) in [("part-a.parquet", 1.0), ("part-b.parquet", 2.0)] {
        let n = 30_000;
        let mut uids: Vec<String> = (0..n).map(|i| format!("{file}-{i}")).collect();
        uids[n / 2] = "dup".into();
        // Values with many significant bits, so a different summation order shows.
        let v =
            |k: f64| (0..n).map(|i| Some(((i as f64 + k) * 0.7390851332151607).sin() + 1.5)).collect::<Float64Array>();
        let mut lv = v(0.1).values().to_vec();
        lv[n / 2] = dup_loss;
        let columns: Vec<Arc<dyn datafusion::arrow::array::Array>> = vec![
            Arc::new(StringArray::from(uids)),
            Arc::new(Float64Array::from(lv)),
            Arc::new(v(0.2)),
            Arc::new(v(0.3)),
            Arc::new(v(0.4)),
            Arc::new(v(0.5)),
        ];
        let batch = RecordBatch::try_new(Arc::clone(&METRICS_SCHEMA), columns).unwrap();
        let props = datafusion::parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(4096))
            .build();
        let mut w =
            ArrowWriter::try_new(std::fs::File::create(folder.join(file)).unwrap(), batch.schema(), Some(props))
                .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let ctx = gdo::session::new_context();
        // As on a machine with 8 cores: partial aggregates from 8 partitions.
        ctx.sql("SET datafusion.execution.target_partitions = 8").await.unwrap().collect().await.unwrap();
        gdo::session::register_table(&ctx, "pool", &pool.display().to_string()).await.unwrap();
        let report = load_metrics(&ctx, &[folder.display().to_string()]).await.unwrap();
        assert_eq!((report.loaded, report.duplicates), (59_999, 1));
        gdo::session::create_score_views(&ctx).await.unwrap();
        let b = ctx
            .sql("SELECT (SELECT loss_video FROM metrics WHERE qa_uid = 'dup') AS dup, * FROM gdo_metric_stats")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let row: Vec<u64> = b[0]
            .columns()
            .iter()
            .map(|c| c.as_any().downcast_ref::<Float64Array>().unwrap().value(0).to_bits())
            .collect();
        assert_eq!(f64::from_bits(row[0]), 2.0, "the later file's duplicate wins");
        seen.push(row);
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "statistics differ between loads: {seen:?}");
}

/// `gdo select` fetches the shipped goal query's full rows in the same pool scan as the
/// Uni-10x rows; a goal query it does not recognise runs as written. Both must give
/// the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_full_row_scan_equals_the_goal_query_run_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/goals/temp_plus.sql")).unwrap();
    // Same rows, but no longer the shipped text: runs through DataFusion as written.
    let written = dir.path().join("temp_plus_asc.sql");
    std::fs::write(&written, shipped.replace("ORDER BY g.selection_order", "ORDER BY g.selection_order ASC")).unwrap();
    let fast = dir.path().join("fast");
    let slow = dir.path().join("slow");
    run_select(&job(&pool, &fast, &["temp_plus"])).await.unwrap();
    let mut as_written = job(&pool, &slow, &[]);
    as_written.goals = vec![GoalSource::resolve(&written.display().to_string()).unwrap()];
    run_select(&as_written).await.unwrap();
    for table in ["gdo_1x", "uni_10x"] {
        let (a, b) =
            (data_sums(&fast.join("temp_plus").join(table)), data_sums(&slow.join("temp_plus_asc").join(table)));
        assert!(!a.is_empty() && a == b, "{table} differs");
    }
    for file in ["gdo_1x.jsonl", "uni_10x.jsonl"] {
        let a = std::fs::read(fast.join("temp_plus").join(file)).unwrap();
        let b = std::fs::read(slow.join("temp_plus_asc").join(file)).unwrap();
        assert!(!a.is_empty() && a == b, "{file} differs");
    }
}

/// The kept `gdo_scored` is planned as `score.sql` writes it: each scoring join builds
/// its hash table on the small side (the source and stratum lookups, the metrics) and
/// the pool streams through. Left to its join estimates, DataFusion built the metrics
/// join on the whole scored pool, in one piece, on one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_scoring_view_builds_its_joins_on_the_lookups_and_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = reference_session(dir.path()).await;
    // As `gdo select` keeps them, all but gdo_scored itself (whose plan is checked).
    let kept = ["gdo_strata", "gdo_stratum_alignment", "gdo_source_prior", "gdo_metric_vds3"];
    assert!(gdo::session::create_score_views_keeping(&ctx, &kept).await.unwrap());
    let df = gdo::session::as_written(ctx.table("gdo_scored").await.unwrap());
    let plan = df.create_physical_plan().await.unwrap();
    let text = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
    for key in ["qa_uid", "stratum", "data_source"] {
        let join = text
            .lines()
            .find(|l| l.contains("HashJoinExec") && l.contains(&format!("on=[({key}@")))
            .unwrap_or_else(|| panic!("no join on {key}:\n{text}"));
        // Right join, built on the left: the lookup or the metrics, never the pool.
        assert!(join.contains("mode=CollectLeft") && join.contains("join_type=Right"), "{join}\n{text}");
    }
    assert!(!text.contains("Hash([qa_uid@"), "the pool is not repartitioned:\n{text}");
}

/// `gdo select` draws Uni-10x from the reservoir its goal pass filled; the shipped
/// `queries/select/uni_10x.sql` (the `uni_sample` operator, its own pass) must give the
/// same pairs in the same order for the same seed, size and per-video cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uni_from_the_goal_reservoir_equals_the_uni_sample_operator() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    for (goal, seed) in [("temp_plus", "42"), ("diverse", "7")] {
        let mut j = job(&pool, &dir.path().join(goal), &[goal]);
        j.settings = vec![("seed".into(), seed.into())];
        let out = run_select(&j).await.unwrap();
        let report = &out[0].report;
        let from_select: Vec<String> = read_jsonl(&Path::new(&out[0].folder).join("uni_10x.jsonl"))
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(from_select.len() as u64, report["uni_target_count"].as_u64().unwrap());

        let s = gdo::select::run::open_scored_session(
            &pool.display().to_string(),
            &[metrics_path()],
            &[("seed".into(), seed.into())],
            &[],
            gdo::select::exclude::ExcludeMode::Both,
            1,
            None,
        )
        .await
        .unwrap();
        for (k, v) in [
            ("uni_count", report["uni_target_count"].to_string()),
            ("max_qa_per_video", report["params"]["max_qa_per_video"].to_string()),
        ] {
            s.ctx.sql(&format!("SET gdo.{k} = '{v}'")).await.unwrap().collect().await.unwrap();
        }
        let batches = s.ctx.sql(gdo::select::run::UNI_SQL).await.unwrap().collect().await.unwrap();
        let mut from_sql = Vec::new();
        for b in &batches {
            let u = gdo::ops::common::strings(b, "qa_uid").unwrap();
            from_sql.extend((0..b.num_rows()).map(|i| gdo::ops::common::str_at(&u, i).to_string()));
        }
        assert_eq!(from_select, from_sql, "{goal}: Uni-10x differs between gdo select and uni_10x.sql");
    }
}

/// The shipped goal queries are recognised in the logical plan, not by their text: every
/// shipped goal file is marked for `gdo select`'s shared pool scan, whatever its layout
/// and aliases; an edit that changes (or may change) the rows is not, and runs as
/// written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_goal_queries_are_recognised_in_the_plan_and_edited_ones_are_not() {
    use gdo::ops::shipped_goal::shipped_goal_selection;
    use gdo::select::run::GOALS;

    let dir = tempfile::tempdir().unwrap();
    let ctx = reference_session(dir.path()).await;
    gdo::session::create_score_views(&ctx).await.unwrap();
    let marked = |sql: String| {
        let ctx = ctx.clone();
        async move {
            let state = ctx.state();
            let plan = state.create_logical_plan(&sql).await.unwrap();
            shipped_goal_selection(&state.optimize(&plan).unwrap()).is_some()
        }
    };
    for (name, sql) in GOALS {
        assert!(marked(sql.to_string()).await, "{name} is not recognised");
    }
    let shipped = GOALS.iter().find(|(n, _)| *n == "temp_plus").map(|(_, s)| *s).unwrap();
    for (from, to) in [
        ("ORDER BY g.selection_order", "ORDER BY g.selection_order DESC"),
        ("ORDER BY g.selection_order", "WHERE p.bucket = 'image_qa' ORDER BY g.selection_order"),
        ("JOIN pool p", "LEFT JOIN pool p"),
        ("SELECT p.*,", "SELECT p.qa_uid,"),
        ("g.stage, g.selection_order", "g.selection_order, g.stage"),
        ("ORDER BY g.selection_order", "ORDER BY g.selection_order LIMIT 10"),
        ("ON p.pool_index = g.pool_index", "ON p.pool_index = g.pool_index + 1"),
    ] {
        assert!(shipped.contains(from), "{from}");
        assert!(!marked(shipped.replace(from, to)).await, "{to}");
    }
    // Layout, comments, aliases and the side of the `=` do not matter.
    let relaid = shipped
        .replace("\nJOIN pool p", "\n  -- the full rows\n  JOIN   pool AS q")
        .replace("p.", "q.")
        .replace("ON q.pool_index = g.pool_index", "ON g.pool_index = q.pool_index");
    assert!(marked(relaid).await);
}

/// `EXPLAIN ANALYZE` of a shipped goal query shows what the operators counted, and
/// `gdo select`'s report (read from the same metrics) agrees with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_analyze_shows_the_operators_counts() {
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_reference_pool(&pool).await;
    let p = pool.display().to_string();
    let goal =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/goals/temp_plus.sql")).unwrap();
    let out = run_ok(
        gdo()
            .args(["sql", "--pool", &p, "--metrics", &metrics_path(), "--max-rows", "0"])
            .arg(format!("EXPLAIN ANALYZE {goal}")),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let goal_line = line_of(&text, "GoalSelectExec: goal=temp_plus");
    let o = run_select(&job(&pool, &dir.path().join("s"), &["temp_plus"])).await.unwrap();
    let r = &o[0].report;
    for (metric, value) in [
        ("output_rows", &r["selected_count"]),
        ("selected", &r["selected_count"]),
        ("target_count", &r["target_count"]),
        ("pairs_in", &r["rows_scanned"]),
        ("uni_target_count", &r["uni_target_count"]),
        ("reservoir_size", &r["reservoir_size"]),
        ("candidates_kept", &r["candidates_kept"]),
    ] {
        let shown = datafusion::common::human_readable_count(value.as_u64().unwrap() as usize);
        let found = [" ", "["].iter().any(|before| goal_line.contains(&format!("{before}{metric}={shown},")));
        assert!(found, "{metric}={shown} not in {goal_line}");
    }
    for (stage, n) in r["stage_counts"].as_object().unwrap() {
        let shown = datafusion::common::human_readable_count(n.as_u64().unwrap() as usize);
        assert!(goal_line.contains(&format!("stage_{stage}={shown}")), "stage_{stage}={shown} not in {goal_line}");
    }
    assert!(goal_line.contains("goal_run=goal temp_plus selected 330 of 330"), "{goal_line}");

    let uni = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/select/uni_10x.sql");
    let out = run_ok(
        gdo()
            .args(["sql", "--pool", &p, "--metrics", &metrics_path(), "--max-rows", "0"])
            .arg(format!("SET gdo.uni_count = 50; EXPLAIN ANALYZE {}", std::fs::read_to_string(uni).unwrap())),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let uni_line = line_of(&text, "UniSampleExec: count=50");
    assert!(uni_line.contains(" drawn=50") && uni_line.contains(" pairs_in="), "{uni_line}");
}

fn line_of(text: &str, needle: &str) -> String {
    text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no {needle} in:\n{text}")).to_string()
}
