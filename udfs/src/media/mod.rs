//! Frames in: fetched through object_store (local files and `s3://`/`gs://`/`az://`
//! alike, concurrently) and decoded (JPEG, PNG, WebP) with the `image` crate.
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
    /// the order of `uris`.
    pub async fn fetch_all<S: AsRef<str>>(&self, uris: &[S]) -> Vec<Result<Bytes, FrameError>> {
        futures::stream::iter(uris.iter().map(|u| self.fetch(u.as_ref()))).buffered(self.concurrency).collect().await
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
