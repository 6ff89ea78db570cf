//! Frames inside video files (mp4, mkv, webm, mov, avi: whatever FFmpeg reads),
//! decoded by FFmpeg's own programs, `ffprobe` and `ffmpeg`.
//!
//! Why the programs and not bindings to libavcodec: a decoder that crashes on a hostile
//! file takes down its own process, not the describe run; any FFmpeg from 5.1 on works,
//! so gdo builds with no system library (Debian/Ubuntu: `apt-get install ffmpeg`).
//!
//! A frame of a video is named by the video's URI and the frame's index in decode order,
//! `file:///data/clip.mp4#frame=17`. Ingest writes such names for the frames it keeps
//! (the method's uniform resampling of the video's frames); [`super::FrameFetcher`]
//! decodes every frame a call asks of one video in one `ffmpeg` run, returned as PPM
//! images that [`super::decode_rgb`] reads like any frame file. A `#` in a file name is
//! written `%23` in a URI, so the mark cannot be part of a real file name.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What follows a video's URI in the name of one of its frames.
pub const FRAME_MARK: &str = "#frame=";

/// The name of frame `index` (decode order, from 0) of the video at `video_uri`.
pub fn frame_uri(video_uri: &str, index: usize) -> String {
    format!("{video_uri}{FRAME_MARK}{index}")
}

/// The video URI and frame index of a frame name made by [`frame_uri`]; None for any
/// other URI.
pub fn split_frame_uri(uri: &str) -> Option<(&str, usize)> {
    let (video, index) = uri.rsplit_once(FRAME_MARK)?;
    index.parse().ok().map(|i| (video, i))
}

/// The program that runs `name` (`ffprobe`, `ffmpeg`): `GDO_FFMPEG_DIR/<name>` when
/// that variable names a folder, else `name` on `PATH`.
fn program(name: &str) -> PathBuf {
    match std::env::var_os("GDO_FFMPEG_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join(name),
        _ => PathBuf::from(name),
    }
}

fn spawn_error(name: &str, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("{name} not found: video files are decoded by FFmpeg (Debian/Ubuntu: apt-get install ffmpeg)")
    } else {
        format!("cannot run {name}: {e}")
    }
}

/// The last line FFmpeg wrote to stderr: its reason for failing.
fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim().to_owned()
}

/// Number of frames of the first video stream of the file at `path`: the count its
/// container records, or (mkv, webm and others that record none) its packets counted by
/// reading the file through, without decoding.
pub fn probe_frames(path: &Path) -> Result<usize, String> {
    let run = |count_packets: bool| -> Result<String, String> {
        let mut cmd = Command::new(program("ffprobe"));
        cmd.args(["-v", "error", "-select_streams", "v:0"]);
        if count_packets {
            cmd.args(["-count_packets", "-show_entries", "stream=nb_read_packets"]);
        } else {
            cmd.args(["-show_entries", "stream=nb_frames"]);
        }
        cmd.args(["-of", "csv=p=0"]).arg(path).stdin(Stdio::null());
        let out = cmd.output().map_err(|e| spawn_error("ffprobe", e))?;
        if !out.status.success() {
            return Err(format!("not a readable video: {}", last_line(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().trim_end_matches(',').to_owned())
    };
    let recorded = run(false)?;
    if recorded.is_empty() {
        return Err("the file holds no video stream".into());
    }
    let count = match recorded.parse::<usize>() {
        Ok(n) if n > 0 => n,
        _ => {
            let counted = run(true)?;
            counted.parse::<usize>().map_err(|_| format!("ffprobe gave no frame count ({counted:?})"))?
        }
    };
    if count == 0 {
        return Err("the video stream has no frames".into());
    }
    Ok(count)
}

/// Decode frames `indices` (decode order, from 0) of the first video stream of the file
/// at `path`, in one `ffmpeg` run: per index, the frame as a PPM image, or why not.
pub fn decode_frames(path: &Path, indices: &[usize]) -> Vec<Result<Vec<u8>, String>> {
    let mut wanted: Vec<usize> = indices.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let decoded = match run_decoder(path, &wanted) {
        Ok(d) => d,
        Err(e) => return indices.iter().map(|_| Err(e.clone())).collect(),
    };
    indices
        .iter()
        .map(|i| {
            let k = wanted.binary_search(i).expect("every index is wanted");
            match decoded.frames.get(k) {
                Some(ppm) => Ok(ppm.clone()),
                None => Err(match &decoded.failure {
                    Some(why) => format!("frame {i}: {why}"),
                    None => {
                        format!("frame {i}: the video has only {} decodable frame(s) up to it", decoded.frames.len())
                    }
                }),
            }
        })
        .collect()
}

struct Decoded {
    /// The wanted frames that came out, in order.
    frames: Vec<Vec<u8>>,
    /// Why ffmpeg stopped early, if it did.
    failure: Option<String>,
}

fn run_decoder(path: &Path, wanted: &[usize]) -> Result<Decoded, String> {
    // `select` keeps the frames whose decode index is wanted; `passthrough` writes each
    // kept frame once (no frames duplicated or dropped to hold a frame rate).
    let terms: Vec<String> = wanted.iter().map(|i| format!("eq(n\\,{i})")).collect();
    let filter = format!("select='{}'", terms.join("+"));
    let mut child = Command::new(program("ffmpeg"))
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vf", &filter, "-fps_mode", "passthrough"])
        .args(["-f", "image2pipe", "-c:v", "ppm", "-pix_fmt", "rgb24", "pipe:1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error("ffmpeg", e))?;
    // stderr on its own thread, so a chatty decoder cannot block on a full pipe while
    // frames are read here.
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let errors = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let mut out = Vec::new();
    let read = child.stdout.take().expect("stdout is piped").read_to_end(&mut out);
    let status = child.wait().map_err(|e| format!("ffmpeg: {e}"))?;
    let stderr = errors.join().unwrap_or_default();
    read.map_err(|e| format!("reading ffmpeg's frames: {e}"))?;
    let frames = split_ppm(&out).map_err(|e| format!("ffmpeg's output: {e}"))?;
    let failure = (!status.success()).then(|| format!("not a readable video: {}", last_line(&stderr)));
    if frames.is_empty()
        && let Some(why) = failure
    {
        return Err(why);
    }
    Ok(Decoded { frames: frames.into_iter().take(wanted.len()).collect(), failure })
}

/// Cut a stream of binary PPM (P6, 8-bit) images into one buffer per image.
fn split_ppm(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut images = Vec::new();
    while !bytes.is_empty() {
        // Header: "P6", width, height, maxval, each after whitespace; one whitespace
        // byte, then width*height*3 bytes.
        let mut fields = Vec::with_capacity(4);
        let mut pos = 0;
        while fields.len() < 4 {
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            let start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            if start == pos {
                return Err("truncated PPM header".into());
            }
            fields.push(std::str::from_utf8(&bytes[start..pos]).map_err(|_| "bad PPM header")?.to_owned());
        }
        if fields[0] != "P6" || fields[3] != "255" {
            return Err(format!("unexpected PPM header {fields:?}"));
        }
        let dim = |s: &str| s.parse::<usize>().map_err(|_| format!("bad PPM size {s:?}"));
        let size = dim(&fields[1])? * dim(&fields[2])? * 3;
        let end = pos + 1 + size;
        if end > bytes.len() {
            return Err("truncated PPM image".into());
        }
        images.push(bytes[..end].to_vec());
        bytes = &bytes[end..];
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_names_round_trip_and_other_uris_are_not_frames() {
        let uri = frame_uri("file:///data/a%23b.mp4", 17);
        assert_eq!(uri, "file:///data/a%23b.mp4#frame=17");
        assert_eq!(split_frame_uri(&uri), Some(("file:///data/a%23b.mp4", 17)));
        assert_eq!(split_frame_uri("file:///data/x.jpg"), None);
        assert_eq!(split_frame_uri("file:///data/x.mp4#frame=x"), None);
    }

    #[test]
    fn ppm_streams_split_into_images() {
        let mut stream = b"P6\n2 1\n255\n".to_vec();
        stream.extend([1, 2, 3, 4, 5, 6]);
        stream.extend(b"P6\n1 1\n255\n");
        stream.extend([7, 8, 9]);
        let images = split_ppm(&stream).unwrap();
        assert_eq!(images.len(), 2);
        assert_eq!(&images[1][images[1].len() - 3..], &[7, 8, 9]);
        assert!(split_ppm(&stream[..stream.len() - 1]).unwrap_err().contains("truncated"));
        assert!(split_ppm(b"P5\n1 1\n255\n\0").unwrap_err().contains("header"));
    }
}
