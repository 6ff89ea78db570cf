//! gdo table folders: Parquet files plus a manifest written last.
//!
//! ```text
//! DIR/_gdo_table.json                 the commit point: files, row counts, sha256
//! DIR/data/<run_id>/part-00000.parquet
//! DIR/data/<run_id>/_rejects/part-00000.parquet   (side tables, e.g. ingest rejects)
//! ```
//! A run writes only below its own `data/<run_id>/`; the manifest is written in one
//! atomic put (a local rename, or one S3/GCS/Azure PUT) after every file is complete,
//! and only then are other runs' files deleted. Readers read only the files the
//! manifest lists, so a killed run leaves the previous table intact and no half table.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::file::writer::SerializedFileWriter;
use datafusion::parquet::schema::types::{ColumnPath, SchemaDescriptor};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use crate::error::{GdoError, Result};
use crate::store::Location;

/// File name of the manifest inside a table folder.
pub const MANIFEST: &str = "_gdo_table.json";
/// Folder of the data files inside a table folder.
pub const DATA_DIR: &str = "data";
const FORMAT: &str = "gdo-table";
const FORMAT_VERSION: u32 = 1;

/// One Parquet file of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the table folder.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
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

/// The manifest: what a committed table holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// What the table is (`pool`, `descriptors`, ...).
    pub kind: String,
    pub run_id: String,
    pub created_unix_ms: u64,
    pub writer: String,
    #[serde(flatten)]
    pub main: FileSet,
    /// Side tables written by the same run, e.g. `_rejects`.
    #[serde(default)]
    pub side_tables: BTreeMap<String, FileSet>,
    /// Free-form facts about the run (counts, options).
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// Columns whose values are (nearly) all distinct: free text, pair ids and text hashes.
/// A dictionary never pays off for them, so they are written plain: on the 250k-pair
/// bench pool that makes the file 4% smaller and spares the writer hashing every value
/// before it falls back to plain encoding anyway.
const PLAIN_COLUMNS: &[&str] = &["qa_uid", "question", "answer", "text_hash", "source_id"];

/// Writer properties shared by every gdo table: zstd, statistics, 64k-row groups.
/// Fixed settings keep the bytes of a table a function of its rows alone.
pub fn writer_properties() -> WriterProperties {
    let mut builder = WriterProperties::builder()
        // Level 1: on the 250k-pair bench pool it writes 5% larger files than level 3
        // and takes 0.4 s (about a fifth) off ingest.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1).expect("valid zstd level")))
        .set_max_row_group_row_count(Some(65_536))
        .set_created_by(format!("gdo {}", env!("CARGO_PKG_VERSION")));
    for name in PLAIN_COLUMNS {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*name), false);
    }
    // Frame URIs: 60% of a pool's uncompressed bytes, and the dictionary overflows
    // early in every row group, then falls back to plain; min/max over URIs serve no
    // query. Row numbers (`pool_index`, `source_line`) are all distinct, so their
    // dictionaries only repeat the values. Without these dictionaries and the frame
    // statistics, ingest of the 50k-pair bench pool executes 4.6% fewer instructions
    // and writes a 5% smaller file (callgrind).
    let frames = ColumnPath::from(vec!["frames".to_owned(), "list".to_owned(), "item".to_owned()]);
    builder = builder
        .set_column_dictionary_enabled(frames.clone(), false)
        .set_column_statistics_enabled(frames, EnabledStatistics::None);
    for name in ["pool_index", "source_line"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    builder.build()
}

/// Builds one table folder; nothing is visible to readers before [`TableWriter::commit`].
pub struct TableWriter {
    root: Location,
    kind: String,
    run_id: String,
    main: FileSet,
    side_tables: BTreeMap<String, FileSet>,
}

impl TableWriter {
    /// Start a run writing a table of `kind` into `root`.
    pub fn new(root: Location, kind: &str) -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let run_id = format!("{}-{}", now.as_millis(), &nonce[..8]);
        Self { root, kind: kind.to_owned(), run_id, main: FileSet::default(), side_tables: BTreeMap::new() }
    }

    pub fn root(&self) -> &Location {
        &self.root
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Open the next Parquet part of the main table (`side = None`) or of a side table.
    pub fn open_part(&self, side: Option<&str>, schema: SchemaRef) -> Result<PartWriter> {
        let index = match side {
            None => self.main.files.len(),
            Some(s) => self.side_tables.get(s).map_or(0, |f| f.files.len()),
        };
        let rel = match side {
            None => format!("{DATA_DIR}/{}/part-{index:05}.parquet", self.run_id),
            Some(s) => format!("{DATA_DIR}/{}/{s}/part-{index:05}.parquet", self.run_id),
        };
        let loc = self.root.child(&rel);
        let sink = HashingWriter {
            inner: BufWriter::new(Arc::clone(&loc.store), loc.path.clone()),
            hasher: Sha256::new(),
            bytes: 0,
        };
        PartWriter::new(rel, schema, sink)
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

    /// Make the run visible: write the manifest, then delete every other run's files.
    pub async fn commit(self, meta: serde_json::Value) -> Result<Manifest> {
        let created_unix_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default();
        let manifest = Manifest {
            format: FORMAT.to_owned(),
            version: FORMAT_VERSION,
            kind: self.kind.clone(),
            run_id: self.run_id.clone(),
            created_unix_ms,
            writer: format!("gdo {}", env!("CARGO_PKG_VERSION")),
            main: self.main,
            side_tables: self.side_tables,
            meta,
        };
        let body = serde_json::to_vec_pretty(&manifest)?;
        self.root.child(MANIFEST).write_all(body).await?;
        remove_other_runs(&self.root, &self.run_id).await?;
        Ok(manifest)
    }

    /// Give up the run: delete what it wrote. The previous table stays as it was.
    pub async fn abort(self) -> Result<()> {
        delete_prefix(&self.root, &format!("{DATA_DIR}/{}", self.run_id)).await
    }
}

/// Delete the data of every run but `keep` (old tables, killed runs' leftovers).
async fn remove_other_runs(root: &Location, keep: &str) -> Result<()> {
    let data = root.child(DATA_DIR);
    let listing = data.store.list_with_delimiter(Some(&data.path)).await?;
    for prefix in listing.common_prefixes {
        if prefix.filename() != Some(keep) {
            let rel = format!("{DATA_DIR}/{}", prefix.filename().unwrap_or_default());
            delete_prefix(root, &rel).await?;
        }
    }
    Ok(())
}

async fn delete_prefix(root: &Location, rel: &str) -> Result<()> {
    delete_under(&root.child(rel)).await
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

/// Encodes one row group: `batches` are written in order to `writers` (one per Parquet
/// leaf column, as [`ArrowRowGroupWriterFactory::create_column_writers`] gives them),
/// the columns side by side on the rayon pool. Fed the slices `ArrowWriter::write`
/// would feed its row group, the chunks hold the bytes `ArrowWriter` writes.
/// `leaves` is each field's number of leaf columns ([`leaves_per_field`]).
pub(crate) fn encode_row_group(
    schema: &SchemaRef,
    leaves: &[usize],
    writers: Vec<ArrowColumnWriter>,
    batches: &[RecordBatch],
) -> Result<Vec<ArrowColumnChunk>> {
    let mut writers = writers.into_iter();
    let mut fields = Vec::with_capacity(schema.fields().len());
    for ((i, field), &n) in schema.fields().iter().enumerate().zip(leaves) {
        let own: Vec<ArrowColumnWriter> = writers.by_ref().take(n).collect();
        if own.len() != n {
            return Err(GdoError::Table(format!("parquet writer: no column writer for field {}", field.name())));
        }
        fields.push((i, field, own));
    }
    let encoded = fields
        .into_par_iter()
        .map(|(i, field, mut own)| {
            for batch in batches {
                for (writer, leaf) in own.iter_mut().zip(compute_leaves(field, batch.column(i))?) {
                    writer.write(&leaf)?;
                }
            }
            own.into_iter().map(ArrowColumnWriter::close).collect::<ParquetResult<Vec<_>>>()
        })
        .collect::<ParquetResult<Vec<_>>>()?;
    Ok(encoded.into_iter().flatten().collect())
}

/// Each top-level field's number of Parquet leaf columns (more than one only for
/// structs and maps), as the file's schema descriptor lays them out.
pub(crate) fn leaves_per_field(descr: &SchemaDescriptor, fields: usize) -> Vec<usize> {
    let mut leaves = vec![0; fields];
    for leaf in 0..descr.num_columns() {
        if let Some(n) = leaves.get_mut(descr.get_column_root_idx(leaf)) {
            *n += 1;
        }
    }
    leaves
}

/// Row groups left encoding while the next one fills (a second one is waited for).
/// Two gave the same ingest time with more memory held.
const GROUPS_IN_FLIGHT: usize = 1;

/// One Parquet file being written.
///
/// Rows are cut into row groups where `ArrowWriter` cuts them, and every full group is
/// encoded on the rayon pool (its columns side by side) while the caller goes on
/// producing rows; finished groups are appended in order and streamed to the store.
/// The file's bytes are those `ArrowWriter` writes for the same batches; only the
/// encoding is no longer one serial stage (on the 250k-pair ingest bench it was a
/// third of the CPU time, on one thread).
pub struct PartWriter {
    rel: String,
    schema: SchemaRef,
    file: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    group_rows: usize,
    /// Leaf columns of each field.
    leaves: Arc<[usize]>,
    /// Slices of the row group being filled, in order.
    open: Vec<RecordBatch>,
    open_rows: usize,
    groups_started: usize,
    encoding: VecDeque<oneshot::Receiver<Result<Vec<ArrowColumnChunk>>>>,
    sink: HashingWriter,
    rows: u64,
}

impl PartWriter {
    fn new(rel: String, schema: SchemaRef, sink: HashingWriter) -> Result<Self> {
        let props = writer_properties();
        let group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let (file, factory) =
            ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props))?.into_serialized_writer()?;
        let leaves = leaves_per_field(file.schema_descr(), schema.fields().len()).into();
        Ok(Self {
            rel,
            schema,
            file,
            factory,
            group_rows,
            leaves,
            open: Vec::new(),
            open_rows: 0,
            groups_started: 0,
            encoding: VecDeque::new(),
            sink,
            rows: 0,
        })
    }

    pub async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_columns() != self.schema.fields().len()
            || batch.columns().iter().zip(self.schema.fields()).any(|(c, f)| c.data_type() != f.data_type())
        {
            return Err(GdoError::Table(format!("{}: batch does not match the table schema", self.rel)));
        }
        self.rows += batch.num_rows() as u64;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.group_rows - self.open_rows).min(batch.num_rows() - offset);
            self.open.push(batch.slice(offset, take));
            self.open_rows += take;
            offset += take;
            if self.open_rows == self.group_rows {
                self.start_group()?;
            }
        }
        // Append what is done without waiting; wait only when too many are in flight.
        while let Some(front) = self.encoding.front_mut() {
            match front.try_recv() {
                Ok(chunks) => {
                    self.encoding.pop_front();
                    self.append(chunks?).await?;
                }
                Err(oneshot::error::TryRecvError::Empty) if self.encoding.len() <= GROUPS_IN_FLIGHT => break,
                Err(oneshot::error::TryRecvError::Empty) => self.append_next().await?,
                Err(oneshot::error::TryRecvError::Closed) => return Err(encoder_stopped(&self.rel)),
            }
        }
        Ok(())
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Hand the open row group to the rayon pool.
    fn start_group(&mut self) -> Result<()> {
        let writers = self.factory.create_column_writers(self.groups_started)?;
        self.groups_started += 1;
        let batches = std::mem::take(&mut self.open);
        self.open_rows = 0;
        let (schema, leaves) = (Arc::clone(&self.schema), Arc::clone(&self.leaves));
        let (tx, rx) = oneshot::channel();
        rayon::spawn(move || {
            // The receiver is gone only when the writer was dropped after an error.
            let _ = tx.send(encode_row_group(&schema, &leaves, writers, &batches));
        });
        self.encoding.push_back(rx);
        Ok(())
    }

    async fn append_next(&mut self) -> Result<()> {
        let Some(rx) = self.encoding.pop_front() else { return Ok(()) };
        let chunks = rx.await.map_err(|_| encoder_stopped(&self.rel))??;
        self.append(chunks).await
    }

    /// Append an encoded row group and pass its bytes on.
    async fn append(&mut self, chunks: Vec<ArrowColumnChunk>) -> Result<()> {
        let mut group = self.file.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut group)?;
        }
        group.close()?;
        self.file.flush().map_err(|e| GdoError::io(&self.rel, e))?;
        // Offsets are counted by the file writer, so taking its buffer is safe.
        let bytes = std::mem::take(self.file.inner_mut());
        self.sink.write(bytes).await
    }

    /// Finish the file (footer written, upload completed) and describe it.
    pub async fn finish(mut self) -> Result<FileEntry> {
        if self.open_rows > 0 {
            self.start_group()?;
        }
        while !self.encoding.is_empty() {
            self.append_next().await?;
        }
        let tail = self.file.into_inner()?;
        self.sink.write(tail).await?;
        self.sink.inner.shutdown().await.map_err(|e| GdoError::io(&self.rel, e))?;
        Ok(FileEntry {
            path: self.rel,
            rows: self.rows,
            bytes: self.sink.bytes,
            sha256: hex::encode(self.sink.hasher.finalize()),
        })
    }
}

fn encoder_stopped(rel: &str) -> GdoError {
    GdoError::Table(format!("{rel}: a row-group encoder stopped unexpectedly"))
}

/// Passes bytes to the object store while hashing them, so the manifest's checksum
/// costs no second read.
struct HashingWriter {
    inner: BufWriter,
    hasher: Sha256,
    bytes: u64,
}

impl HashingWriter {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.hasher.update(&bytes);
        self.bytes += bytes.len() as u64;
        self.inner.put(Bytes::from(bytes)).await?;
        Ok(())
    }
}

/// What a folder holds, as far as gdo is concerned.
pub enum TableFolder {
    /// A committed gdo table.
    Gdo(Box<Manifest>),
    /// Parquet files without a manifest (written by another tool).
    Plain,
}

/// Read the manifest of `root`, if it is a committed gdo table.
pub async fn read_manifest(root: &Location) -> Result<Option<Manifest>> {
    let loc = root.child(MANIFEST);
    match loc.store.get(&loc.path).await {
        Ok(r) => {
            let body = r.bytes().await?;
            let manifest: Manifest = serde_json::from_slice(&body)
                .map_err(|e| GdoError::Table(format!("{loc}: not a valid gdo manifest: {e}")))?;
            if manifest.format != FORMAT || manifest.version > FORMAT_VERSION {
                return Err(GdoError::Table(format!(
                    "{loc}: unsupported table format {} v{} (this gdo reads {FORMAT} v{FORMAT_VERSION})",
                    manifest.format, manifest.version
                )));
            }
            Ok(Some(manifest))
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Classify a folder: a committed gdo table, plain Parquet, or an error for a gdo
/// folder without a manifest (an interrupted first run) or an empty/missing folder.
pub async fn inspect_folder(root: &Location) -> Result<TableFolder> {
    if let Some(m) = read_manifest(root).await? {
        return Ok(TableFolder::Gdo(Box::new(m)));
    }
    let data = root.child(DATA_DIR);
    let has_gdo_data = data.store.list(Some(&data.path)).try_next().await?.is_some();
    if has_gdo_data {
        return Err(GdoError::Table(format!(
            "{root} holds gdo data files but no {MANIFEST}: the run that wrote it did not \
             finish. Rerun it; readers never trust a table without a manifest."
        )));
    }
    let any_parquet = root
        .store
        .list(Some(&root.path))
        .try_filter(|m| futures::future::ready(m.location.as_ref().ends_with(".parquet")))
        .try_next()
        .await?
        .is_some();
    if any_parquet {
        Ok(TableFolder::Plain)
    } else {
        Err(GdoError::NotFound(format!("{root} (no gdo table and no Parquet files there)")))
    }
}

/// Verify every file of a committed table against its manifest (size and sha256).
pub async fn verify(root: &Location, manifest: &Manifest) -> Result<()> {
    let all = manifest.main.files.iter().chain(manifest.side_tables.values().flat_map(|s| s.files.iter()));
    for f in all {
        let data = root.child(&f.path).read_all().await?;
        let sum = hex::encode(Sha256::digest(&data));
        if data.len() as u64 != f.bytes || sum != f.sha256 {
            return Err(GdoError::Table(format!(
                "{}: checksum mismatch with {MANIFEST} (the file was changed after commit)",
                root.child(&f.path)
            )));
        }
    }
    Ok(())
}
