//! gdo on a Ballista cluster: a scheduler and two executors on loopback, in this
//! process (the library's own entry points) and as `gdo scheduler` / `gdo executor`
//! processes; every result compared with the local run's.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use datafusion::prelude::SessionContext;
use gdo::cluster::executor::ExecutorOptions;
use gdo::cluster::scheduler::SchedulerOptions;
use gdo::select::run::{GoalSource, PAPER_GOALS, SelectJob, run_select};
use gdo::session::{new_context, register_table};
use gdo::sql::{run_statements, text_rows};

use crate::common::{fixtures, image_row, ingest_reference_pool, ingest_sample_pool, samples, write_lines};

/// A port nobody listens on now (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `GET path` on the scheduler's REST API; the body.
pub(crate) fn rest_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// Wait until `n` executors have joined the scheduler on `port`.
pub(crate) fn wait_for_executors(port: u16, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let joined = rest_get(port, "/api/executors")
            .map(|body| body.matches("\"host\"").count().max(body.matches("\"id\"").count()))
            .unwrap_or(0);
        if joined >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{joined} of {n} executors joined the scheduler within 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A scheduler and two executors in this process; the scheduler's `df://` address.
async fn loopback_cluster(work: &Path) -> (String, u16) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut handles = vec![tokio::spawn(gdo::cluster::scheduler::serve(listener, SchedulerOptions::default()))];
    for i in 0..2 {
        let opts = ExecutorOptions {
            scheduler_port: port,
            flight_port: free_port(),
            grpc_port: free_port(),
            task_slots: 2,
            work_dir: Some(work.join(format!("executor-{i}")).display().to_string()),
            ..ExecutorOptions::default()
        };
        std::fs::create_dir_all(opts.work_dir.as_ref().unwrap()).unwrap();
        handles.push(tokio::spawn(gdo::cluster::executor::serve(opts)));
    }
    let waiting = tokio::task::spawn_blocking(move || wait_for_executors(port, 2));
    while !waiting.is_finished() {
        if let Some(stopped) = handles.iter_mut().find(|h| h.is_finished()) {
            panic!("a cluster process stopped: {:?}", stopped.await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    waiting.await.unwrap();
    (format!("df://127.0.0.1:{port}"), port)
}

/// A query's rows as text, sorted (the same rows, whatever order the partitions
/// arrive in).
async fn rows(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let result = run_statements(ctx, sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")).pop().unwrap();
    let mut rows = text_rows(&result.batches).unwrap();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_loopback_cluster_gives_the_local_results() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _) = loopback_cluster(dir.path()).await;

    // Every shipped audit query, over a pool with a rejected line.
    let bad = dir.path().join("more.jsonl");
    write_lines(&bad, &[&image_row("x1", "What is shown?", "A cat."), "{not json"]);
    let pool = dir.path().join("audit_pool");
    gdo::stage::Ingest::new(pool.display().to_string())
        .with_onevision([samples().join("onevision.jsonl").display().to_string(), bad.display().to_string()])
        .with_video([samples().join("video.jsonl").display().to_string()])
        .await
        .unwrap();
    let local = new_context();
    let remote = gdo::cluster::connect(&url).await.unwrap();
    assert!(gdo::session::is_remote(&remote) && !gdo::session::is_remote(&local));
    for ctx in [&local, &remote] {
        let names = register_table(ctx, "pool", &pool.display().to_string()).await.unwrap().names;
        assert!(names.contains(&"pool_rejects".to_owned()), "{names:?}");
    }
    for q in gdo::queries::AUDIT {
        let want = rows(&local, q.sql).await;
        assert!(!want.is_empty(), "{}", q.name);
        assert_eq!(rows(&remote, q.sql).await, want, "audit {}", q.name);
    }
    // gdo's functions run on the executors.
    let sql = "SELECT qa_uid, token_count(question) AS t, text_feat(question, answer) AS f FROM pool";
    assert_eq!(rows(&remote, sql).await, rows(&local, sql).await);
    let plan = rows(&remote, &format!("EXPLAIN {sql}")).await;
    // gdo's settings travel with each job: an executor computes motion where the
    // session says (an unknown device fails the query, naming the setting).
    run_statements(&remote, "SET gdo.motion_device = 'tpu'").await.unwrap();
    let bad = "SELECT amm(frames) FROM pool WHERE bucket = 'short_video' LIMIT 1";
    let err = run_statements(&remote, bad).await.err().expect("no such device").to_string();
    assert!(err.contains("gdo.motion_device = 'tpu'"), "{err}");
    run_statements(&remote, "SET gdo.motion_device = 'cpu'").await.unwrap();
    // EXPLAIN shows the stages the scheduler planned.
    assert!(plan.iter().any(|r| r[0] == "distributed_plan" && r[1].contains("Stage[stage_id=")), "{plan:?}");

    // describe --cheap-only on the sample pool: the same descriptor rows.
    let sample = dir.path().join("pool");
    ingest_sample_pool(&sample).await;
    let (here, there) = (dir.path().join("d_local"), dir.path().join("d_cluster"));
    gdo::stage::Describe::new(sample.display().to_string(), here.display().to_string())
        .with_chunk_size(128)
        .await
        .unwrap();
    let report = gdo::stage::Describe::new(sample.display().to_string(), there.display().to_string())
        .with_chunk_size(128)
        .on_cluster(Some(url.clone()), 4)
        .await
        .unwrap();
    assert!(report.complete && report.rows == 900, "{report:?}");
    let all = "SELECT * FROM d";
    let read = |path: &Path| {
        let path = path.display().to_string();
        async move {
            let ctx = new_context();
            register_table(&ctx, "d", &path).await.unwrap();
            rows(&ctx, all).await
        }
    };
    assert_eq!(read(&there).await, read(&here).await, "descriptor rows");

    // select, every shipped goal, on the reference fixture: the same bytes.
    let ref_pool = dir.path().join("ref_pool");
    ingest_reference_pool(&ref_pool).await;
    let job = |out: &Path, cluster: Option<String>| SelectJob {
        pool: ref_pool.display().to_string(),
        metrics: vec![fixtures().join("gdo-reference/pool/metrics.jsonl.gz").display().to_string()],
        goals: PAPER_GOALS.iter().chain(["balanced"].iter()).map(|g| GoalSource::resolve(g).unwrap()).collect(),
        out: out.display().to_string(),
        per_goal_folders: true,
        settings: vec![],
        sft: gdo::select::sft_jsonl::SftOptions::default(),
        write_jsonl: true,
        exclude: vec![],
        exclude_mode: gdo::select::exclude::ExcludeMode::Both,
        memory_limit: None,
        cluster,
    };
    let (s_local, s_cluster) = (dir.path().join("s_local"), dir.path().join("s_cluster"));
    let a = run_select(&job(&s_local, None)).await.unwrap();
    let b = run_select(&job(&s_cluster, Some(url.clone()))).await.unwrap();
    assert_eq!(a.len(), 5);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.goal, y.goal);
        for key in ["selected_count", "uni_count", "target_count", "uni_target_count", "unmet"] {
            assert_eq!(x.report[key], y.report[key], "{}: report {key}", x.goal);
        }
        for file in ["gdo_1x.jsonl", "uni_10x.jsonl"] {
            let bytes = |root: &Path| std::fs::read(root.join(&x.goal).join(file)).unwrap();
            assert!(bytes(&s_local) == bytes(&s_cluster), "{}: {file} differs", x.goal);
        }
        for table in ["gdo_1x", "uni_10x"] {
            let sums = |root: &Path| crate::common::data_sums(&root.join(&x.goal).join(table));
            assert_eq!(sums(&s_local), sums(&s_cluster), "{}: {table} data files", x.goal);
        }
    }
    let distinct: BTreeSet<_> = a.iter().map(|o| o.report["selected_count"].to_string()).collect();
    assert!(!distinct.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_is_not_there_is_named() {
    // Port 1: nothing listens there (a free port from the OS could be taken by a
    // test running beside this one before the connect).
    let err = gdo::cluster::connect("df://127.0.0.1:1").await.err().expect("no scheduler").to_string();
    assert!(err.contains("no gdo scheduler at df://127.0.0.1") && err.contains("gdo scheduler"), "{err}");
    let err = gdo::cluster::connect("http://127.0.0.1:50050").await.err().expect("not df://").to_string();
    assert!(err.contains("expected df://HOST:PORT"), "{err}");
}

/// Child processes killed when the test ends, passing or not.
struct Processes(Vec<std::process::Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stdout_of(cmd: &mut std::process::Command) -> String {
    String::from_utf8_lossy(&crate::common::run_ok(cmd).stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gdo_processes_run_the_pipeline_on_s3_and_survive_a_killed_executor() {
    use crate::common::gdo;
    use crate::s3::{BUCKET, S3Server};
    let server = S3Server::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("df://127.0.0.1:{port}");
    let mut procs = Processes(Vec::new());
    let mut scheduler = gdo();
    scheduler.args(["scheduler", "--bind-port", &port.to_string(), "--executor-timeout", "6"]);
    server.env(&mut scheduler);
    procs.0.push(scheduler.stderr(std::process::Stdio::null()).spawn().unwrap());
    let executor = |i: usize| {
        let mut cmd = gdo();
        let work = dir.path().join(format!("executor-{i}"));
        std::fs::create_dir_all(&work).unwrap();
        cmd.args(["executor", "--scheduler", &url, "--task-slots", "2", "--work-dir"]).arg(&work).args([
            "-p",
            &free_port().to_string(),
            "--grpc-port",
            &free_port().to_string(),
        ]);
        server.env(&mut cmd);
        cmd.stderr(std::process::Stdio::null()).spawn().unwrap()
    };
    procs.0.push(executor(0));
    procs.0.push(executor(1));
    tokio::task::spawn_blocking(move || wait_for_executors(port, 2)).await.unwrap();

    let s3 = |rel: &str| format!("s3://{BUCKET}/work/{rel}");
    let run = |args: Vec<String>| {
        let mut cmd = gdo();
        cmd.args(&args);
        server.env(&mut cmd);
        cmd
    };
    let samples = samples();
    let mut ingest = run(vec![
        "ingest".into(),
        "--onevision".into(),
        samples.join("onevision.jsonl").display().to_string(),
        "--video".into(),
        samples.join("video.jsonl").display().to_string(),
        "--out".into(),
        s3("pool"),
    ]);
    tokio::task::spawn_blocking(move || stdout_of(&mut ingest)).await.unwrap();
    let describe = |out: &str, chunk: &str| {
        run(vec![
            "describe".into(),
            "--cheap-only".into(),
            "--pool".into(),
            s3("pool"),
            "--out".into(),
            s3(out),
            "--chunk-size".into(),
            chunk.into(),
            "--cluster".into(),
            url.clone(),
            "--cluster-jobs".into(),
            "4".into(),
        ])
    };
    let mut d = describe("descriptors", "128");
    let said = tokio::task::spawn_blocking(move || stdout_of(&mut d)).await.unwrap();
    assert!(said.contains("described 900 rows"), "{said}");
    let mut merge = run(vec![
        "merge".into(),
        "--cluster-k".into(),
        "8".into(),
        "--descriptors".into(),
        s3("descriptors"),
        "--out".into(),
        s3("merged"),
    ]);
    tokio::task::spawn_blocking(move || stdout_of(&mut merge)).await.unwrap();
    let select = |out: &str, cluster: bool| {
        let mut args: Vec<String> = ["select", "--goal", "temp_plus", "--pool"].map(String::from).to_vec();
        args.extend([s3("pool"), "--metrics".into(), s3("merged"), "--out".into(), s3(out)]);
        if cluster {
            args.extend(["--cluster".into(), url.clone()]);
        }
        run(args)
    };
    let (mut on_cluster, mut here) = (select("subsets_cluster", true), select("subsets_local", false));
    tokio::task::spawn_blocking(move || stdout_of(&mut on_cluster)).await.unwrap();
    tokio::task::spawn_blocking(move || stdout_of(&mut here)).await.unwrap();
    let store = server.store();
    for file in ["gdo_1x.jsonl", "uni_10x.jsonl"] {
        use object_store::ObjectStoreExt;
        let get = |folder: &str| {
            let key = object_store::path::Path::from(format!("work/{folder}/{file}"));
            let store = &store;
            async move { store.get(&key).await.unwrap().bytes().await.unwrap() }
        };
        let (a, b) = (get("subsets_cluster").await, get("subsets_local").await);
        assert!(!a.is_empty() && a == b, "{file}: the cluster's subset differs from the local one");
    }

    // Credentials never travel: no job's settings on the scheduler's REST API hold them.
    let jobs = rest_get(port, "/api/jobs").expect("the scheduler lists its jobs");
    let ids: Vec<&str> = jobs.split("\"job_id\":\"").skip(1).filter_map(|t| t.split('"').next()).collect();
    assert!(ids.len() >= 3, "{jobs}");
    for id in ids {
        let config = rest_get(port, &format!("/api/job/{id}/config")).expect("a job's settings");
        assert!(config.contains("gdo.motion_device"), "{config}");
        for secret in [crate::s3::SECRET, crate::s3::ACCESS] {
            assert!(!config.contains(secret), "job {id}'s settings show a credential");
        }
    }

    // An executor killed (SIGKILL) while a describe runs: the run still completes,
    // through Ballista's retries or describe's resume, every pair described once.
    let mut d = describe("descriptors_2", "16");
    let mut child = d.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    procs.0[1].kill().unwrap();
    procs.0[1].wait().unwrap();
    let mut finished = tokio::task::spawn_blocking(move || child.wait().unwrap().success()).await.unwrap();
    let mut attempts = 1;
    while !finished && attempts < 3 {
        attempts += 1;
        let mut again = describe("descriptors_2", "16");
        finished = tokio::task::spawn_blocking(move || again.status().unwrap().success()).await.unwrap();
    }
    assert!(finished, "describe did not complete in {attempts} runs after an executor was killed");
    let mut count = run(vec![
        "sql".into(),
        "--format".into(),
        "csv".into(),
        "--table".into(),
        format!("d={}", s3("descriptors_2")),
        "--cluster".into(),
        url.clone(),
        "SELECT count(*) AS n, count(DISTINCT qa_uid) AS u FROM d".into(),
    ]);
    let counted = tokio::task::spawn_blocking(move || stdout_of(&mut count)).await.unwrap();
    assert_eq!(counted, "n,u\n900,900\n", "after {attempts} run(s)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flight_sql_client_runs_a_shipped_audit_on_the_scheduler() {
    use crate::common::{gdo, python_with};
    let Some(python) = python_with("adbc_driver_flightsql.dbapi, pyarrow") else { return };
    let dir = tempfile::tempdir().unwrap();
    let pool = dir.path().join("pool");
    ingest_sample_pool(&pool).await;
    let port = free_port();
    let mut procs = Processes(Vec::new());
    procs.0.push(
        gdo()
            .args(["scheduler", "--flight-sql", "--bind-port", &port.to_string(), "--table"])
            .arg(format!("pool={}", pool.display()))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    procs.0.push(
        gdo()
            .args(["executor", "--scheduler", &format!("df://127.0.0.1:{port}"), "--task-slots", "2"])
            .args(["-p", &free_port().to_string(), "--grpc-port", &free_port().to_string()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    tokio::task::spawn_blocking(move || wait_for_executors(port, 1)).await.unwrap();

    // The audit that calls a gdo function (tnc_regex), as a Flight SQL client sends it.
    let audit = gdo::queries::find("temporal_cues").unwrap();
    assert!(audit.sql.contains("tnc_regex("));
    let script = "import sys, json\n\
                  import adbc_driver_flightsql.dbapi as flight_sql\n\
                  with flight_sql.connect(sys.argv[1]) as conn, conn.cursor() as cur:\n\
                  \x20   cur.execute(sys.stdin.read())\n\
                  \x20   for row in cur.fetch_arrow_table().to_pylist():\n\
                  \x20       print(json.dumps({k: v for k, v in row.items() if v is not None}, sort_keys=True))\n";
    let mut cmd = std::process::Command::new(&python);
    cmd.args(["-c", script, &format!("grpc://127.0.0.1:{port}")]);
    let sql = audit.sql.to_owned();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "ADBC client failed: {}", String::from_utf8_lossy(&out.stderr));
    let parse = |text: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(text).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let theirs = parse(&out.stdout);
    let local =
        crate::common::run_ok(gdo().args(["sql", "--format", "json", "--query", "temporal_cues", "--pool"]).arg(&pool));
    let ours = parse(&local.stdout);
    assert!(ours.len() >= 2, "{ours:?}");
    assert_eq!(theirs, ours, "Flight SQL rows vs gdo sql rows");
}
