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

/// Characters that make an input's last path segment a file-name pattern.
const GLOB_CHARS: &[char] = &['*', '?', '['];

/// One input argument resolved to the files it names.
#[derive(Debug)]
pub struct InputFiles {
    /// Each file as the user would write it (the argument, or the folder joined with the
    /// file name), its location and its size in bytes, in name order.
    pub files: Vec<(String, Location, u64)>,
    /// Entries of a given folder that were not taken (other files, and sub-folders with a
    /// trailing `/`), so a caller can report them instead of dropping them silently.
    pub ignored: Vec<String>,
}

/// Does `arg`'s last path segment hold a file-name pattern (`*`, `?`, `[`)? Such an
/// argument goes through [`expand_input`] (which still reads a file of that exact name
/// as itself).
pub fn is_pattern(arg: &str) -> bool {
    arg.rsplit('/').next().is_some_and(|last| last.contains(GLOB_CHARS))
}

fn join_arg(folder: &str, name: &str) -> String {
    match folder {
        "" | "." => name.to_owned(),
        f if f.ends_with('/') => format!("{f}{name}"),
        f => format!("{f}/{name}"),
    }
}

/// The files directly in `dir` (not recursive), by name, with their sizes; the names of
/// its sub-folders apart.
async fn list_folder(dir: &Location) -> Result<(Vec<(String, u64)>, Vec<String>)> {
    let listing = match dir.store.list_with_delimiter(Some(&dir.path)).await {
        Ok(l) => l,
        Err(object_store::Error::NotFound { .. }) => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(e.into()),
    };
    let mut files: Vec<(String, u64)> =
        listing.objects.iter().filter_map(|o| o.location.filename().map(|n| (n.to_owned(), o.size))).collect();
    files.sort();
    let mut folders: Vec<String> =
        listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
    folders.sort();
    Ok((files, folders))
}

/// Resolve one input argument (`what` names it in errors, e.g. "input file"):
/// - a file, local or in a bucket, as given;
/// - a folder or bucket prefix: the files directly in it whose names `take` accepts, in
///   name order (the others are listed in [`InputFiles::ignored`]);
/// - a pattern in the last path segment (`raw/video_*.jsonl.gz`, `s3://b/raw/*.jsonl`;
///   `*`, `?`, `[abc]` as in shell globs): the files it matches, in name order.
///
/// An argument that names nothing, a folder without a file `take` accepts and a pattern
/// matching nothing are `NotFound` errors naming the argument.
pub async fn expand_input(arg: &str, what: &str, take: impl Fn(&str) -> bool) -> Result<InputFiles> {
    let (folder, last) = match arg.rfind('/') {
        Some(pos) => (&arg[..=pos], &arg[pos + 1..]),
        None => (".", arg),
    };
    let loc = Location::parse(arg)?;
    // A name given with a trailing `/` is a folder: no HEAD request (some S3 servers
    // answer one on a prefix with an error instead of 404).
    if !arg.ends_with('/') {
        match loc.size().await {
            // A file, even one whose name holds pattern characters.
            Ok(size) => return Ok(InputFiles { files: vec![(arg.to_owned(), loc, size)], ignored: Vec::new() }),
            Err(GdoError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    if folder.contains(GLOB_CHARS) {
        return Err(GdoError::NotFound(format!(
            "{what} {arg} (patterns are matched in the file name only, not in folder names)"
        )));
    }
    if last.contains(GLOB_CHARS) {
        let pattern = glob::Pattern::new(last)
            .map_err(|e| GdoError::Usage(format!("{arg}: not a valid file-name pattern: {e}")))?;
        let dir = Location::parse(folder)?;
        let (names, _) = list_folder(&dir).await?;
        let files: Vec<(String, Location, u64)> = names
            .into_iter()
            .filter(|(n, _)| pattern.matches(n))
            .map(|(n, size)| (join_arg(folder, &n), dir.child(&n), size))
            .collect();
        if files.is_empty() {
            return Err(GdoError::NotFound(format!("{what} {arg} (no file matches the pattern)")));
        }
        return Ok(InputFiles { files, ignored: Vec::new() });
    }
    // Not a file: perhaps a folder (a local folder and a bucket prefix both land here).
    let (names, folders) = list_folder(&loc).await?;
    if names.is_empty() && folders.is_empty() {
        return Err(GdoError::NotFound(format!("{what} {arg}")));
    }
    let (taken, other): (Vec<_>, Vec<_>) = names.into_iter().partition(|(n, _)| take(n));
    if taken.is_empty() {
        return Err(GdoError::NotFound(format!("{what} {arg}: a folder without input files in it")));
    }
    let files = taken.into_iter().map(|(n, size)| (join_arg(arg, &n), loc.child(&n), size)).collect();
    let ignored = other
        .into_iter()
        .map(|(n, _)| join_arg(arg, &n))
        .chain(folders.iter().map(|f| join_arg(arg, &format!("{f}/"))))
        .collect();
    Ok(InputFiles { files, ignored })
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

    #[tokio::test]
    async fn inputs_expand_from_folders_and_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        for name in ["b.jsonl", "a.jsonl.gz", "notes.txt", "c.jsonl"] {
            std::fs::write(dir.path().join(name), "{}\n").unwrap();
        }
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/readme.md"), "not an input").unwrap();
        let jsonl = |n: &str| n.ends_with(".jsonl") || n.ends_with(".jsonl.gz");
        let names = |got: &InputFiles| got.files.iter().map(|(n, _, _)| n.clone()).collect::<Vec<_>>();

        // A folder: its JSONL files in name order; the rest reported, not dropped.
        let got = expand_input(&d, "input file", jsonl).await.unwrap();
        assert_eq!(names(&got), [format!("{d}/a.jsonl.gz"), format!("{d}/b.jsonl"), format!("{d}/c.jsonl")]);
        assert_eq!(got.ignored, [format!("{d}/notes.txt"), format!("{d}/sub/")]);
        assert!(got.files.iter().all(|(_, loc, size)| loc.local_path().is_some() && *size == 3));
        // The same with a trailing slash.
        let got = expand_input(&format!("{d}/"), "input file", jsonl).await.unwrap();
        assert_eq!(names(&got)[0], format!("{d}/a.jsonl.gz"));

        // A pattern: what it matches, whatever `take` says.
        let got = expand_input(&format!("{d}/[bn]*"), "input file", jsonl).await.unwrap();
        assert_eq!(names(&got), [format!("{d}/b.jsonl"), format!("{d}/notes.txt")]);
        assert!(got.ignored.is_empty());

        // A file as given.
        let got = expand_input(&format!("{d}/c.jsonl"), "input file", jsonl).await.unwrap();
        assert_eq!(names(&got), [format!("{d}/c.jsonl")]);

        // Errors name the argument.
        for (arg, want) in [
            (format!("{d}/nope.jsonl"), "not found: input file"),
            (format!("{d}/*.parquet"), "no file matches"),
            (format!("{d}/sub"), "without input files"),
            (format!("{d}/s*/x.jsonl"), "in the file name only"),
            (format!("{d}/[a.jsonl"), "not a valid file-name pattern"),
        ] {
            let err = expand_input(&arg, "input file", jsonl).await.unwrap_err().to_string();
            assert!(err.contains(want) && err.contains(&d), "{arg}: {err}");
        }

        // A file whose name holds pattern characters is read as named.
        std::fs::write(dir.path().join("sub/x[1].jsonl"), "{}\n").unwrap();
        let got = expand_input(&format!("{d}/sub/x[1].jsonl"), "input file", jsonl).await.unwrap();
        assert_eq!(names(&got), [format!("{d}/sub/x[1].jsonl")]);
    }

    #[test]
    fn unknown_scheme_is_a_clear_error() {
        let err = Location::parse("ftp://host/x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme 'ftp'"), "{err}");
    }
}
