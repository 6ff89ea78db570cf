//! Locations: a local path or an `s3://`, `gs://`, `az://` (or `file://`) URI, resolved
//! to an object store and a path inside it. Every input and output of gdo goes
//! through here, so local folders and buckets behave the same.
//!
//! Credentials come from the usual environment variables (`AWS_*`, `GOOGLE_*`,
//! `AZURE_*`); an `AWS_ENDPOINT_URL` starting with `http://` (a local S3 server such as
//! MinIO, s3s or moto) enables plain HTTP.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{GdoError, Result};

/// A resolved location: the store, the object path in it, and its URL.
#[derive(Clone)]
pub struct Location {
    /// The URL as given (local paths become absolute `file://` URLs).
    pub url: Url,
    /// The store holding the location.
    pub store: Arc<dyn ObjectStore>,
    /// The object path inside the store.
    pub path: ObjPath,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Location({})", self.url)
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.local_path() {
            Some(p) => write!(f, "{}", p.display()),
            None => write!(f, "{}", self.url),
        }
    }
}

/// Does `s` start with a URI scheme (`xyz://`)?
pub fn has_scheme(s: &str) -> bool {
    // Ingest asks this of every frame path, so one memchr for the first `:` instead of a
    // substring search. Same answer: a scheme cannot hold a `:`, so when the first `:`
    // does not start `://`, no later `://` has a valid scheme before it either.
    let b = s.as_bytes();
    match memchr::memchr(b':', b) {
        Some(pos) if pos > 0 && b[pos + 1..].starts_with(b"//") => {
            let scheme = &s[..pos];
            scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
        }
        _ => false,
    }
}

/// Turn a local path or URI into a URL (local paths made absolute, not required to exist).
pub fn to_url(location: &str) -> Result<Url> {
    let invalid = |reason: String| GdoError::InvalidLocation { location: location.to_owned(), reason };
    if location.is_empty() {
        return Err(invalid("empty path".into()));
    }
    if has_scheme(location) {
        return Url::parse(location).map_err(|e| invalid(e.to_string()));
    }
    let abs = std::path::absolute(location).map_err(|e| invalid(e.to_string()))?;
    // Resolve `.` and `..` lexically: object paths may not contain them.
    let mut clean = std::path::PathBuf::new();
    for part in abs.components() {
        match part {
            std::path::Component::ParentDir => {
                clean.pop();
            }
            std::path::Component::CurDir => {}
            other => clean.push(other),
        }
    }
    Url::from_file_path(&clean).map_err(|()| invalid("not an absolute path".into()))
}

/// The key DataFusion uses to find the store of `url`: `scheme://authority`.
pub fn store_key(url: &Url) -> Url {
    let mut key = url.clone();
    key.set_path("");
    key.set_query(None);
    key.set_fragment(None);
    key
}

fn env_endpoint_is_http() -> bool {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .any(|v| v.starts_with("http://"))
}

/// Build the object store serving `url`'s bucket (or the local file system).
pub fn store_for(url: &Url) -> Result<Arc<dyn ObjectStore>> {
    let bucket_url = store_key(url);
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        // Automatic cleanup removes the empty folders left when old table files go.
        "file" => Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)),
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(bucket_url.as_str());
            if env_endpoint_is_http() {
                b = b.with_allow_http(true);
            }
            Arc::new(b.build()?)
        }
        "gs" => Arc::new(GoogleCloudStorageBuilder::from_env().with_url(bucket_url.as_str()).build()?),
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            Arc::new(MicrosoftAzureBuilder::from_env().with_url(bucket_url.as_str()).build()?)
        }
        other => {
            return Err(GdoError::InvalidLocation {
                location: url.to_string(),
                reason: format!("unsupported scheme '{other}' (use a local path, file://, s3://, gs:// or az://)"),
            });
        }
    };
    Ok(store)
}

impl Location {
    /// Resolve a local path or URI.
    pub fn parse(location: &str) -> Result<Self> {
        let url = to_url(location)?;
        Self::from_url(url)
    }

    /// Resolve a URL.
    pub fn from_url(url: Url) -> Result<Self> {
        let store = store_for(&url)?;
        let path = ObjPath::from_url_path(url.path())
            .map_err(|e| GdoError::InvalidLocation { location: url.to_string(), reason: e.to_string() })?;
        Ok(Self { url, store, path })
    }

    /// The file system path of a `file://` location.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        (self.url.scheme() == "file").then(|| self.url.to_file_path().ok()).flatten()
    }

    /// The location `rel` (a `/`-separated relative path) below this one, same store.
    pub fn child(&self, rel: &str) -> Location {
        let mut path = self.path.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        let mut url = self.url.clone();
        url.set_path(&format!("/{path}"));
        Location { url, store: Arc::clone(&self.store), path }
    }

    /// This location as a folder URL (ending in `/`), for joining relative paths.
    pub fn dir_url(&self) -> Url {
        let mut url = self.url.clone();
        if !url.path().ends_with('/') {
            let p = format!("{}/", url.path());
            url.set_path(&p);
        }
        url
    }

    /// The folder holding this location.
    pub fn parent_dir_url(&self) -> Url {
        let mut url = self.url.clone();
        let path = url.path().to_owned();
        let parent = match path.rfind('/') {
            Some(pos) => &path[..=pos],
            None => "/",
        };
        url.set_path(parent);
        url
    }

    /// Size in bytes, or a `NotFound` error naming the location.
    pub async fn size(&self) -> Result<u64> {
        match self.store.head(&self.path).await {
            Ok(meta) => Ok(meta.size),
            Err(object_store::Error::NotFound { .. }) => Err(GdoError::NotFound(self.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Does an object exist here?
    pub async fn exists(&self) -> Result<bool> {
        match self.store.head(&self.path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Read the whole object.
    pub async fn read_all(&self) -> Result<bytes::Bytes> {
        match self.store.get(&self.path).await {
            Ok(r) => Ok(r.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(GdoError::NotFound(self.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Write the whole object atomically (a reader sees the old or the new content).
    pub async fn write_all(&self, data: impl Into<bytes::Bytes>) -> Result<()> {
        self.store.put(&self.path, data.into().into()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_file_urls() {
        let u = to_url("/tmp/a b/c.jsonl").unwrap();
        assert_eq!(u.scheme(), "file");
        assert_eq!(u.path(), "/tmp/a%20b/c.jsonl");
        assert_eq!(to_url("/tmp/x/../y/./z").unwrap().path(), "/tmp/y/z");
        assert!(has_scheme("s3://bucket/x"));
        assert!(!has_scheme("frames/x.jpg"));
        assert!(!has_scheme("://x"));
    }

    #[test]
    fn has_scheme_agrees_with_the_substring_rule() {
        // The rule as first written: the text before the first `://`.
        let reference = |s: &str| match s.find("://") {
            Some(pos) if pos > 0 => {
                let scheme = &s[..pos];
                scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                    && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+.-".contains(c))
            }
            _ => false,
        };
        let parts = ["", "s3", ":", "//", "/", "://", "a", "1", "+", "é", "x.y"];
        for a in parts {
            for b in parts {
                for c in parts {
                    let s = format!("{a}{b}{c}");
                    assert_eq!(has_scheme(&s), reference(&s), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn child_and_parent() {
        let loc = Location::parse("/tmp/pool").unwrap();
        let c = loc.child("data/run1/part-0.parquet");
        assert_eq!(c.path.as_ref(), "tmp/pool/data/run1/part-0.parquet");
        assert_eq!(c.url.as_str(), "file:///tmp/pool/data/run1/part-0.parquet");
        assert_eq!(c.parent_dir_url().as_str(), "file:///tmp/pool/data/run1/");
        assert_eq!(loc.dir_url().as_str(), "file:///tmp/pool/");
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let err = Location::parse("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme 'ftp'"), "{err}");
    }
}
