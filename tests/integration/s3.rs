//! Ingest from and query a bucket on a real S3-protocol server (s3s-fs) on loopback.

use std::net::SocketAddr;
use std::process::Command;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use object_store::aws::AmazonS3Builder;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::common::{gdo, image_row, run_ok, video_row};

pub(crate) const ACCESS: &str = "gdo-test-access";
pub(crate) const SECRET: &str = "gdo-test-secret";
pub(crate) const BUCKET: &str = "gdo-bucket";

/// An s3s-fs server on 127.0.0.1 with one bucket, served from a temp folder by a
/// background thread; it stops when the test process ends.
pub(crate) struct S3Server {
    addr: SocketAddr,
    _root: tempfile::TempDir,
}

impl S3Server {
    pub(crate) fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(root.path()).expect("s3s-fs root");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS, SECRET));
        let service = builder.build();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    let Ok((socket, _)) = listener.accept().await else { continue };
                    let conn = http.serve_connection(TokioIo::new(socket), service.clone()).into_owned();
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                }
            });
        });
        Self { addr, _root: root }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn env(&self, cmd: &mut Command) {
        cmd.env("AWS_ACCESS_KEY_ID", ACCESS)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_ENDPOINT_URL", self.endpoint())
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
    }

    pub(crate) fn store(&self) -> impl ObjectStore {
        AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_access_key_id(ACCESS)
            .with_secret_access_key(SECRET)
            .with_endpoint(self.endpoint())
            .with_region("us-east-1")
            .with_allow_http(true)
            .build()
            .unwrap()
    }
}

async fn upload(store: &impl ObjectStore, key: &str, body: String) {
    store.put(&object_store::path::Path::from(key), body.into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_from_and_query_a_bucket() {
    let server = S3Server::start();
    let store = server.store();
    let img: Vec<String> =
        (0..50).map(|i| image_row(&format!("i{i}"), &format!("What is item {i}?"), "a box")).collect();
    let vid: Vec<String> = (0..30)
        .map(|i| video_row(&format!("v{i}"), "clip7", &format!("What happens after event {i}?"), "it falls", 40))
        .collect();
    upload(&store, "raw/ov.jsonl", img.join("\n") + "\n{broken\n").await;
    upload(&store, "raw/video.jsonl", vid.join("\n") + "\n").await;

    let pool = format!("s3://{BUCKET}/tables/pool");
    let mut cmd = gdo();
    cmd.args([
        "ingest",
        "--onevision",
        &format!("s3://{BUCKET}/raw/ov.jsonl"),
        "--video",
        &format!("s3://{BUCKET}/raw/video.jsonl"),
        "--out",
        &pool,
    ]);
    server.env(&mut cmd);
    let o = tokio::task::spawn_blocking(move || run_ok(&mut cmd)).await.unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("ingested 80 pairs"), "{}", String::from_utf8_lossy(&o.stdout));

    // The table is in the bucket: Delta log, data files and report.
    let listed: Vec<String> = {
        use futures::TryStreamExt;
        store
            .list(Some(&object_store::path::Path::from("tables/pool")))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap()
    };
    assert!(listed.iter().any(|p| p.ends_with("_delta_log/00000000000000000000.json")), "{listed:?}");
    assert!(listed.iter().any(|p| p.ends_with("ingest_report.json")), "{listed:?}");
    assert!(listed.iter().filter(|p| p.ends_with(".parquet")).count() >= 2, "{listed:?}");

    // Query it back through gdo sql, frames resolved to s3:// URIs beside the JSONL.
    let sql_csv = |query: &'static str| {
        let mut cmd = gdo();
        cmd.args(["sql", "--format", "csv", "--pool", &pool, query]);
        server.env(&mut cmd);
        async move {
            let o = tokio::task::spawn_blocking(move || run_ok(&mut cmd)).await.unwrap();
            String::from_utf8_lossy(&o.stdout).to_string()
        }
    };
    let text =
        sql_csv("SELECT bucket, count(*) AS n, min(frames[1]) AS f FROM pool GROUP BY bucket ORDER BY bucket").await;
    assert_eq!(
        text.trim(),
        format!(
            "bucket,n,f\nimage_qa,50,s3://{BUCKET}/raw/images/i0.jpg\nshort_video,30,s3://{BUCKET}/raw/frames/clip7/000.jpg"
        )
    );

    let text = sql_csv("SELECT reason, count(*) AS n FROM pool_rejects GROUP BY reason").await;
    assert_eq!(text.trim(), "reason,n\ninvalid_json,1");

    // A bucket prefix and a file-name pattern stand for the files in them, in name order;
    // the prefix's other objects (a writer's `_SUCCESS` marker) are reported, not read.
    upload(&store, "shards/part-1.jsonl", vid[..10].join("\n") + "\n").await;
    upload(&store, "shards/part-0.jsonl", vid[10..].join("\n") + "\n").await;
    upload(&store, "shards/_SUCCESS", String::new()).await;
    let pool2 = format!("s3://{BUCKET}/tables/pool2");
    let mut cmd = gdo();
    cmd.args([
        "ingest",
        "--onevision",
        &format!("s3://{BUCKET}/raw/o*.jsonl"),
        "--video",
        // The trailing `/` says "folder": s3s-fs answers a HEAD on a prefix with a 500.
        &format!("s3://{BUCKET}/shards/"),
        "--out",
        &pool2,
    ]);
    server.env(&mut cmd);
    let o = tokio::task::spawn_blocking(move || run_ok(&mut cmd)).await.unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(stdout.contains("ingested 80 pairs"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "not read: 1 entry of input folders not named .jsonl/.ndjson/.json[.gz]: s3://{BUCKET}/shards/_SUCCESS"
        )),
        "{stdout}"
    );
    let mut cmd = gdo();
    let q = "SELECT source_file, count(*) AS n, min(pool_index) AS first FROM pool GROUP BY source_file ORDER BY first";
    cmd.args(["sql", "--format", "csv", "--pool", &pool2, q]);
    server.env(&mut cmd);
    let o = tokio::task::spawn_blocking(move || run_ok(&mut cmd)).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!(
            "source_file,n,first\ns3://{BUCKET}/raw/ov.jsonl,50,0\ns3://{BUCKET}/shards/part-0.jsonl,20,50\n\
             s3://{BUCKET}/shards/part-1.jsonl,10,70"
        )
    );

    // Tables in the bucket have versions: rewrite pool with pool2's inputs, read both
    // versions, list them, verify every file, vacuum nothing that a version needs.
    let gdo_in_bucket = |args: Vec<String>| {
        let mut cmd = gdo();
        cmd.args(args);
        server.env(&mut cmd);
        async move { tokio::task::spawn_blocking(move || run_ok(&mut cmd)).await.unwrap() }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let o = gdo_in_bucket(s(&["ingest", "--video", &format!("s3://{BUCKET}/shards/"), "--out", &pool])).await;
    assert!(String::from_utf8_lossy(&o.stdout).contains("version 1"), "{}", String::from_utf8_lossy(&o.stdout));
    for (at, n) in [(format!("{pool}@v0"), 80), (pool.clone(), 30)] {
        let o = gdo_in_bucket(s(&["sql", "--format", "csv", "--pool", &at, "SELECT count(*) AS n FROM pool"])).await;
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("n\n{n}"), "{at}");
    }
    let o = gdo_in_bucket(s(&["history", "--json", &pool])).await;
    let h: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(h.as_array().unwrap().len(), 2);
    let o = gdo_in_bucket(s(&["verify", &pool])).await;
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("ok:"), "{}", String::from_utf8_lossy(&o.stdout));
    let o = gdo_in_bucket(s(&["vacuum", &pool])).await;
    assert!(String::from_utf8_lossy(&o.stderr).contains("deleted 0 files"), "{}", String::from_utf8_lossy(&o.stderr));

    // A missing object is a clear error naming the URI.
    let mut cmd = gdo();
    cmd.args(["ingest", "--video", &format!("s3://{BUCKET}/raw/absent.jsonl"), "--out", &pool]);
    server.env(&mut cmd);
    let o = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not found") && err.contains("absent.jsonl"), "{err}");
}
