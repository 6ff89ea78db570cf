//! Frames in: fetched through object_store (local files and `s3://`/`gs://`/`az://`
//! alike, concurrently) and decoded (JPEG, PNG, WebP) with the `image` crate; frames
//! inside video files (`clip.mp4#frame=17`) decoded by FFmpeg, see [`video`].
//!
//! The descriptor functions and the trainer both read frames through here, so a frame
//! that one of them can read the other can too. Stores come from the session's
//! [`ObjectStoreRegistry`], never from process-global state.

use std::sync::Arc;

use bytes::Bytes;
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::StreamExt;
use image::RgbImage;
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjPath;
use url::Url;

pub mod video;

/// Frames fetched at once per call of [`FrameFetcher::fetch_all`].
pub const DEFAULT_FETCH_CONCURRENCY: usize = 32;

/// Why a frame could not be read. `kind` is a short stable name for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub kind: FrameErrorKind,
    pub uri: String,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FrameErrorKind {
    /// Not a URI gdo can resolve to a store.
    BadUri,
    /// The object does not exist.
    Missing,
    /// The store failed (permissions, network).
    Io,
    /// The bytes are not a decodable JPEG, PNG or WebP image.
    Decode,
}

impl FrameErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadUri => "frame_bad_uri",
            Self::Missing => "frame_missing",
            Self::Io => "frame_io",
            Self::Decode => "frame_undecodable",
        }
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({})", self.kind.as_str(), self.uri, self.detail)
    }
}

impl std::error::Error for FrameError {}

/// Fetches frame bytes through a session's object-store registry.
#[derive(Clone)]
pub struct FrameFetcher {
    registry: Arc<dyn ObjectStoreRegistry>,
    concurrency: usize,
}

impl std::fmt::Debug for FrameFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameFetcher").field("concurrency", &self.concurrency).finish()
    }
}

impl FrameFetcher {
    pub fn new(registry: Arc<dyn ObjectStoreRegistry>) -> Self {
        Self { registry, concurrency: DEFAULT_FETCH_CONCURRENCY }
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// The registry this fetcher resolves stores with.
    pub fn registry(&self) -> &Arc<dyn ObjectStoreRegistry> {
        &self.registry
    }

    /// Fetch one frame's bytes.
    pub async fn fetch(&self, uri: &str) -> Result<Bytes, FrameError> {
        let err = |kind, detail: String| FrameError { kind, uri: uri.to_owned(), detail };
        let url = Url::parse(uri).map_err(|e| err(FrameErrorKind::BadUri, e.to_string()))?;
        let store = self.registry.get_store(&url).map_err(|e| err(FrameErrorKind::BadUri, e.to_string()))?;
        let path = ObjPath::from_url_path(url.path()).map_err(|e| err(FrameErrorKind::BadUri, e.to_string()))?;
        match store.get(&path).await {
            Ok(got) => got.bytes().await.map_err(|e| err(FrameErrorKind::Io, e.to_string())),
            Err(object_store::Error::NotFound { .. }) => Err(err(FrameErrorKind::Missing, "not found".into())),
            Err(e) => Err(err(FrameErrorKind::Io, e.to_string())),
        }
    }

    /// Fetch many frames concurrently (at most `concurrency` in flight); results in
    /// the order of `uris`. Frames of a video file ([`video::frame_uri`]) come back as
    /// PPM images, every frame asked of one video decoded in one FFmpeg run.
    pub async fn fetch_all<S: AsRef<str>>(&self, uris: &[S]) -> Vec<Result<Bytes, FrameError>> {
        if !uris.iter().any(|u| video::split_frame_uri(u.as_ref()).is_some()) {
            return futures::stream::iter(uris.iter().map(|u| self.fetch(u.as_ref())))
                .buffered(self.concurrency)
                .collect()
                .await;
        }
        // The frames asked of each video, in order of first mention.
        let mut videos: Vec<(&str, Vec<usize>)> = Vec::new();
        for u in uris {
            if let Some((v, i)) = video::split_frame_uri(u.as_ref()) {
                match videos.iter_mut().find(|(name, _)| *name == v) {
                    Some((_, wanted)) => wanted.push(i),
                    None => videos.push((v, vec![i])),
                }
            }
        }
        // One FFmpeg run per video, as many at once as there are cores.
        let decoders = std::thread::available_parallelism().map_or(2, |n| n.get());
        let decoded: Vec<Vec<Result<Bytes, FrameError>>> =
            futures::stream::iter(videos.iter().map(|(v, wanted)| self.video_frames(v, wanted)))
                .buffered(decoders)
                .collect()
                .await;
        let mut decoded: Vec<_> = decoded.into_iter().map(Vec::into_iter).collect();
        let plain: Vec<Result<Bytes, FrameError>> = futures::stream::iter(
            uris.iter().filter(|u| video::split_frame_uri(u.as_ref()).is_none()).map(|u| self.fetch(u.as_ref())),
        )
        .buffered(self.concurrency)
        .collect()
        .await;
        let mut plain = plain.into_iter();
        uris.iter()
            .map(|u| match video::split_frame_uri(u.as_ref()) {
                Some((v, _)) => {
                    let k = videos.iter().position(|(name, _)| *name == v).expect("every video was listed");
                    decoded[k].next().expect("one result per frame asked")
                }
                None => plain.next().expect("one result per frame file"),
            })
            .collect()
    }

    /// Frames `wanted` of the video at `video_uri`, in that order: a local file is read
    /// in place, one in an object store is copied to a temporary file first.
    async fn video_frames(&self, video_uri: &str, wanted: &[usize]) -> Vec<Result<Bytes, FrameError>> {
        let each = |r: Result<Vec<Result<Vec<u8>, String>>, FrameError>| -> Vec<Result<Bytes, FrameError>> {
            match r {
                Ok(frames) => frames
                    .into_iter()
                    .zip(wanted)
                    .map(|(f, i)| {
                        f.map(Bytes::from).map_err(|detail| FrameError {
                            kind: FrameErrorKind::Decode,
                            uri: video::frame_uri(video_uri, *i),
                            detail,
                        })
                    })
                    .collect(),
                Err(e) => wanted
                    .iter()
                    .map(|i| Err(FrameError { uri: video::frame_uri(video_uri, *i), ..e.clone() }))
                    .collect(),
            }
        };
        let wanted_owned = wanted.to_vec();
        each(self.with_local_file(video_uri, move |path| video::decode_frames(path, &wanted_owned)).await)
    }

    /// Frame count of the video at `video_uri` ([`video::probe_frames`]).
    pub async fn probe_video(&self, video_uri: &str) -> Result<usize, FrameError> {
        let probed = self.with_local_file(video_uri, video::probe_frames).await?;
        probed.map_err(|detail| FrameError { kind: FrameErrorKind::Decode, uri: video_uri.to_owned(), detail })
    }

    /// Run `f` (blocking) on the path of the file at `uri`: a `file://` URI's own path
    /// (checked to exist), else a temporary copy fetched through the store.
    async fn with_local_file<T: Send + 'static>(
        &self,
        uri: &str,
        f: impl FnOnce(&std::path::Path) -> T + Send + 'static,
    ) -> Result<T, FrameError> {
        let err = |kind, detail: String| FrameError { kind, uri: uri.to_owned(), detail };
        let url = Url::parse(uri).map_err(|e| err(FrameErrorKind::BadUri, e.to_string()))?;
        let joined = if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| err(FrameErrorKind::BadUri, "not a local path".into()))?;
            match tokio::fs::metadata(&path).await {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(err(FrameErrorKind::Missing, "not a file".into())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(err(FrameErrorKind::Missing, "not found".into()));
                }
                Err(e) => return Err(err(FrameErrorKind::Io, e.to_string())),
            }
            tokio::task::spawn_blocking(move || f(&path)).await
        } else {
            let bytes = self.fetch(uri).await?;
            let copy = tokio::task::spawn_blocking(move || -> std::io::Result<T> {
                let mut tmp = tempfile::Builder::new().prefix("gdo-video-").tempfile()?;
                std::io::Write::write_all(&mut tmp, &bytes)?;
                Ok(f(tmp.path()))
            })
            .await;
            match copy {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => return Err(err(FrameErrorKind::Io, format!("temporary copy: {e}"))),
                Err(e) => Err(e),
            }
        };
        joined.map_err(|e| err(FrameErrorKind::Io, format!("decoder task: {e}")))
    }

    /// [`Self::fetch_all`] over the frames of many rows at once (one row's results per
    /// row, in its order), so a batch of rows shares one concurrent fetch.
    pub async fn fetch_rows<S: AsRef<str>>(&self, rows: &[Vec<S>]) -> Vec<Vec<Result<Bytes, FrameError>>> {
        let flat: Vec<&str> = rows.iter().flatten().map(AsRef::as_ref).collect();
        let mut got = self.fetch_all(&flat).await.into_iter();
        rows.iter().map(|r| got.by_ref().take(r.len()).collect()).collect()
    }
}

/// Decode JPEG, PNG or WebP bytes to 8-bit RGB (alpha dropped, grey expanded).
pub fn decode_rgb(uri: &str, bytes: &[u8]) -> Result<RgbImage, FrameError> {
    image::load_from_memory(bytes).map(|img| img.into_rgb8()).map_err(|e| FrameError {
        kind: FrameErrorKind::Decode,
        uri: uri.to_owned(),
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::execution::object_store::DefaultObjectStoreRegistry;

    fn fetcher() -> FrameFetcher {
        FrameFetcher::new(Arc::new(DefaultObjectStoreRegistry::new()))
    }

    #[tokio::test]
    async fn fetches_and_decodes_local_png_and_reports_missing_and_corrupt() {
        let dir = std::env::temp_dir().join(format!("gdo-media-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let png = dir.join("a.png");
        RgbImage::from_pixel(3, 2, image::Rgb([10, 20, 30])).save(&png).unwrap();
        let bad = dir.join("bad.jpg");
        std::fs::write(&bad, b"not an image").unwrap();
        let url = |p: &std::path::Path| Url::from_file_path(p).unwrap().to_string();
        let uris = vec![url(&png), url(&dir.join("missing.png")), url(&bad), "::nope".to_owned()];
        let got = fetcher().fetch_all(&uris).await;
        let img = decode_rgb(&uris[0], got[0].as_ref().unwrap()).unwrap();
        assert_eq!((img.width(), img.height()), (3, 2));
        assert_eq!(img.get_pixel(2, 1).0, [10, 20, 30]);
        assert_eq!(got[1].as_ref().unwrap_err().kind, FrameErrorKind::Missing);
        let corrupt = decode_rgb(&uris[2], got[2].as_ref().unwrap()).unwrap_err();
        assert_eq!(corrupt.kind, FrameErrorKind::Decode);
        assert_eq!(got[3].as_ref().unwrap_err().kind, FrameErrorKind::BadUri);
        std::fs::remove_dir_all(&dir).ok();
    }
}
