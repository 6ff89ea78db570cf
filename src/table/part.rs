//! Parquet data files of gdo tables: the writer settings every table shares, and a
//! part writer that encodes row groups in parallel and hashes the bytes it uploads.

use std::collections::VecDeque;
use std::sync::Arc;

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
use object_store::buffered::BufWriter;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;

use super::FileEntry;
use crate::error::{GdoError, Result};
use crate::store::Location;

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
    /// Start the file `loc`; `rel` is its path as the table's log records it.
    pub(super) fn create(loc: &Location, rel: String, schema: SchemaRef) -> Result<Self> {
        let sink = HashingWriter {
            inner: BufWriter::new(Arc::clone(&loc.store), loc.path.clone()),
            hasher: Sha256::new(),
            bytes: 0,
        };
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
            schema: Some(self.schema),
        })
    }
}

fn encoder_stopped(rel: &str) -> GdoError {
    GdoError::Table(format!("{rel}: a row-group encoder stopped unexpectedly"))
}

/// Passes bytes to the object store while hashing them, so the checksum the commit
/// records costs no second read.
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
