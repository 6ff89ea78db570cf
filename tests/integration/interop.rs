//! gdo among the tools users already have: the SFT JSONL loaded by HF `datasets` with
//! every image opened by PIL, LLaVA `conversations` rows pointing at real video files
//! (made here by FFmpeg) ingested and described, the fail-fast checks, and the SQL shell
//! driven through a pseudo-terminal.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{gdo, has_table, ingest_sample_pool, python_with, run_ok, sample_metrics, samples, write_lines};

/// Whether FFmpeg's programs are here; without them (and nothing requiring them) the
/// video tests are skipped, saying so.
fn have_ffmpeg() -> bool {
    let ok = ["ffmpeg", "ffprobe"]
        .iter()
        .all(|p| Command::new(p).arg("-version").output().is_ok_and(|o| o.status.success()));
    assert!(
        ok || std::env::var_os("GDO_REQUIRE_FFMPEG").is_none(),
        "ffmpeg and ffprobe required (GDO_REQUIRE_FFMPEG is set) but not on PATH"
    );
    if !ok {
        eprintln!("SKIPPED: ffmpeg not on PATH (scripts/test.sh installs it)");
    }
    ok
}

/// Run a command that must fail: its stderr.
fn fails(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("gdo runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr:\n{stderr}");
    stderr
}

/// Loads `files` with HF `datasets` as a trainer does, checks that every row's media tags
/// match its media, and opens every image and frame with PIL (paths relative to `base`).
const LOAD_WITH_DATASETS: &str = r#"
import json, os, sys
import datasets
from PIL import Image
base, files = sys.argv[1], sys.argv[2:]
out = {"datasets": datasets.__version__}
for f in files:
    ds = datasets.load_dataset("json", data_files=f, split="train")
    opened = videos = 0
    for row in ds:
        user = [m for m in row["messages"] if m["role"] == "user"][0]["content"]
        images, vids = row["images"] or [], row["videos"] or []
        assert user.count("<image>") == len(images), (user, images)
        assert user.count("<video>") == len(vids), (user, vids)
        for p in images + [p for v in vids for p in (v if isinstance(v, list) else [v])]:
            assert not p.startswith("file:"), p
            with Image.open(os.path.join(base, p)) as im:
                im.load()
            opened += 1
        videos += len(vids)
    out[os.path.basename(f)] = {"rows": ds.num_rows, "opened": opened, "videos": videos,
                                "roles": [m["role"] for m in ds[0]["messages"]]}
print(json.dumps(out))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn sft_jsonl_loads_with_hf_datasets_and_every_image_opens_with_pil() {
    let Some(python) = python_with("datasets, PIL") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (pool, _, merged) = sample_metrics(d).await;
    let select = |out: &Path, extra: &[&str]| {
        let mut cmd = gdo();
        cmd.args(["select", "--goal", "temp_plus", "--count", "40", "--pool"])
            .arg(&pool)
            .arg("--metrics")
            .arg(&merged)
            .arg("--out")
            .arg(out)
            .args(extra);
        cmd
    };
    let load = |base: &Path, folder: &Path| -> serde_json::Value {
        let files = [folder.join("gdo_1x.jsonl"), folder.join("uni_10x.jsonl")];
        let out = Command::new(&python).arg("-c").arg(LOAD_WITH_DATASETS).arg(base).args(&files).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // Default: absolute plain paths, one <image> per frame.
    let plain = d.join("plain");
    run_ok(&mut select(&plain, &[]));
    let got = load(Path::new("/"), &plain);
    assert_eq!(got["gdo_1x.jsonl"]["rows"], 40, "{got}");
    assert_eq!(got["uni_10x.jsonl"]["rows"], 400, "{got}");
    assert_eq!(got["gdo_1x.jsonl"]["videos"], 0, "{got}");
    assert!(got["gdo_1x.jsonl"]["opened"].as_u64().unwrap() > 40, "video pairs open every frame: {got}");
    assert_eq!(got["gdo_1x.jsonl"]["roles"], serde_json::json!(["user", "assistant"]));
    let text = std::fs::read_to_string(plain.join("gdo_1x.jsonl")).unwrap();
    assert!(!text.contains("file:"), "no URIs in the JSONL");
    // LLaMA-Factory's entry names both files and the sharegpt tags.
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(plain.join("dataset_info.json")).unwrap()).unwrap();
    assert_eq!(info["gdo_1x"]["file_name"], "gdo_1x.jsonl");
    assert_eq!(info["uni_10x"]["formatting"], "sharegpt");
    assert_eq!(info["gdo_1x"]["tags"]["system_tag"], "system");

    // Relative to a media base, videos as one <video> tag over their frame list, a
    // system turn first.
    let video = d.join("video");
    let base = samples();
    run_ok(&mut select(
        &video,
        &["--media-base", base.to_str().unwrap(), "--video-as", "video", "--system", "You answer about images."],
    ));
    let got = load(&base, &video);
    assert_eq!(got["gdo_1x.jsonl"]["rows"], 40, "{got}");
    assert!(got["gdo_1x.jsonl"]["videos"].as_u64().unwrap() > 0, "{got}");
    assert_eq!(got["gdo_1x.jsonl"]["roles"], serde_json::json!(["system", "user", "assistant"]));
    let first = std::fs::read_to_string(video.join("gdo_1x.jsonl")).unwrap();
    assert!(first.contains("\"images/") || first.contains("\"frames/"), "paths relative to the base");

    // A base that does not hold the media is an error naming a frame.
    let err = fails(&mut select(&d.join("elsewhere"), &["--media-base", "/elsewhere"]));
    assert!(err.contains("is not under --media-base /elsewhere"), "{err}");
}

/// An mp4 of `frames` frames of FFmpeg's moving test pattern.
fn make_video(path: &Path, frames: usize, extra: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=96x64:rate=10", "-frames:v"])
        .arg(frames.to_string())
        .args(["-pix_fmt", "yuv420p"])
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffmpeg: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn llava_rows_with_video_files_are_ingested_and_described() {
    if !have_ffmpeg() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let media = d.join("media");
    std::fs::create_dir_all(media.join("clips")).unwrap();
    make_video(&media.join("clips/walk.mp4"), 40, &[]);
    make_video(&media.join("clips/short.mkv"), 6, &["-c:v", "mpeg4"]);
    // Header first, then cut: the frame count reads, the later frames do not decode.
    make_video(&media.join("clips/cut.mp4"), 40, &["-movflags", "+faststart"]);
    let whole = std::fs::read(media.join("clips/cut.mp4")).unwrap();
    std::fs::write(media.join("clips/cut.mp4"), &whole[..whole.len() * 2 / 3]).unwrap();
    std::fs::write(media.join("clips/broken.mp4"), b"not a video at all").unwrap();
    let row = |id: &str, video: &str, q: &str| {
        format!(
            r#"{{"id":"{id}","video":"{video}","conversations":[{{"from":"human","value":"<video>\n{q}"}},{{"from":"gpt","value":"It moves."}}]}}"#
        )
    };
    let videos = d.join("llava_video.jsonl");
    write_lines(
        &videos,
        &[
            &row("w1", "clips/walk.mp4", "What happens first?"),
            &row("w2", "clips/walk.mp4", "What happens next?"),
            &row("s1", "clips/short.mkv", "What is shown?"),
            &row("c1", "clips/cut.mp4", "What happens?"),
            &row("b1", "clips/broken.mp4", "What happens?"),
        ],
    );
    image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 30])).save(media.join("red.png")).unwrap();
    let images = d.join("llava_images.jsonl");
    write_lines(
        &images,
        &[
            r#"{"id":"i1","image":"red.png","conversations":[{"from":"human","value":"<image>\nWhat colour?"},{"from":"gpt","value":"red"}]}"#,
        ],
    );
    let pool = d.join("pool");
    let out = run_ok(
        gdo()
            .arg("ingest")
            .arg("--onevision")
            .arg(&images)
            .arg("--video")
            .arg(&videos)
            .arg("--media-root")
            .arg(&media)
            .arg("--out")
            .arg(&pool),
    );
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("video_unreadable 1"), "{said}");
    let csv = |sql: &str| {
        let o = run_ok(gdo().args(["sql", "--format", "csv", "--pool"]).arg(&pool).arg(sql));
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        csv("SELECT qa_uid, bucket, n_frames, n_frames_raw FROM pool ORDER BY qa_uid"),
        "qa_uid,bucket,n_frames,n_frames_raw\nov::i1::t0,image_qa,1,1\nvv::c1::t0,short_video,32,40\n\
         vv::s1::t0,short_video,6,6\nvv::w1::t0,short_video,32,40\nvv::w2::t0,short_video,32,40\n"
    );
    let frames = csv("SELECT frames[1] AS f, frames[32] AS l FROM pool WHERE qa_uid = 'vv::w1::t0'");
    assert!(frames.contains("clips/walk.mp4#frame=0,") && frames.ends_with("clips/walk.mp4#frame=39\n"), "{frames}");
    let rejects = csv("SELECT reason, detail FROM pool_rejects");
    assert!(rejects.contains("video_unreadable") && rejects.contains("broken.mp4"), "{rejects}");

    // Described from the video files themselves; the cut file's missing frames are
    // counted on its row, not fatal.
    let descriptors = d.join("descriptors");
    run_ok(gdo().args(["describe", "--cheap-only", "--pool"]).arg(&pool).arg("--out").arg(&descriptors));
    let o = run_ok(gdo().args(["sql", "--format", "csv", "--table"]).arg(format!("d={}", descriptors.display())).arg(
        "SELECT qa_uid, amm > 0 AS moves, frame_diversity > 0 AS differs, error IS NOT NULL AS failed, \
         coalesce(error LIKE '%frame_undecodable%', false) AS undecodable FROM d ORDER BY qa_uid",
    ));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "qa_uid,moves,differs,failed,undecodable\nov::i1::t0,false,false,false,false\n\
         vv::c1::t0,true,true,true,true\nvv::s1::t0,true,true,false,false\n\
         vv::w1::t0,true,true,false,false\nvv::w2::t0,true,true,false,false\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_input_fails_fast_naming_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A wrong media root: every frame missing; describe fails and writes no table.
    let pool = d.join("pool");
    run_ok(
        gdo()
            .arg("ingest")
            .arg("--onevision")
            .arg(samples().join("onevision.jsonl"))
            .args(["--media-root", "/no/such/media", "--out"])
            .arg(&pool),
    );
    let descriptors = d.join("descriptors");
    let err = fails(gdo().args(["describe", "--cheap-only", "--pool"]).arg(&pool).arg("--out").arg(&descriptors));
    assert!(err.contains("could not be described") && err.contains("frame_missing"), "{err}");
    assert!(err.contains("--max-error-ratio 0.5") && err.contains("/no/such/media/"), "{err}");
    assert!(!has_table(&descriptors), "nothing committed");
    // Accepting any share describes it anyway, every row carrying its error.
    run_ok(
        gdo()
            .args(["describe", "--cheap-only", "--max-error-ratio", "1", "--pool"])
            .arg(&pool)
            .arg("--out")
            .arg(&descriptors),
    );
    assert!(has_table(&descriptors));

    // Training data given as descriptors.
    let err = fails(
        gdo()
            .arg("merge")
            .arg("--descriptors")
            .arg(samples().join("onevision.jsonl"))
            .arg("--out")
            .arg(d.join("merged")),
    );
    assert!(err.contains("no_descriptor_fields") && err.contains("not descriptors"), "{err}");

    // More clusters than rows: said, not silently clamped.
    let merged = d.join("merged");
    let out = run_ok(
        gdo().args(["merge", "--cluster-k", "4096", "--descriptors"]).arg(&descriptors).arg("--out").arg(&merged),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("warning: --cluster-k 4096 is more than the 375 rows fit; k = 375"), "{said}");

    // Image rows given as video.
    let out = run_ok(
        gdo().arg("ingest").arg("--video").arg(samples().join("onevision.jsonl")).arg("--out").arg(d.join("p2")),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("was given as --video, but 301 of its 301 rows hold one image"), "{said}");

    // A select output folder is two tables; train names them instead of mixing them.
    let subsets = d.join("subsets");
    run_ok(
        gdo()
            .args(["select", "--goal", "temp_plus", "--count", "20", "--no-jsonl", "--pool"])
            .arg(&pool)
            .arg("--metrics")
            .arg(&merged)
            .arg("--out")
            .arg(&subsets),
    );
    let err = fails(gdo().arg("train").arg("--table").arg(&subsets).arg("--out").arg(d.join("run")));
    assert!(err.contains("holds tables (gdo_1x, uni_10x)"), "{err}");
}

/// Drive `gdo sql` through a pseudo-terminal: wait for each prompt, type a line.
const PTY_DRIVER: &str = r#"
import os, pty, select, sys, time
lines, argv = sys.argv[1].split("\x1f"), sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
def wait_for(token, timeout=60):
    global out
    end = time.time() + timeout
    while token not in out:
        r, _, _ = select.select([fd], [], [], max(0, end - time.time()))
        if not r:
            raise SystemExit("timed out waiting for %r; got %r" % (token, out))
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            raise SystemExit("gdo exited; got %r" % out)
        if not chunk:
            raise SystemExit("gdo exited; got %r" % out)
        out += chunk
for line in lines:
    wait_for(b"gdo> " if not line.startswith("+") else b"-> ")
    out = out.replace(b"gdo> ", b"[prompt] ").replace(b"  -> ", b"[more] ")
    os.write(fd, line.lstrip("+").encode() + b"\r")
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_sql_shell_reads_a_terminal_stdin_and_tables_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pool = d.join("pool");
    ingest_sample_pool(&pool).await;

    // The shell on a terminal: a statement over two lines, \d, a quoted ';', quit.
    let lines = ["SELECT 40 + 2", "+AS answer;", "\\d", "\\d pool", "SELECT 'a;b' AS s;", "\\q"].join("\x1f");
    let out = Command::new("python3")
        .arg("-c")
        .arg(PTY_DRIVER)
        .arg(lines)
        .arg(env!("CARGO_BIN_EXE_gdo"))
        .arg("sql")
        .arg("--pool")
        .arg(&pool)
        .env("HOME", d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("| answer |") && text.contains("| 42     |"), "{text}");
    assert!(text.contains("| pool ") && text.contains("| pool_rejects "), "\\d lists the tables: {text}");
    assert!(text.contains("| qa_uid ") && text.contains("| frames "), "\\d pool lists columns: {text}");
    assert!(text.contains("| a;b |"), "{text}");
    let history = std::fs::read_to_string(d.join(".gdo_history")).unwrap();
    assert!(history.contains("SELECT 40 + 2"), "{history}");

    // SQL on stdin; -c; tables by path (a gdo table, a version, a Parquet file).
    let mut child =
        gdo().arg("sql").stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let sql = format!("SELECT count(*) AS n FROM '{}';\nSELECT 2 AS two;\n", pool.display());
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), sql.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("| 900 |") && text.contains("| 2   |"), "{text}");
    let parquet = d.join("buckets.parquet");
    run_ok(
        gdo()
            .args(["sql", "-c"])
            .arg(format!("SELECT bucket, count(*) AS n FROM '{}@v0' GROUP BY 1 ORDER BY 1", pool.display()))
            .arg("--out")
            .arg(&parquet),
    );
    assert_eq!(&std::fs::read(&parquet).unwrap()[..4], b"PAR1", "--out x.parquet writes Parquet");
    let o = run_ok(gdo().args(["sql", "--format", "csv", "-c"]).arg(format!("SELECT * FROM '{}'", parquet.display())));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "bucket,n\nimage_qa,375\nshort_video,525\n");
    // Query files do not read paths they were not given.
    let file = d.join("q.sql");
    std::fs::write(&file, format!("SELECT * FROM '{}'", parquet.display())).unwrap();
    let err = fails(gdo().arg("sql").arg("--file").arg(&file));
    assert!(err.contains("not found"), "{err}");

    // CSV holds list columns as JSON; printed tables stop at --max-rows.
    let o = run_ok(
        gdo()
            .args(["sql", "--pool"])
            .arg(&pool)
            .args(["--out"])
            .arg(d.join("frames.csv"))
            .arg("SELECT qa_uid, frames FROM pool WHERE bucket = 'short_video' ORDER BY qa_uid LIMIT 1"),
    );
    assert!(o.status.success());
    let csv = std::fs::read_to_string(d.join("frames.csv")).unwrap();
    let value = csv.lines().nth(1).unwrap().split_once(',').unwrap().1;
    let list: Vec<String> = serde_json::from_str(&value.trim_matches('"').replace("\"\"", "\"")).unwrap();
    assert!(list.len() > 1 && list[0].starts_with("file://"), "{csv}");
    let o = run_ok(gdo().args(["sql", "--max-rows", "3", "--pool"]).arg(&pool).arg("SELECT qa_uid FROM pool"));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("(3 of 900 rows shown; --max-rows 0 shows all)"), "{text}");
    assert_eq!(text.lines().filter(|l| l.starts_with("| ") && l.contains("::")).count(), 3, "{text}");

    // SHOW FUNCTIONS and --help-functions list every gdo function and table function.
    let shown = run_ok(gdo().args(["sql", "--format", "csv", "--max-rows", "0", "-c", "SHOW FUNCTIONS"]));
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    let reference = run_ok(gdo().args(["sql", "--help-functions"]));
    let reference = String::from_utf8_lossy(&reference.stdout).into_owned();
    for f in [
        "amm",
        "frame_diversity",
        "media_descriptors",
        "vis_feat",
        "gdo_fold",
        "gdo_norm",
        "text_feat",
        "tnc_regex",
        "token_count",
        "distinct_token_count",
        "source_group",
        "gdo_flag",
        "goal_select",
        "uni_sample",
    ] {
        assert!(shown.lines().any(|l| l.starts_with(&format!("{f},"))), "SHOW FUNCTIONS lacks {f}");
        assert!(reference.contains(&format!("\n{f}(")), "--help-functions lacks {f}");
    }
}
