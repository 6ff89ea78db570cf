//! JSON lines in: the one reader of JSONL files for ingest, merge, selection metrics
//! and exclusion lists.
//!
//! - Names: [`is_jsonl_name`] (`.jsonl`, `.ndjson`, `.json`, each optionally `.gz`)
//!   picks the files of a folder; a file named explicitly is read whatever its name.
//! - Bytes: [`open`] reads a local file directly or an object-store object through a
//!   blocking bridge, and un-gzips it when it starts with the gzip magic (not by name).
//! - Lines: [`Lines`] hands out the non-blank lines with their numbers (blank ones
//!   counted); [`ChunkCutter`] cuts the stream into chunks of whole lines for parsers
//!   that work a chunk at a time (ingest).
//! - Values: [`parse_value`] reads a line as JSON with one rule for the bare `NaN`,
//!   `Infinity` and `-Infinity` Python's `json.dumps` writes: outside strings they
//!   become the strings `"NaN"`, `"Infinity"`, `"-Infinity"`, which [`number`] reads
//!   back as non-finite numbers.

use std::io::{BufRead, BufReader, Read};

use flate2::read::MultiGzDecoder;
use futures::TryStreamExt;
use serde_json::Value;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::{GdoError, Result};
use crate::store::Location;

/// Is `name` a JSON-lines file name: `.jsonl`, `.ndjson` or `.json` (the reference's
/// descriptor shards), plain or `.gz`, in any case?
pub fn is_jsonl_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let plain = lower.strip_suffix(".gz").unwrap_or(&lower);
    [".jsonl", ".ndjson", ".json"].iter().any(|s| plain.ends_with(s))
}

/// Counts bytes as they are read (for progress bars).
struct Counting<R, F> {
    inner: R,
    on_read: F,
}

impl<R: Read, F: FnMut(usize)> Read for Counting<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_read)(n);
        Ok(n)
    }
}

/// Open `loc` for reading as text lines, un-gzipped when it starts with the gzip magic;
/// `on_read` sees how many raw bytes each read took. Blocking: call it off the async
/// runtime's worker threads (`spawn_blocking`), inside it.
pub fn open(loc: &Location, on_read: impl FnMut(usize) + Send + 'static) -> Result<Box<dyn BufRead + Send>> {
    // A local file is read directly: the object store's local stream hands every 8 KiB
    // read through the blocking pool, which cost about a tenth of ingest's CPU time.
    let source: Box<dyn Read + Send> = match loc.local_path() {
        Some(path) => Box::new(std::fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => GdoError::NotFound(loc.to_string()),
            _ => GdoError::io(loc.to_string(), e),
        })?),
        None => {
            let handle = tokio::runtime::Handle::current();
            let stream = handle
                .block_on(object_store::ObjectStoreExt::get(loc.store.as_ref(), &loc.path))
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => GdoError::NotFound(loc.to_string()),
                    other => other.into(),
                })?
                .into_stream()
                .map_err(std::io::Error::other);
            Box::new(SyncIoBridge::new_with_handle(StreamReader::new(stream), handle))
        }
    };
    let mut raw = BufReader::with_capacity(1 << 20, Counting { inner: source, on_read });
    let head = raw.fill_buf().map_err(|e| GdoError::io(loc.to_string(), e))?;
    let mut text: Box<dyn BufRead + Send> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(BufReader::with_capacity(1 << 20, MultiGzDecoder::new(raw)))
    } else {
        Box::new(raw)
    };
    // A JSON array (LLaVA's own `.json` files are one) would otherwise be read line by
    // line and rejected row by row; say what it is instead.
    let head = text.fill_buf().map_err(|e| GdoError::io(loc.to_string(), e))?;
    let first = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head).iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(GdoError::Usage(format!(
            "{loc} is a JSON array, not JSON lines (one object per line); convert it first, e.g. \
             jq -c '.[]' FILE > FILE.jsonl"
        )));
    }
    Ok(text)
}

/// The non-blank lines of a JSONL stream, with their line numbers (from 1); blank
/// lines are counted in [`Lines::blank`].
pub struct Lines {
    reader: Box<dyn BufRead + Send>,
    what: String,
    line: Vec<u8>,
    line_no: u64,
    pub blank: u64,
}

impl Lines {
    /// [`open`] `loc` and read its lines. Blocking, as [`open`].
    pub fn open(loc: &Location) -> Result<Self> {
        Ok(Self::new(open(loc, |_| {})?, loc.to_string()))
    }

    pub fn new(reader: Box<dyn BufRead + Send>, what: String) -> Self {
        Self { reader, what, line: Vec::new(), line_no: 0, blank: 0 }
    }

    /// The next non-blank line (without its terminator) and its number.
    pub fn next_line(&mut self) -> Result<Option<(u64, &[u8])>> {
        loop {
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line).map_err(|e| {
                let msg = format!("reading line {}: {e}", self.line_no + 1);
                GdoError::io(self.what.clone(), std::io::Error::new(e.kind(), msg))
            })?;
            if n == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            if self.line.iter().all(u8::is_ascii_whitespace) {
                self.blank += 1;
                continue;
            }
            while self.line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                self.line.pop();
            }
            return Ok(Some((self.line_no, &self.line)));
        }
    }
}

/// One line as JSON, with bare `NaN`/`Infinity`/`-Infinity` outside strings read as the
/// strings `"NaN"`/`"Infinity"`/`"-Infinity"` (see [`number`]).
pub fn parse_value(line: &[u8]) -> std::result::Result<Value, serde_json::Error> {
    match serde_json::from_slice(line) {
        Ok(v) => Ok(v),
        Err(e) => {
            let quoted = |w: &'static [u8]| -> &'static [u8] {
                match w {
                    b"-Infinity" => br#""-Infinity""#,
                    b"Infinity" => br#""Infinity""#,
                    _ => br#""NaN""#,
                }
            };
            match replace_non_finite_words(line, quoted) {
                Some(fixed) => serde_json::from_slice(&fixed).map_err(|_| e),
                None => Err(e),
            }
        }
    }
}

/// A JSON value as a number: numbers as they are, the non-finite markers of
/// [`parse_value`] as NaN and +-infinity; None for anything else.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// The bare words Python writes for non-finite floats (longest first).
pub const NON_FINITE_WORDS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];

/// Replace each bare non-finite word outside strings by `with(word)`. None when the
/// line has none.
pub fn replace_non_finite_words(line: &[u8], with: impl Fn(&'static [u8]) -> &'static [u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(line.len() + 16);
    let (mut in_string, mut escaped, mut replaced) = (false, false, false);
    let mut i = 0;
    'outer: while i < line.len() {
        let b = line[i];
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        } else {
            for w in NON_FINITE_WORDS {
                if line[i..].starts_with(w) {
                    out.extend_from_slice(with(w));
                    i += w.len();
                    replaced = true;
                    continue 'outer;
                }
            }
        }
        out.push(b);
        i += 1;
    }
    replaced.then_some(out)
}

/// Target size of one chunk's buffer; with the bounded queue this bounds memory.
pub const CHUNK_BYTES: usize = 4 << 20;

/// Cuts a byte stream into chunks of whole lines.
///
/// Each chunk is read straight into its own buffer (reads this large bypass the
/// `BufReader`'s buffer) and cut at a line end, so no line is copied on its own; the
/// bytes after the cut start the next chunk. The cuts fall where reading line by line
/// put them, so the pool's Parquet bytes (which follow the chunks) did not change.
pub struct ChunkCutter<R> {
    reader: R,
    /// Bytes read past the previous chunk's last line.
    carry: Vec<u8>,
    eof: bool,
    chunk_bytes: usize,
    chunk_lines: usize,
    /// Longest line kept whole; longer ones keep their first [`OVERLONG_KEPT`] bytes.
    max_line: usize,
    /// Lines of the last chunk (indices) that were longer than `max_line`.
    overlong: Vec<usize>,
}

/// Bytes kept of a line over `--max-line-bytes`: its start, for the rejects table.
const OVERLONG_KEPT: usize = 256;

impl<R: Read> ChunkCutter<R> {
    pub fn new(reader: R, chunk_bytes: usize, chunk_lines: usize) -> Self {
        Self {
            reader,
            carry: Vec::new(),
            eof: false,
            chunk_bytes: chunk_bytes.max(1),
            chunk_lines: chunk_lines.max(1),
            max_line: usize::MAX,
            overlong: Vec::new(),
        }
    }

    pub fn with_max_line(mut self, max_line: usize) -> Self {
        self.max_line = max_line.max(OVERLONG_KEPT);
        self
    }

    /// Drop the rest of a line over `max_line` that starts at `start`: keep its first
    /// bytes plus a line end, read the stream on to the next line end in bounded
    /// buffers (memory stays bounded however long the line), and keep what follows.
    fn cut_overlong(&mut self, data: &mut Vec<u8>, start: usize) -> std::io::Result<usize> {
        data.truncate(start + OVERLONG_KEPT);
        data.push(b'\n');
        let end = data.len();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = self.reader.read(&mut buf)?;
            if n == 0 {
                self.eof = true;
                break;
            }
            if let Some(at) = memchr::memchr(b'\n', &buf[..n]) {
                data.extend_from_slice(&buf[at + 1..n]);
                break;
            }
        }
        Ok(end)
    }

    /// Indices (in the last chunk) of the lines cut at `max_line`.
    pub fn take_overlong(&mut self) -> Vec<usize> {
        std::mem::take(&mut self.overlong)
    }

    /// The next chunk and the end offset of each of its lines (terminators included):
    /// lines up to and including the first one that reaches `chunk_bytes`, at most
    /// `chunk_lines` of them. None at the end of the stream.
    pub fn next_chunk(&mut self) -> std::io::Result<Option<(Vec<u8>, Vec<usize>)>> {
        let step = (self.chunk_bytes / 64).max(64);
        let mut data = Vec::with_capacity(self.chunk_bytes.max(self.carry.len()) + 2 * step);
        data.append(&mut self.carry);
        let mut line_ends = Vec::with_capacity(self.chunk_lines.min(1 << 16));
        self.overlong.clear();
        let mut scanned = 0;
        'fill: loop {
            for at in memchr::memchr_iter(b'\n', &data[scanned..]) {
                let end = scanned + at + 1;
                // A long line read whole within one fill (bounded by the fill size).
                if end - line_ends.last().copied().unwrap_or(0) > self.max_line {
                    self.overlong.push(line_ends.len());
                }
                line_ends.push(end);
                if line_ends.len() == self.chunk_lines || end >= self.chunk_bytes {
                    break 'fill;
                }
            }
            let start = line_ends.last().copied().unwrap_or(0);
            if data.len() - start > self.max_line {
                let end = self.cut_overlong(&mut data, start)?;
                self.overlong.push(line_ends.len());
                line_ends.push(end);
                scanned = end;
                if line_ends.len() == self.chunk_lines || end >= self.chunk_bytes {
                    break 'fill;
                }
                continue;
            }
            scanned = data.len();
            if self.eof {
                // The stream's last line may lack its terminator.
                if data.len() > line_ends.last().copied().unwrap_or(0) {
                    line_ends.push(data.len());
                }
                break;
            }
            // Fill up to the chunk size, then a little at a time until a line ends there.
            let want = match self.chunk_bytes.saturating_sub(data.len()) {
                0 => step,
                n => n,
            };
            let got = (&mut self.reader).take(want as u64).read_to_end(&mut data)?;
            self.eof = got < want;
        }
        let Some(&cut) = line_ends.last() else { return Ok(None) };
        self.carry.extend_from_slice(&data[cut..]);
        data.truncate(cut);
        Ok(Some((data, line_ends)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_name_rule() {
        for yes in ["a.jsonl", "a.JSONL.gz", "b.ndjson", "c.ndjson.gz", "sixd_metrics_rank0.json", "d.json.gz"] {
            assert!(is_jsonl_name(yes), "{yes}");
        }
        for no in ["a.parquet", "notes.txt", "a.gz", "jsonl", "a.jsonl.bz2"] {
            assert!(!is_jsonl_name(no), "{no}");
        }
    }

    #[test]
    fn a_json_array_file_is_refused_with_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let read = |name: &str, body: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, body).unwrap();
            let loc = Location::parse(&path.display().to_string()).unwrap();
            open(&loc, |_| {}).map(|mut r| {
                let mut s = String::new();
                r.read_to_string(&mut s).unwrap();
                s
            })
        };
        let err = read("llava.json", b"\n  [{\"id\": 1},\n {\"id\": 2}]").unwrap_err().to_string();
        assert!(err.contains("is a JSON array, not JSON lines") && err.contains("jq -c"), "{err}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"{\"id\": 1}\n{\"id\": 2}\n").unwrap();
        assert_eq!(read("rows.json.gz", &gz.finish().unwrap()).unwrap(), "{\"id\": 1}\n{\"id\": 2}\n");
        assert_eq!(read("empty.jsonl", b"").unwrap(), "");
    }

    #[test]
    fn non_finite_words_read_as_non_finite_numbers() {
        let v = parse_value(br#"{"a": NaN, "b": -Infinity, "c": 1.5, "q": "NaN or Infinity"}"#).unwrap();
        assert!(number(&v["a"]).unwrap().is_nan());
        assert_eq!(number(&v["b"]), Some(f64::NEG_INFINITY));
        assert_eq!(number(&v["c"]), Some(1.5));
        assert_eq!(v["q"], "NaN or Infinity");
        assert_eq!(number(&v["q"]), None);
        assert!(parse_value(b"{oops").is_err());
    }

    #[test]
    fn words_outside_strings_only() {
        let null = |_: &'static [u8]| -> &'static [u8] { b"null" };
        assert_eq!(replace_non_finite_words(br#"{"q":"NaN \" Infinity"}"#, null), None);
        assert_eq!(replace_non_finite_words(br#"[NaN,-Infinity,Infinity]"#, null).unwrap(), b"[null,null,null]");
        let quoted = |w: &'static [u8]| -> &'static [u8] {
            match w {
                b"-Infinity" => br#""-Infinity""#,
                b"Infinity" => br#""Infinity""#,
                _ => br#""NaN""#,
            }
        };
        assert_eq!(
            replace_non_finite_words(br#"{"a": -Infinity, "b": Infinity, "c": NaN}"#, quoted).unwrap(),
            br#"{"a": "-Infinity", "b": "Infinity", "c": "NaN"}"#
        );
    }

    /// Hands out at most `step` bytes per read, as a network stream may.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn cut_all(input: &[u8], step: usize, chunk_bytes: usize, chunk_lines: usize) -> Vec<(Vec<u8>, Vec<usize>)> {
        let mut cutter = ChunkCutter::new(Trickle { data: input, step }, chunk_bytes, chunk_lines);
        let mut chunks = Vec::new();
        while let Some(c) = cutter.next_chunk().expect("in-memory reads do not fail") {
            chunks.push(c);
        }
        chunks
    }

    #[test]
    fn chunks_hold_whole_lines_in_order_whatever_the_read_sizes() {
        // Short, empty, CRLF and over-long lines; with and without a final terminator.
        let mut body = Vec::new();
        for i in 0..200usize {
            match i % 7 {
                0 => body.extend_from_slice(b"\n"),
                1 => body.extend_from_slice(format!("{{\"id\": {i}}}\r\n").as_bytes()),
                2 => body.extend_from_slice(format!("{}\n", "x".repeat(150 + i)).as_bytes()),
                _ => body.extend_from_slice(format!("line {i}\n").as_bytes()),
            }
        }
        for input in [body.clone(), [&body[..], b"last line without terminator"].concat(), Vec::new()] {
            let expected_lines: Vec<&[u8]> = input.split_inclusive(|&b| b == b'\n').collect();
            for (step, chunk_bytes, chunk_lines) in
                [(7, 64, 3), (1 << 20, 64, 1000), (13, 4096, 5), (4096, 1 << 20, 8192)]
            {
                let chunks = cut_all(&input, step, chunk_bytes, chunk_lines);
                let mut lines: Vec<&[u8]> = Vec::new();
                for (data, ends) in &chunks {
                    assert!(!ends.is_empty() && ends.len() <= chunk_lines, "{} lines", ends.len());
                    assert_eq!(*ends.last().unwrap(), data.len(), "a chunk ends on its last line");
                    let mut start = 0;
                    for &end in ends {
                        let line = &data[start..end];
                        // Only the stream's very last line may lack a terminator.
                        assert!(line.ends_with(b"\n") || end == data.len());
                        lines.push(line);
                        start = end;
                    }
                    // A chunk ends with the first line that reaches chunk_bytes.
                    assert!(ends[..ends.len() - 1].iter().all(|&e| e < chunk_bytes));
                    if ends.len() < chunk_lines && !std::ptr::eq(data, &chunks.last().unwrap().0) {
                        assert!(data.len() >= chunk_bytes, "chunk of {} bytes cut early", data.len());
                    }
                }
                assert_eq!(lines, expected_lines, "step {step}, chunk {chunk_bytes} bytes / {chunk_lines} lines");
            }
        }
    }

    #[test]
    fn an_overlong_line_keeps_its_start_and_the_lines_around_it() {
        let long = "y".repeat(100_000);
        let input = format!("first\n{long}\nthird\n{long}");
        // Fills of 4 KiB cut the long lines as they stream (memory bounded by the fill);
        // a 1 MiB fill holds them whole and only marks them.
        for (step, chunk_bytes, kept) in
            [(7, 4096, Some(OVERLONG_KEPT + 1)), (4096, 4096, Some(OVERLONG_KEPT + 1)), (1 << 20, 1 << 20, None)]
        {
            let mut cutter =
                ChunkCutter::new(Trickle { data: input.as_bytes(), step }, chunk_bytes, 1000).with_max_line(1000);
            let mut lines: Vec<Vec<u8>> = Vec::new();
            let mut overlong = Vec::new();
            while let Some((data, ends)) = cutter.next_chunk().unwrap() {
                assert!(data.len() <= chunk_bytes + 8192, "held {} bytes", data.len());
                overlong.extend(cutter.take_overlong().into_iter().map(|i| i + lines.len()));
                let starts = std::iter::once(0).chain(ends.iter().copied());
                lines.extend(starts.zip(ends.iter().copied()).map(|(a, b)| data[a..b].to_vec()));
            }
            assert_eq!(overlong, vec![1, 3], "step {step}");
            assert_eq!(lines.len(), 4);
            assert_eq!(lines[0], b"first\n");
            assert_eq!(lines[2], b"third\n");
            for i in [1, 3] {
                assert!(lines[i].starts_with(b"yyyy"));
                if let Some(k) = kept {
                    assert_eq!(lines[i].len(), k);
                }
            }
        }
    }
}
