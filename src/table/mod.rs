//! gdo tables are Delta Lake tables (through delta-rs).
//!
//! ```text
//! DIR/_delta_log/00000000000000000000.json   commits: put-if-absent, one per version
//! DIR/data/<run_id>/part-00000.parquet        the files a version adds
//! DIR/_rejects/                               a side table (a Delta table of its own)
//! ```
//! A run writes its files below its own `data/<run_id>/`, then commits one version that
//! adds them and removes the previous version's files (an overwrite). Nothing a run
//! writes is visible before its commit, so a killed run leaves the previous version
//! intact; readers read the files of one committed version. Two runs that write one
//! table at once both try to commit the next version: the store's put-if-absent lets
//! one win, and the other fails naming the winner's version (its files are removed).
//! Replaced files stay, and old versions stay readable, until `gdo vacuum`.
//!
//! Every commit records, in its `commitInfo` under `gdo`, the command line, the table
//! kind, each added file's sha256 and row count, the versions of the tables the run read
//! and the command's report: what `gdo history` lists and `gdo verify` checks against.
//! The kind (`pool`, `descriptors`, ...) is also a table property (`gdo.kind`), and the
//! version of each side table that goes with a version of the main table is one too
//! (`gdo.side._rejects`), so a reader of version N gets the rejects of that run.

mod part;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use datafusion::arrow::datatypes::SchemaRef;
use deltalake_core::kernel::engine::arrow_conversion::TryFromArrow;
use deltalake_core::kernel::transaction::{CommitBuilder, TransactionError};
use deltalake_core::kernel::{Action, Add, MetadataExt, Remove, StructType, new_metadata};
use deltalake_core::logstore::{StorageConfig, default_logstore};
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::prefix::PrefixStore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use part::{PartWriter, writer_properties};
pub(crate) use part::{encode_row_group, leaves_per_field};

use crate::error::{GdoError, Result};
use crate::store::Location;

/// Folder of the data files inside a table folder.
pub const DATA_DIR: &str = "data";
/// The Delta log folder: a folder holding it is a table.
pub const LOG_DIR: &str = "_delta_log";
/// The manifest of the table format gdo wrote before it wrote Delta tables.
pub const OLD_MANIFEST: &str = "_gdo_table.json";
/// Table property naming what a table is (`pool`, `descriptors`, ...).
pub const KIND_PROPERTY: &str = "gdo.kind";
/// Table property prefix: `gdo.side.<side>` = the side table's version for this version.
const SIDE_PROPERTY: &str = "gdo.side.";
/// Key of gdo's record in a commit's `commitInfo`.
const COMMIT_KEY: &str = "gdo";

/// One Parquet file of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the table folder (the side table's folder for a side table).
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// The file's Arrow schema (the table's schema when committed).
    #[serde(skip)]
    pub schema: Option<SchemaRef>,
}

/// The files of one table (the main one or a side table).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FileSet {
    pub rows: u64,
    pub files: Vec<FileEntry>,
}

impl FileSet {
    fn push(&mut self, entry: FileEntry) {
        self.rows += entry.rows;
        self.files.push(entry);
    }
}

/// Which version of a table to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsOf {
    Latest,
    Version(u64),
    /// The version current at this time (RFC 3339).
    Timestamp(String),
}

impl AsOf {
    /// Split `PATH@vN` or `PATH@<RFC 3339 time>` into the path and the version to read;
    /// any other path reads the latest version.
    pub fn split(arg: &str) -> (&str, AsOf) {
        if let Some((path, at)) = arg.rsplit_once('@') {
            if let Some(v) = at.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()) {
                return (path, AsOf::Version(v));
            }
            let b = at.as_bytes();
            if b.len() >= 10 && b[4] == b'-' && b[7] == b'-' && b[..4].iter().all(u8::is_ascii_digit) {
                return (path, AsOf::Timestamp(at.to_owned()));
            }
        }
        (arg, AsOf::Latest)
    }
}

/// The Delta table handle for `root` (nothing read yet). The log store is built on the
/// location's own store, so tables in any bucket gdo reads work without registration.
fn handle(root: &Location) -> DeltaTable {
    let prefixed = Arc::new(PrefixStore::new(Arc::clone(&root.store), root.path.clone()));
    let log_store = default_logstore(prefixed, Arc::clone(&root.store), &root.dir_url(), &StorageConfig::default());
    DeltaTable::new(log_store)
}

fn delta_err(root: &Location, e: DeltaTableError) -> GdoError {
    GdoError::Table(format!("{root}: {e}"))
}

/// A committed version of a table, as a reader sees it.
pub struct Snapshot {
    pub root: Location,
    pub version: u64,
    /// What the table is (`gdo.kind`); None for Delta tables other tools wrote.
    pub kind: Option<String>,
    /// Data files in path order (a run's parts in part order), with their sizes.
    pub files: Vec<(String, u64)>,
    /// Rows, from the files' statistics (None when a file has none).
    pub rows: Option<u64>,
    /// Side tables and the version of each that goes with this version.
    pub side_tables: BTreeMap<String, u64>,
    table_id: String,
    table: DeltaTable,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot({} v{})", self.root, self.version)
    }
}

impl Snapshot {
    /// `table_id@vN`: names this exact content (a rewritten table gets a new version).
    pub fn identity(&self) -> String {
        format!("{}@v{}", self.table_id, self.version)
    }
}

/// Is there a Delta table at `root`?
pub async fn is_table(root: &Location) -> Result<bool> {
    if let Some(path) = root.local_path() {
        // A file, or a folder without a log (listing below a file is an error locally).
        return Ok(path.join(LOG_DIR).is_dir() && is_table_listed(root).await?);
    }
    is_table_listed(root).await
}

async fn is_table_listed(root: &Location) -> Result<bool> {
    let log = root.child(LOG_DIR);
    Ok(log.store.list(Some(&log.path)).try_next().await?.is_some())
}

/// Read the version `at` of the table at `root`; None when there is no table there.
pub async fn open(root: &Location, at: &AsOf) -> Result<Option<Snapshot>> {
    if !is_table(root).await? {
        if root.child(OLD_MANIFEST).exists().await? {
            return Err(GdoError::Table(format!(
                "{root} was written by an older gdo in its own table format ({OLD_MANIFEST}); \
                 this gdo reads and writes Delta Lake tables: remove {root} and run the command \
                 that wrote it again."
            )));
        }
        return Ok(None);
    }
    let mut table = handle(root);
    let loaded = match at {
        AsOf::Latest => table.load().await,
        AsOf::Version(v) => table.load_version(*v).await,
        AsOf::Timestamp(t) => {
            let when = chrono_parse(t).map_err(|e| GdoError::Usage(format!("{root}@{t}: {e}")))?;
            table.load_with_datetime(when).await
        }
    };
    match loaded {
        Ok(()) => {}
        Err(DeltaTableError::NotATable(_)) if *at == AsOf::Latest => return Ok(None),
        Err(e) => return Err(delta_err(root, e)),
    }
    let state = table.snapshot().map_err(|e| delta_err(root, e))?;
    let version = state.version();
    let metadata = state.metadata();
    let config = metadata.configuration();
    let kind = config.get(KIND_PROPERTY).cloned();
    let side_tables =
        config.iter().filter_map(|(k, v)| Some((k.strip_prefix(SIDE_PROPERTY)?.to_owned(), v.parse().ok()?))).collect();
    let mut files = Vec::new();
    let mut rows = Some(0u64);
    for view in state.log_data() {
        files.push((view.path().into_owned(), view.size().max(0) as u64));
        rows = rows.zip(view.num_records()).map(|(a, b)| a + b as u64);
    }
    files.sort();
    let table_id = metadata.id().to_owned();
    Ok(Some(Snapshot { root: root.clone(), version, kind, files, rows, side_tables, table_id, table }))
}

fn chrono_parse(t: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}); e.g. 2026-12-07T10:00:00Z"))
}

/// Builds one version of a table; nothing is visible to readers before
/// [`TableWriter::commit`].
pub struct TableWriter {
    root: Location,
    kind: String,
    run_id: String,
    main: FileSet,
    side_tables: BTreeMap<String, FileSet>,
    /// The table as it was when the run started: its commit must follow that version.
    base: Option<Snapshot>,
    /// Versions of other tables the run read (`pool` -> `id@vN`), for the commit record.
    inputs: BTreeMap<String, serde_json::Value>,
}

impl TableWriter {
    /// Start a run writing a table of `kind` at `root`. Fails when `root` holds a table
    /// of another kind (a command never silently replaces, say, a pool by descriptors).
    pub async fn open(root: Location, kind: &str) -> Result<Self> {
        let base = open(&root, &AsOf::Latest).await?;
        if let Some(b) = &base {
            match &b.kind {
                Some(k) if k == kind => {}
                other => {
                    let what = other
                        .as_deref()
                        .map_or("a Delta table gdo did not write".to_owned(), |k| format!("a {k} table"));
                    return Err(GdoError::Usage(format!(
                        "{root} holds {what} (version {}); this command writes a {kind} table. \
                         Choose another output, or remove {root} first.",
                        b.version
                    )));
                }
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let run_id = format!("{}-{}", now.as_millis(), &nonce[..8]);
        Ok(Self {
            root,
            kind: kind.to_owned(),
            run_id,
            main: FileSet::default(),
            side_tables: BTreeMap::new(),
            base,
            inputs: BTreeMap::new(),
        })
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The version this run's commit will follow (None: the table is new).
    pub fn base_version(&self) -> Option<u64> {
        self.base.as_ref().map(|b| b.version)
    }

    /// Record that the run read `snapshot` as its input `name`.
    pub fn read_input(&mut self, name: &str, input: serde_json::Value) {
        self.inputs.insert(name.to_owned(), input);
    }

    /// The folder of `side` (None: the main table).
    fn table_root(&self, side: Option<&str>) -> Location {
        side.map_or_else(|| self.root.clone(), |s| self.root.child(s))
    }

    /// Open the next Parquet part of the main table (`side = None`) or of a side table.
    pub fn open_part(&self, side: Option<&str>, schema: SchemaRef) -> Result<PartWriter> {
        let index = match side {
            None => self.main.files.len(),
            Some(s) => self.side_tables.get(s).map_or(0, |f| f.files.len()),
        };
        let rel = format!("{DATA_DIR}/{}/part-{index:05}.parquet", self.run_id);
        PartWriter::create(&self.table_root(side).child(&rel), rel, schema)
    }

    /// Write a whole Parquet file already encoded in memory as the next part (one put),
    /// with its row count and schema.
    pub async fn add_file(&mut self, side: Option<&str>, bytes: Vec<u8>, rows: u64, schema: SchemaRef) -> Result<()> {
        let index = match side {
            None => self.main.files.len(),
            Some(s) => self.side_tables.get(s).map_or(0, |f| f.files.len()),
        };
        let rel = format!("{DATA_DIR}/{}/part-{index:05}.parquet", self.run_id);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.table_root(side).child(&rel).write_all(bytes).await?;
        self.add_part(side, FileEntry { path: rel, rows, bytes: size, sha256, schema: Some(schema) });
        Ok(())
    }

    /// Record a finished part.
    pub fn add_part(&mut self, side: Option<&str>, entry: FileEntry) {
        match side {
            None => self.main.push(entry),
            Some(s) => self.side_tables.entry(s.to_owned()).or_default().push(entry),
        }
    }

    /// Rows in the main table so far.
    pub fn rows(&self) -> u64 {
        self.main.rows
    }

    /// Make the run visible: commit each side table, then the main table's next version
    /// (which names the side versions). `report` is recorded in the commit. On a
    /// conflict with another writer the run's files are removed and the error says so.
    pub async fn commit(self, report: serde_json::Value) -> Result<Committed> {
        let mut side_versions = BTreeMap::new();
        match self.try_commit(&report, &mut side_versions).await {
            Ok(done) => Ok(done),
            Err(e) => {
                // A side version already committed keeps its files (its log names them);
                // no main version points at it.
                self.remove_files(&side_versions).await;
                Err(e)
            }
        }
    }

    async fn try_commit(
        &self,
        report: &serde_json::Value,
        side_versions: &mut BTreeMap<String, u64>,
    ) -> Result<Committed> {
        for (side, files) in &self.side_tables {
            let root = self.table_root(Some(side));
            let base = open(&root, &AsOf::Latest).await?;
            let kind = format!("{}{side}", self.kind);
            let v = self.commit_one(&root, &kind, base.as_ref(), files, HashMap::new(), report).await?;
            side_versions.insert(side.clone(), v);
        }
        let config = side_versions.iter().map(|(s, v)| (format!("{SIDE_PROPERTY}{s}"), v.to_string())).collect();
        let version = self.commit_one(&self.root, &self.kind, self.base.as_ref(), &self.main, config, report).await?;
        Ok(Committed {
            version,
            rows: self.main.rows,
            files: self.main.files.len(),
            side_versions: side_versions.clone(),
        })
    }

    /// Commit `files` as the next version of the table at `root` (after `base`).
    async fn commit_one(
        &self,
        root: &Location,
        kind: &str,
        base: Option<&Snapshot>,
        files: &FileSet,
        mut config: HashMap<String, String>,
        report: &serde_json::Value,
    ) -> Result<u64> {
        let schema = files.files.iter().find_map(|f| f.schema.clone()).ok_or_else(|| {
            GdoError::Table(format!("{root}: a commit needs at least one data file (it may have no rows)"))
        })?;
        let delta_schema = StructType::try_from_arrow(schema.as_ref())
            .map_err(|e| GdoError::Table(format!("{root}: the table's columns have no Delta type: {e}")))?;
        config.insert(KIND_PROPERTY.to_owned(), kind.to_owned());
        let metadata = new_metadata(&delta_schema, Vec::<String>::new(), config)
            .map_err(|e| GdoError::Table(format!("{root}: {e}")))?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default();
        let mut actions = Vec::new();
        let operation = match base {
            None => {
                let protocol: deltalake_core::kernel::Protocol =
                    serde_json::from_value(serde_json::json!({ "minReaderVersion": 1, "minWriterVersion": 2 }))?;
                actions.push(Action::Protocol(protocol.clone()));
                actions.push(Action::Metadata(metadata.clone()));
                DeltaOperation::Create { mode: SaveMode::ErrorIfExists, location: root.dir_url(), protocol, metadata }
            }
            Some(b) => {
                // Same table id: a new version of this table, not a new table.
                let metadata =
                    metadata.with_table_id(b.table_id.clone()).map_err(|e| GdoError::Table(format!("{root}: {e}")))?;
                actions.push(Action::Metadata(metadata));
                for (path, size) in &b.files {
                    actions.push(Action::Remove(Remove {
                        path: path.clone(),
                        data_change: true,
                        deletion_timestamp: Some(now),
                        extended_file_metadata: Some(true),
                        partition_values: Some(HashMap::new()),
                        size: Some(*size as i64),
                        ..Default::default()
                    }));
                }
                DeltaOperation::Write { mode: SaveMode::Overwrite, partition_by: None, predicate: None }
            }
        };
        for f in &files.files {
            actions.push(Action::Add(Add {
                path: f.path.clone(),
                partition_values: HashMap::new(),
                size: f.bytes as i64,
                modification_time: now,
                data_change: true,
                stats: Some(serde_json::json!({ "numRecords": f.rows }).to_string()),
                ..Default::default()
            }));
        }
        let record = serde_json::json!({
            "kind": kind,
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "writer": format!("gdo {}", env!("CARGO_PKG_VERSION")),
            "run_id": self.run_id,
            "rows": files.rows,
            "files": files.files,
            "inputs": self.inputs,
            "report": report,
        });
        let app = HashMap::from([(COMMIT_KEY.to_owned(), record)]);
        let table = base.map(|b| &b.table).unwrap_or(&handle(root)).clone();
        let state = match base {
            Some(b) => Some(b.table.snapshot().map_err(|e| delta_err(root, e))?),
            None => None,
        };
        let done = CommitBuilder::default()
            .with_actions(actions)
            .with_app_metadata(app)
            .build(state.map(|s| s as _), table.log_store(), operation)
            .await
            .map_err(|e| commit_error(root, base.map(|b| b.version), e))?;
        Ok(done.version())
    }

    /// Delete what the run wrote but `committed` side tables (best effort: `gdo vacuum`
    /// removes what is left).
    async fn remove_files(&self, committed: &BTreeMap<String, u64>) {
        for side in self.side_tables.keys().filter(|s| !committed.contains_key(*s)) {
            let _ = delete_under(&self.table_root(Some(side)).child(&format!("{DATA_DIR}/{}", self.run_id))).await;
        }
        let _ = delete_under(&self.root.child(&format!("{DATA_DIR}/{}", self.run_id))).await;
    }

    /// Give up the run: delete what it wrote. The table stays as it was.
    pub async fn abort(self) -> Result<()> {
        self.remove_files(&BTreeMap::new()).await;
        Ok(())
    }
}

/// A clear message for a commit that lost to another writer.
fn commit_error(root: &Location, base: Option<u64>, e: DeltaTableError) -> GdoError {
    let lost = match &e {
        DeltaTableError::VersionAlreadyExists(v) => Some(*v),
        DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_),
        } => Some(base.map_or(0, |b| b + 1)),
        _ => None,
    };
    match lost {
        Some(v) => GdoError::Table(format!(
            "{root}: another writer committed version {v} while this run was writing ({e}); \
             this run's files were removed and the table holds the other run's version. \
             Rerun to replace it."
        )),
        None => delta_err(root, e),
    }
}

/// What a commit made.
#[derive(Debug, Clone, Serialize)]
pub struct Committed {
    pub version: u64,
    pub rows: u64,
    pub files: usize,
    /// Side tables and the version committed for each.
    pub side_versions: BTreeMap<String, u64>,
}

/// Delete every object under `loc` (already-missing objects are fine).
pub async fn delete_under(loc: &Location) -> Result<()> {
    let paths: Vec<_> = loc.store.list(Some(&loc.path)).map_ok(|m| m.location).try_collect().await?;
    for p in paths {
        match loc.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// gdo's record of one commit, as `gdo history` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub version: u64,
    pub timestamp_ms: Option<i64>,
    pub operation: Option<String>,
    /// The command line that wrote it (None for other writers).
    pub command: Option<String>,
    pub kind: Option<String>,
    pub rows: Option<u64>,
    /// Versions of the tables the run read.
    pub inputs: serde_json::Value,
    /// The commit's gdo record (files with checksums, the command's report).
    #[serde(skip)]
    pub record: Option<serde_json::Value>,
}

/// Every version of the table at `root` still in its log, newest first.
pub async fn history(root: &Location) -> Result<Vec<HistoryEntry>> {
    let snap = open(root, &AsOf::Latest).await?.ok_or_else(|| no_table(root))?;
    let log_store = snap.table.log_store();
    let mut out = Vec::new();
    for version in (0..=snap.version).rev() {
        let Some(bytes) = log_store.read_commit_entry(version).await.map_err(|e| delta_err(root, e))? else {
            break; // older commits were cleaned up with the log's retention
        };
        let info = commit_info(&bytes);
        let record = info.as_ref().and_then(|i| i.get(COMMIT_KEY)).cloned();
        let field = |k: &str| record.as_ref().and_then(|r| r.get(k)).cloned();
        out.push(HistoryEntry {
            version,
            timestamp_ms: info.as_ref().and_then(|i| i.get("timestamp")).and_then(|t| t.as_i64()),
            operation: info.as_ref().and_then(|i| i.get("operation")).and_then(|o| o.as_str()).map(str::to_owned),
            command: field("command").and_then(|c| c.as_str().map(str::to_owned)),
            kind: field("kind").and_then(|c| c.as_str().map(str::to_owned)),
            rows: field("rows").and_then(|r| r.as_u64()),
            inputs: field("inputs").unwrap_or(serde_json::Value::Null),
            record,
        });
    }
    Ok(out)
}

/// The `commitInfo` object of a commit file.
fn commit_info(bytes: &[u8]) -> Option<serde_json::Value> {
    bytes.split(|&b| b == b'\n').find_map(|line| {
        let mut v: serde_json::Value = serde_json::from_slice(line).ok()?;
        v.get_mut("commitInfo").map(serde_json::Value::take)
    })
}

fn no_table(root: &Location) -> GdoError {
    GdoError::NotFound(format!("{root} (no table there: no {LOG_DIR} folder)"))
}

/// What `gdo verify` found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub table: String,
    pub version: u64,
    pub files: usize,
    pub bytes: u64,
    /// Files checked against a recorded sha256.
    pub checksummed: usize,
    /// Files with no recorded checksum (written by another tool): size checked only.
    pub size_only: usize,
    /// Side tables verified, with their versions.
    pub side_tables: BTreeMap<String, u64>,
}

/// Check every data file of version `at` of the table (and its side tables) against
/// its commit: present, the recorded size, the recorded sha256. The first file that
/// fails is named in the error.
pub async fn verify(root: &Location, at: &AsOf) -> Result<VerifyReport> {
    let snap = open(root, at).await?.ok_or_else(|| no_table(root))?;
    let mut report = verify_snapshot(&snap).await?;
    for (side, v) in snap.side_tables.clone() {
        let side_root = root.child(&side);
        let side_snap = open(&side_root, &AsOf::Version(v)).await?.ok_or_else(|| no_table(&side_root))?;
        let r = verify_snapshot(&side_snap).await?;
        report.files += r.files;
        report.bytes += r.bytes;
        report.checksummed += r.checksummed;
        report.size_only += r.size_only;
        report.side_tables.insert(side, v);
    }
    Ok(report)
}

async fn verify_snapshot(snap: &Snapshot) -> Result<VerifyReport> {
    let root = &snap.root;
    // Checksums from the commits that added the files: walk back until every file is found.
    let mut sums: HashMap<String, (u64, String)> = HashMap::new();
    let log_store = snap.table.log_store();
    let wanted: std::collections::HashSet<&str> = snap.files.iter().map(|(p, _)| p.as_str()).collect();
    for version in (0..=snap.version).rev() {
        if wanted.iter().all(|p| sums.contains_key(*p)) {
            break;
        }
        let Some(bytes) = log_store.read_commit_entry(version).await.map_err(|e| delta_err(root, e))? else { break };
        let files = commit_info(&bytes)
            .and_then(|mut i| i.get_mut(COMMIT_KEY).and_then(|r| r.get_mut("files")).map(serde_json::Value::take));
        let entries: Vec<FileEntry> = files.and_then(|f| serde_json::from_value(f).ok()).unwrap_or_default();
        for e in entries {
            sums.entry(e.path).or_insert((e.bytes, e.sha256));
        }
    }
    let mut report = VerifyReport { table: root.to_string(), version: snap.version, ..VerifyReport::default() };
    for (path, size) in &snap.files {
        let loc = root.child(path);
        let data = match loc.read_all().await {
            Ok(d) => d,
            Err(GdoError::NotFound(_)) => {
                return Err(GdoError::Table(format!("{loc}: missing (version {} of {root} lists it)", snap.version)));
            }
            Err(e) => return Err(e),
        };
        if data.len() as u64 != *size {
            return Err(GdoError::Table(format!(
                "{loc}: {} bytes where version {} of the table records {size}: the file was changed after commit",
                data.len(),
                snap.version
            )));
        }
        report.files += 1;
        report.bytes += *size;
        match sums.get(path) {
            Some((_, sum)) => {
                let got = hex::encode(Sha256::digest(&data));
                if &got != sum {
                    return Err(GdoError::Table(format!(
                        "{loc}: sha256 {got} where the commit recorded {sum}: the file was changed after commit"
                    )));
                }
                report.checksummed += 1;
            }
            None => report.size_only += 1,
        }
    }
    Ok(report)
}

/// What `gdo vacuum` removed (or would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumReport {
    pub table: String,
    pub dry_run: bool,
    pub files_deleted: Vec<String>,
    /// Side tables vacuumed, with their own counts.
    pub side_tables: BTreeMap<String, usize>,
}

/// Remove the files no version newer than `retention` needs: replaced files and the
/// leftovers of killed or failed runs, once older than the retention period (readers of
/// an old version, and runs still writing, keep theirs within it).
pub async fn vacuum(root: &Location, retention: std::time::Duration, dry_run: bool) -> Result<VacuumReport> {
    let mut report = vacuum_one(root, retention, dry_run).await?;
    let sides: Vec<String> =
        open(root, &AsOf::Latest).await?.map(|s| s.side_tables.into_keys().collect()).unwrap_or_default();
    for side in sides {
        let r = vacuum_one(&root.child(&side), retention, dry_run).await?;
        report.side_tables.insert(side, r.files_deleted.len());
        report.files_deleted.extend(r.files_deleted.into_iter().map(|f| format!("{}/{f}", r.table)));
    }
    Ok(report)
}

async fn vacuum_one(root: &Location, retention: std::time::Duration, dry_run: bool) -> Result<VacuumReport> {
    let snap = open(root, &AsOf::Latest).await?.ok_or_else(|| no_table(root))?;
    let retention =
        chrono::Duration::from_std(retention).map_err(|_| GdoError::Usage("--retain: too long a period".into()))?;
    // delta-rs decides what no version within the retention period needs (full mode:
    // also files no commit ever added, i.e. killed runs' leftovers); gdo deletes those
    // below `data/` only, so the reports beside the table stay.
    let (_, metrics) = snap
        .table
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_mode(deltalake_core::operations::vacuum::VacuumMode::Full)
        .with_dry_run(true)
        .await
        .map_err(|e| delta_err(root, e))?;
    let mut files: Vec<String> =
        metrics.files_deleted.into_iter().filter(|f| f.starts_with(&format!("{DATA_DIR}/"))).collect();
    files.sort();
    if !dry_run {
        for f in &files {
            let loc = root.child(f);
            match loc.store.delete(&loc.path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(VacuumReport { table: root.to_string(), dry_run, files_deleted: files, side_tables: BTreeMap::new() })
}
