//! From JSONL lines to pool rows (method §1): one chunk of lines at a time, so
//! chunks can be parsed in parallel and put back in order.
//!
//! Rows are read with a typed, borrowing serde parse (no allocation for strings without
//! escapes). A line the typed parse refuses takes a slow path through
//! `serde_json::Value` that says exactly why (invalid JSON, wrong field type, ...).

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Builder, Int64Builder, ListBuilder, StringBuilder};
use datafusion::arrow::record_batch::RecordBatch;
use gdo_udfs::method::{self, Strata};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use sha1::{Digest, Sha1};
use url::Url;

use crate::schema::{POOL_SCHEMA_UNINDEXED, REJECTS_SCHEMA};
use crate::store::has_scheme;

/// Which JSONL layout a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// LLaVA-OneVision image QA rows.
    Onevision,
    /// LLaVA-Video rows (`video_id`, frames in time order).
    Video,
}

impl Layout {
    fn uid_prefix(self) -> &'static str {
        match self {
            Layout::Onevision => "ov",
            Layout::Video => "vv",
        }
    }
    fn default_id_prefix(self) -> &'static str {
        match self {
            Layout::Onevision => "onevision",
            Layout::Video => "video",
        }
    }
    fn default_source(self) -> &'static str {
        match self {
            Layout::Onevision => "onevision",
            Layout::Video => "llava_video",
        }
    }
}

/// Why a line produced no pairs. Every reason is counted and kept in `_rejects`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RejectReason {
    InvalidUtf8,
    InvalidJson,
    NotObject,
    NoImages,
    BadFieldType,
    NoQaPair,
    LineTooLong,
    VideoUnreadable,
}

impl RejectReason {
    pub const ALL: [RejectReason; 8] = [
        Self::InvalidUtf8,
        Self::InvalidJson,
        Self::NotObject,
        Self::NoImages,
        Self::BadFieldType,
        Self::NoQaPair,
        Self::LineTooLong,
        Self::VideoUnreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUtf8 => "invalid_utf8",
            Self::InvalidJson => "invalid_json",
            Self::NotObject => "not_object",
            Self::NoImages => "no_images",
            Self::BadFieldType => "bad_field_type",
            Self::NoQaPair => "no_qa_pair",
            Self::LineTooLong => "line_too_long",
            Self::VideoUnreadable => "video_unreadable",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Counts the frames of the video file at a URI (or says why it cannot): how rows that
/// name a `video` file instead of frames learn which frames to keep.
#[derive(Clone)]
pub struct VideoProbe(pub Arc<FrameCounter>);

/// The function a [`VideoProbe`] calls: a video URI to its frame count, or why not.
pub type FrameCounter = dyn Fn(&str) -> Result<usize, String> + Send + Sync;

impl fmt::Debug for VideoProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VideoProbe")
    }
}

/// Settings shared by every chunk of one input file.
#[derive(Debug, Clone)]
pub struct FileContext {
    pub layout: Layout,
    /// The file as the user named it (kept in `source_file`).
    pub source_file: Arc<str>,
    /// Folder URL relative frame paths are resolved against (ends with `/`).
    pub media_base: Url,
    pub target_frames: usize,
    /// Reads video files' frame counts; without one, rows naming a video file are
    /// rejected as `video_unreadable`.
    pub video_probe: Option<VideoProbe>,
}

/// A run of consecutive lines of one file, in one buffer.
pub struct Chunk {
    pub ctx: Arc<FileContext>,
    /// 1-based number of the first line.
    pub first_line: u64,
    /// The lines, terminators included.
    pub data: Vec<u8>,
    /// End offset of each line in `data`.
    pub line_ends: Vec<usize>,
    /// Lines (indices) cut at `--max-line-bytes`: only their start is in `data`.
    pub overlong: Vec<usize>,
}

impl Chunk {
    /// The raw lines of the chunk.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.line_ends.iter().copied());
        starts.zip(self.line_ends.iter().copied()).map(|(a, b)| &self.data[a..b])
    }
}

/// Counts of one chunk; summed per file by the caller.
#[derive(Debug, Default, Clone, Copy)]
pub struct ChunkCounts {
    pub lines: u64,
    pub blank: u64,
    pub rows: u64,
    pub pairs: u64,
    pub rejected: [u64; RejectReason::ALL.len()],
    /// Rows shaped like the other layout's: one image and no video in a video file, a
    /// video file in an image file (a file given with the wrong flag).
    pub other_layout: u64,
}

/// The parsed chunk: its pairs (in line order) and its rejects.
pub struct ParsedChunk {
    pub pairs: RecordBatch,
    pub rejects: RecordBatch,
    pub counts: ChunkCounts,
}

// ---------------------------------------------------------------------------------
// Typed rows

/// A JSON string, borrowed from the line when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// An id: a string, or a number/bool written as Python's `str()` would.
struct Scalar<'a> {
    text: Cow<'a, str>,
    /// Python-falsy (`""`, `0`, `false`): the reference then uses the default id.
    falsy: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar { falsy: v.is_empty(), text: Cow::Borrowed(v) })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar { falsy: v.is_empty(), text: Cow::Owned(v.to_owned()) })
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar { falsy: v == 0, text: Cow::Owned(v.to_string()) })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar { falsy: v == 0, text: Cow::Owned(v.to_string()) })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar { falsy: v == 0.0, text: Cow::Owned(format!("{v:?}")) })
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                let text = if v { "True" } else { "False" };
                Ok(Scalar { falsy: !v, text: Cow::Borrowed(text) })
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
struct RawTurn<'a> {
    #[serde(borrow, default)]
    role: Option<Text<'a>>,
    #[serde(borrow, default)]
    from: Option<Text<'a>>,
    #[serde(borrow, default)]
    content: Option<Text<'a>>,
    #[serde(borrow, default)]
    value: Option<Text<'a>>,
}

/// A row of LLaVA-OneVision / LLaVA-Video (`images` + `messages`) or of the original
/// LLaVA layout (`image` or `video` + `conversations` with `from`/`value` turns).
#[derive(Deserialize)]
struct RawRow<'a> {
    #[serde(borrow, default)]
    id: Option<Scalar<'a>>,
    #[serde(borrow, default)]
    video_id: Option<Scalar<'a>>,
    #[serde(borrow, default, deserialize_with = "frame_list")]
    images: Option<Vec<Text<'a>>>,
    /// LLaVA's `image`: one path, or a list of them.
    #[serde(borrow, default, deserialize_with = "one_or_list")]
    image: Option<Vec<Text<'a>>>,
    /// A video file, whose frames are decoded where they are needed.
    #[serde(borrow, default)]
    video: Option<Text<'a>>,
    #[serde(borrow, default)]
    messages: Option<Vec<RawTurn<'a>>>,
    #[serde(borrow, default)]
    conversations: Option<Vec<RawTurn<'a>>>,
    #[serde(borrow, default)]
    data_source: Option<Text<'a>>,
}

/// `images`, read into a list sized for a video row up front: serde_json gives no
/// length hint, and growing the list from empty (4, 8, 16, ... entries) was about 1%
/// of ingest's CPU samples.
fn frame_list<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Text<'a>>>, D::Error> {
    d.deserialize_option(Frames { one_allowed: false })
}

/// LLaVA's `image`: one path, or a list of them.
fn one_or_list<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Text<'a>>>, D::Error> {
    d.deserialize_option(Frames { one_allowed: true })
}

/// Reads a list of frame paths; with `one_allowed`, also a single path.
struct Frames {
    one_allowed: bool,
}

impl<'de> Visitor<'de> for Frames {
    type Value = Option<Vec<Text<'de>>>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(if self.one_allowed { "a string or a list of strings" } else { "a list of strings" })
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(vec![Text(Cow::Borrowed(v))]))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(vec![Text(Cow::Owned(v.to_owned()))]))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        // The method's `images` must be a list (a string is a rejected row).
        if self.one_allowed { d.deserialize_any(self) } else { d.deserialize_seq(self) }
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(FRAME_LIST_CAPACITY));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Some(items))
    }
}

/// Entries reserved for a row's `images` before reading it (LLaVA-Video rows list
/// dozens of frames; an image row's unused entries cost one small allocation).
const FRAME_LIST_CAPACITY: usize = 64;

impl Text<'_> {
    fn into_owned(self) -> Text<'static> {
        Text(Cow::Owned(self.0.into_owned()))
    }
}

impl Scalar<'_> {
    fn into_owned(self) -> Scalar<'static> {
        Scalar { text: Cow::Owned(self.text.into_owned()), falsy: self.falsy }
    }
}

impl RawRow<'_> {
    /// The row with every string owned: a re-serialised line (the slow path) does not
    /// live as long as the chunk its pairs are kept for.
    fn into_owned(self) -> RawRow<'static> {
        let text = |t: Option<Text<'_>>| t.map(Text::into_owned);
        let list = |l: Option<Vec<Text<'_>>>| l.map(|v| v.into_iter().map(Text::into_owned).collect());
        let turns = |turns: Option<Vec<RawTurn<'_>>>| {
            turns.map(|turns| {
                turns
                    .into_iter()
                    .map(|t| RawTurn {
                        role: text(t.role),
                        from: text(t.from),
                        content: text(t.content),
                        value: text(t.value),
                    })
                    .collect()
            })
        };
        RawRow {
            id: self.id.map(Scalar::into_owned),
            video_id: self.video_id.map(Scalar::into_owned),
            images: list(self.images),
            image: list(self.image),
            video: text(self.video),
            messages: turns(self.messages),
            conversations: turns(self.conversations),
            data_source: text(self.data_source),
        }
    }
}

/// Python's `a or b` over optional strings: the first non-empty one.
fn first_non_empty<'a>(a: Option<Text<'a>>, b: Option<Text<'a>>) -> Cow<'a, str> {
    match (a, b) {
        (Some(t), _) if !t.0.is_empty() => t.0,
        (_, Some(t)) => t.0,
        _ => Cow::Borrowed(""),
    }
}

/// `f` (a normalisation) applied to text that may be borrowed from the line or owned by
/// the row, keeping the text's own lifetime: an owned text that `f` leaves as it is
/// is moved, not copied.
fn normalise<'a>(text: Cow<'a, str>, f: impl for<'s> Fn(&'s str) -> Cow<'s, str>) -> Cow<'a, str> {
    match text {
        Cow::Borrowed(s) => f(s),
        Cow::Owned(s) => {
            let changed = match f(&s) {
                Cow::Owned(o) => Some(o),
                Cow::Borrowed(_) => None,
            };
            Cow::Owned(changed.unwrap_or(s))
        }
    }
}

/// The (question, answer) pairs of a row, by the method's pairing rule; borrowed from
/// the line where normalising changes nothing.
fn extract_pairs<'a>(messages: Vec<RawTurn<'a>>) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    let mut pairs = Vec::new();
    let mut pending: Option<Cow<'a, str>> = None;
    for turn in messages {
        let role = first_non_empty(turn.role, turn.from);
        let role = role.trim();
        let text = first_non_empty(turn.content, turn.value);
        if role.eq_ignore_ascii_case("user") || role.eq_ignore_ascii_case("human") {
            // A second user turn replaces the first.
            pending = Some(normalise(text, method::norm_user_text));
        } else if role.eq_ignore_ascii_case("assistant") || role.eq_ignore_ascii_case("gpt") {
            // An empty pending question counts as none (Python truthiness).
            if pending.as_deref().is_some_and(|q| !q.is_empty()) {
                let question = pending.take().unwrap_or_default();
                let answer = normalise(text, method::norm_cow);
                if !answer.is_empty() {
                    pairs.push((question, answer));
                }
            }
        }
    }
    pairs
}

// ---------------------------------------------------------------------------------
// Slow path: say precisely why a line does not fit the typed layout.

fn type_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}

enum SlowPath {
    Reject(RejectReason, String),
    /// The line is acceptable after all (e.g. duplicate keys, last one wins); here it is
    /// re-serialised without them.
    Retry(String),
}

fn classify(line: &str) -> SlowPath {
    use serde_json::Value;
    let value: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => return SlowPath::Reject(RejectReason::InvalidJson, e.to_string()),
    };
    let Value::Object(obj) = &value else {
        return SlowPath::Reject(RejectReason::NotObject, format!("line is {}", type_name(&value)));
    };
    let bad = |msg: String| SlowPath::Reject(RejectReason::BadFieldType, msg);
    let present = |key: &str| obj.get(key).filter(|v| !v.is_null());
    let media = present("images").map(|v| ("images", v)).or_else(|| present("image").map(|v| ("image", v)));
    match (media, present("video")) {
        (Some((key, Value::Array(items))), _) if !items.is_empty() => {
            if let Some((i, v)) = items.iter().enumerate().find(|(_, v)| !v.is_string()) {
                return bad(format!("{key}[{i}] is {}, expected a string", type_name(v)));
            }
        }
        (Some(("image", Value::String(_))), _) => {}
        (Some((key, Value::Array(_))), None) => {
            return SlowPath::Reject(RejectReason::NoImages, format!("{key} is empty"));
        }
        (Some((key, other)), None) if !other.is_array() => {
            return SlowPath::Reject(RejectReason::NoImages, format!("{key} is {}, expected a list", type_name(other)));
        }
        (_, Some(Value::String(_))) => {}
        (_, Some(other)) => return bad(format!("video is {}, expected a file path", type_name(other))),
        (_, None) => {
            return SlowPath::Reject(RejectReason::NoImages, "images is missing (and no image or video)".into());
        }
    }
    for key in ["id", "video_id"] {
        if let Some(v @ (Value::Array(_) | Value::Object(_))) = obj.get(key) {
            return bad(format!("{key} is {}, expected a string", type_name(v)));
        }
    }
    match obj.get("data_source") {
        None | Some(Value::Null | Value::String(_)) => {}
        Some(v) => return bad(format!("data_source is {}, expected a string", type_name(v))),
    }
    for list in ["messages", "conversations"] {
        match obj.get(list) {
            None | Some(Value::Null) => {}
            Some(Value::Array(turns)) => {
                for (i, turn) in turns.iter().enumerate() {
                    let Value::Object(t) = turn else {
                        return bad(format!("{list}[{i}] is {}, expected an object", type_name(turn)));
                    };
                    for key in ["role", "from", "content", "value"] {
                        match t.get(key) {
                            None | Some(Value::Null | Value::String(_)) => {}
                            Some(v) => {
                                return bad(format!("{list}[{i}].{key} is {}, expected a string", type_name(v)));
                            }
                        }
                    }
                }
            }
            Some(v) => return bad(format!("{list} is {}, expected a list", type_name(v))),
        }
    }
    match serde_json::to_string(&value) {
        Ok(s) => SlowPath::Retry(s),
        Err(e) => bad(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------
// Frame paths

/// Characters that can be appended to a folder URL as they are, with no `.` or `..`
/// segment for a URL parser to resolve (`./` at the start, `/./`, `../`).
fn is_plain_path(p: &str) -> bool {
    let b = p.as_bytes();
    // One pass: ingest asks this of every frame path.
    b.iter().enumerate().all(|(i, &c)| match c {
        b'.' => b.get(i + 1) != Some(&b'/') || (i > 0 && !matches!(b[i - 1], b'/' | b'.')),
        _ => c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'/'),
    })
}

/// Resolve a frame path against the media folder into a full URI, appended to `out`.
fn resolve_frame(base: &Url, p: &str, out: &mut String) {
    if p.is_empty() || has_scheme(p) {
        out.push_str(p);
    } else if p.starts_with('/') {
        match Url::from_file_path(p) {
            Ok(u) => out.push_str(u.as_str()),
            Err(()) => out.push_str(p),
        }
    } else if is_plain_path(p) {
        out.push_str(base.as_str());
        out.push_str(p);
    } else {
        // `#`, `?` and `%` are file-name characters here, not URL syntax.
        let escaped = p.replace('%', "%25").replace('#', "%23").replace('?', "%3F");
        match base.join(&escaped) {
            Ok(u) => out.push_str(u.as_str()),
            Err(_) => out.push_str(p),
        }
    }
}

// ---------------------------------------------------------------------------------
// Builders

struct PoolColumns {
    qa_uid: StringBuilder,
    video_uid: StringBuilder,
    bucket: StringBuilder,
    turn: Int32Builder,
    n_frames: Int32Builder,
    n_frames_raw: Int32Builder,
    data_source: StringBuilder,
    source_group: StringBuilder,
    duration_bucket: StringBuilder,
    temporal_category: StringBuilder,
    question_form: StringBuilder,
    q_len_bucket: StringBuilder,
    a_len_bucket: StringBuilder,
    stratum: StringBuilder,
    q_tokens: Int32Builder,
    a_tokens: Int32Builder,
    text_hash: StringBuilder,
    source_id: StringBuilder,
    source_file: StringBuilder,
    source_line: Int64Builder,
}

impl PoolColumns {
    /// Builders sized for `pairs` pairs, the text columns for about the bytes a pair
    /// of the 250k-pair bench pool holds (rounded up), so a chunk seldom grows them:
    /// growing them by doubling, the copies and the page faults after them, was about
    /// 6% of ingest's CPU samples (perf); sizing them, with the parsing changes made at the
    /// same time, saved 1.6% of the instructions (callgrind, 50k pairs).
    fn with_capacity(pairs: usize, source_file: &str) -> Self {
        let text = |bytes_per_pair: usize| StringBuilder::with_capacity(pairs, pairs * bytes_per_pair);
        Self {
            qa_uid: text(24),
            video_uid: text(16),
            bucket: text(12),
            turn: Int32Builder::with_capacity(pairs),
            n_frames: Int32Builder::with_capacity(pairs),
            n_frames_raw: Int32Builder::with_capacity(pairs),
            data_source: text(24),
            source_group: text(16),
            duration_bucket: text(8),
            temporal_category: text(8),
            question_form: text(8),
            q_len_bucket: text(8),
            a_len_bucket: text(8),
            stratum: text(64),
            q_tokens: Int32Builder::with_capacity(pairs),
            a_tokens: Int32Builder::with_capacity(pairs),
            text_hash: text(40),
            source_id: text(16),
            source_file: text(source_file.len()),
            source_line: Int64Builder::with_capacity(pairs),
        }
    }

    /// The batch, with the three large columns built by [`Deferred::finish`].
    fn finish(mut self, large: [ArrayRef; 3]) -> RecordBatch {
        let [question, answer, frames] = large;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.qa_uid.finish()),
            Arc::new(self.video_uid.finish()),
            Arc::new(self.bucket.finish()),
            question,
            answer,
            Arc::new(self.turn.finish()),
            frames,
            Arc::new(self.n_frames.finish()),
            Arc::new(self.n_frames_raw.finish()),
            Arc::new(self.data_source.finish()),
            Arc::new(self.source_group.finish()),
            Arc::new(self.duration_bucket.finish()),
            Arc::new(self.temporal_category.finish()),
            Arc::new(self.question_form.finish()),
            Arc::new(self.q_len_bucket.finish()),
            Arc::new(self.a_len_bucket.finish()),
            Arc::new(self.stratum.finish()),
            Arc::new(self.q_tokens.finish()),
            Arc::new(self.a_tokens.finish()),
            Arc::new(self.text_hash.finish()),
            Arc::new(self.source_id.finish()),
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_line.finish()),
        ];
        RecordBatch::try_new(Arc::clone(&POOL_SCHEMA_UNINDEXED), columns).expect("pool columns match the pool schema")
    }
}

/// The chunk's largest columns (84% of the bench pool's uncompressed bytes), kept until
/// every line is parsed so their Arrow buffers are allocated once at their final size:
/// in a perf profile of ingest, growing builders by doubling (the copies in `realloc`
/// and the page faults after them) took about 5% of the CPU samples.
#[derive(Default)]
struct Deferred<'a> {
    questions: Vec<Cow<'a, str>>,
    answers: Vec<Cow<'a, str>>,
    /// Every row's resolved frame URIs, one after another, and where each ends.
    uris: String,
    uri_ends: Vec<usize>,
    /// Per pair, the range of its row's URIs in `uri_ends`.
    pair_frames: Vec<(usize, usize)>,
}

impl Deferred<'_> {
    /// Start of URI `i` in `uris` (the end of the one before).
    fn uri_start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.uri_ends[i - 1] }
    }

    fn finish(self) -> [ArrayRef; 3] {
        let text = |values: &[Cow<'_, str>]| -> ArrayRef {
            let mut b = StringBuilder::with_capacity(values.len(), values.iter().map(|v| v.len()).sum());
            for v in values {
                b.append_value(v);
            }
            Arc::new(b.finish())
        };
        let frames_field = match POOL_SCHEMA_UNINDEXED.field_with_name("frames").map(|f| f.data_type()) {
            Ok(datafusion::arrow::datatypes::DataType::List(f)) => Arc::clone(f),
            _ => unreachable!("frames is a list column"),
        };
        let n_values = self.pair_frames.iter().map(|&(a, b)| b - a).sum();
        let n_bytes = self.pair_frames.iter().map(|&(a, b)| self.uri_start(b) - self.uri_start(a)).sum();
        let mut frames =
            ListBuilder::with_capacity(StringBuilder::with_capacity(n_values, n_bytes), self.pair_frames.len())
                .with_field(frames_field);
        for &(a, b) in &self.pair_frames {
            for i in a..b {
                frames.values().append_value(&self.uris[self.uri_start(i)..self.uri_ends[i]]);
            }
            frames.append(true);
        }
        [text(&self.questions), text(&self.answers), Arc::new(frames.finish())]
    }
}

struct RejectColumns {
    source_file: StringBuilder,
    source_line: Int64Builder,
    reason: StringBuilder,
    detail: StringBuilder,
    raw_prefix: StringBuilder,
}

/// How much of a rejected line is kept, in characters.
const RAW_PREFIX_CHARS: usize = 200;

impl RejectColumns {
    fn new() -> Self {
        Self {
            source_file: StringBuilder::new(),
            source_line: Int64Builder::new(),
            reason: StringBuilder::new(),
            detail: StringBuilder::new(),
            raw_prefix: StringBuilder::new(),
        }
    }

    fn push(&mut self, file: &str, line: u64, reason: RejectReason, detail: &str, raw: &[u8]) {
        self.source_file.append_value(file);
        self.source_line.append_value(line as i64);
        self.reason.append_value(reason.as_str());
        self.detail.append_value(detail);
        let text = String::from_utf8_lossy(raw);
        let prefix: String = text.chars().take(RAW_PREFIX_CHARS).collect();
        self.raw_prefix.append_value(prefix);
    }

    fn finish(mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.source_file.finish()),
            Arc::new(self.source_line.finish()),
            Arc::new(self.reason.finish()),
            Arc::new(self.detail.finish()),
            Arc::new(self.raw_prefix.finish()),
        ];
        RecordBatch::try_new(Arc::clone(&REJECTS_SCHEMA), columns).expect("reject columns match the rejects schema")
    }
}

// ---------------------------------------------------------------------------------
// The chunk parser

/// Strip the line terminator (`\n`, `\r\n`) and, on line 1, a UTF-8 byte-order mark.
fn trim_line(raw: &[u8], line_no: u64) -> &[u8] {
    let mut s = raw;
    if let Some(rest) = s.strip_suffix(b"\n") {
        s = rest;
    }
    if let Some(rest) = s.strip_suffix(b"\r") {
        s = rest;
    }
    if line_no == 1
        && let Some(rest) = s.strip_prefix(b"\xEF\xBB\xBF")
    {
        s = rest;
    }
    s
}

/// Parse one chunk of lines.
pub fn parse_chunk(chunk: &Chunk) -> ParsedChunk {
    let ctx = &chunk.ctx;
    // Rows of LLaVA data hold about two pairs each (1.8 image, 2.4 video in the bench
    // pool); a chunk with more grows its builders once.
    let mut cols = PoolColumns::with_capacity(2 * chunk.line_ends.len(), &ctx.source_file);
    let mut large = Deferred::default();
    let mut rejects = RejectColumns::new();
    let mut counts = ChunkCounts::default();
    // Per-pair text built in place instead of a fresh String per pair.
    let mut qa_uid = String::new();
    let mut stratum = String::new();
    let mut hex = [0u8; 40];

    for (i, raw) in chunk.lines().enumerate() {
        let line_no = chunk.first_line + i as u64;
        counts.lines += 1;
        let bytes = trim_line(raw, line_no);
        let mut reject = |reason: RejectReason, detail: &str| {
            counts.rejected[reason as usize] += 1;
            rejects.push(&ctx.source_file, line_no, reason, detail, bytes);
        };
        if chunk.overlong.contains(&i) {
            reject(RejectReason::LineTooLong, "line longer than --max-line-bytes; its first 256 bytes kept");
            continue;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            reject(RejectReason::InvalidUtf8, "line is not valid UTF-8");
            continue;
        };
        if text.trim_matches(method::is_py_space).is_empty() {
            counts.blank += 1;
            continue;
        }
        let retried;
        // serde would also read a struct from a JSON list; only objects take the fast path.
        let typed =
            if text.trim_start().starts_with('{') { serde_json::from_str::<RawRow<'_>>(text).ok() } else { None };
        let mut row: RawRow<'_> = match typed {
            Some(row) => row,
            None => match classify(text) {
                SlowPath::Reject(reason, detail) => {
                    reject(reason, &detail);
                    continue;
                }
                SlowPath::Retry(clean) => {
                    retried = clean;
                    match serde_json::from_str::<RawRow<'_>>(&retried) {
                        Ok(row) => row.into_owned(),
                        Err(e) => {
                            reject(RejectReason::BadFieldType, &e.to_string());
                            continue;
                        }
                    }
                }
            },
        };
        // The row's media: its frame files (`images`, or LLaVA's `image`), else a video
        // file (`video`) whose frames are named `<video URI>#frame=<k>`.
        let given = (row.images.is_some(), row.image.is_some());
        let images: Vec<Text<'_>> =
            row.images.take().filter(|l| !l.is_empty()).or(row.image.take()).unwrap_or_default();
        let video = row.video.take().filter(|v| images.is_empty() && !v.0.is_empty());
        if images.is_empty() && video.is_none() {
            let detail = match given {
                (true, _) => "images is empty",
                (false, true) => "image is empty",
                (false, false) => "images is missing (and no image or video)",
            };
            reject(RejectReason::NoImages, detail);
            continue;
        }
        let messages = row.messages.take().filter(|m| !m.is_empty()).or(row.conversations.take());
        let pairs = extract_pairs(messages.unwrap_or_default());
        if pairs.is_empty() {
            reject(RejectReason::NoQaPair, "no user turn followed by a non-empty assistant answer");
            continue;
        }
        let mut video_uri = String::new();
        let frames_raw = match &video {
            None => images.len(),
            Some(v) => {
                resolve_frame(&ctx.media_base, &v.0, &mut video_uri);
                let probed = match &ctx.video_probe {
                    Some(probe) => (probe.0)(&video_uri),
                    None => Err("video files are not read here".into()),
                };
                match probed {
                    Ok(n) => n,
                    Err(why) => {
                        reject(RejectReason::VideoUnreadable, &format!("{video_uri}: {why}"));
                        continue;
                    }
                }
            }
        };
        counts.rows += 1;
        let looks_other = match ctx.layout {
            Layout::Video => video.is_none() && images.len() == 1,
            Layout::Onevision => video.is_some(),
        };
        counts.other_layout += u64::from(looks_other);

        // Row-level fields, shared by all its pairs.
        let is_video = ctx.layout == Layout::Video;
        let id: Cow<'_, str> = match &row.id {
            Some(s) if !s.falsy => Cow::Borrowed(&s.text),
            _ => Cow::Owned(format!("{}-{line_no}", ctx.layout.default_id_prefix())),
        };
        let video_uid = if is_video {
            let v = row.video_id.as_ref().map(|v| method::norm(&v.text)).unwrap_or_default();
            if v.is_empty() { method::norm(&id) } else { v }
        } else {
            String::new()
        };
        let data_source = {
            let s = row.data_source.as_ref().map(|t| method::norm(&t.0)).unwrap_or_default();
            if s.is_empty() { ctx.layout.default_source().to_owned() } else { s }
        };
        let group = method::source_group(&data_source);
        let kept: Vec<usize> = if is_video { method::uniform_indices(frames_raw, ctx.target_frames) } else { vec![0] };
        let first_uri = large.uri_ends.len();
        for &k in &kept {
            if video.is_some() {
                large.uris.push_str(&video_uri);
                let _ = write!(large.uris, "{}{k}", gdo_udfs::media::video::FRAME_MARK);
            } else {
                resolve_frame(&ctx.media_base, &images[k].0, &mut large.uris);
            }
            large.uri_ends.push(large.uris.len());
        }
        let row_frames = (first_uri, large.uri_ends.len());

        for (k, (question, answer)) in pairs.into_iter().enumerate() {
            counts.pairs += 1;
            let strata = Strata::compute(is_video, kept.len(), &question, &answer, &group);
            qa_uid.clear();
            let _ = write!(qa_uid, "{}::{id}::t{k}", ctx.layout.uid_prefix());
            cols.qa_uid.append_value(&qa_uid);
            cols.video_uid.append_value(&video_uid);
            cols.bucket.append_value(strata.bucket);
            cols.turn.append_value(k as i32);
            large.pair_frames.push(row_frames);
            cols.n_frames.append_value(kept.len() as i32);
            cols.n_frames_raw.append_value(frames_raw as i32);
            cols.data_source.append_value(&data_source);
            cols.source_group.append_value(strata.source_group);
            cols.duration_bucket.append_value(strata.duration_bucket);
            cols.temporal_category.append_value(strata.temporal_category);
            cols.question_form.append_value(strata.question_form);
            cols.q_len_bucket.append_value(strata.q_len_bucket);
            cols.a_len_bucket.append_value(strata.a_len_bucket);
            stratum.clear();
            strata.push_stratum(&mut stratum);
            cols.stratum.append_value(&stratum);
            cols.q_tokens.append_value(strata.q_tokens as i32);
            cols.a_tokens.append_value(strata.a_tokens as i32);
            text_hash_into(&question, &answer, &mut hex);
            cols.text_hash.append_value(std::str::from_utf8(&hex).expect("hex is ASCII"));
            cols.source_id.append_value(&id);
            cols.source_file.append_value(&ctx.source_file);
            cols.source_line.append_value(line_no as i64);
            large.questions.push(question);
            large.answers.push(answer);
        }
    }
    ParsedChunk { pairs: cols.finish(large.finish()), rejects: rejects.finish(), counts }
}

/// The text hash of a pair: sha1 of `question|||answer`, hex (method §5.7's dedup key).
pub fn text_hash(question: &str, answer: &str) -> String {
    let mut hex = [0u8; 40];
    text_hash_into(question, answer, &mut hex);
    String::from_utf8_lossy(&hex).into_owned()
}

fn text_hash_into(question: &str, answer: &str, hex: &mut [u8; 40]) {
    let digest =
        Sha1::new().chain_update(question.as_bytes()).chain_update(b"|||").chain_update(answer.as_bytes()).finalize();
    hex::encode_to_slice(digest, hex).expect("40 hex digits fit");
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, ListArray};

    fn ctx(layout: Layout) -> Arc<FileContext> {
        Arc::new(FileContext {
            layout,
            source_file: Arc::from("t.jsonl"),
            media_base: Url::parse("file:///media/").unwrap(),
            target_frames: 32,
            video_probe: None,
        })
    }

    fn parse(layout: Layout, lines: &[&str]) -> ParsedChunk {
        let raw: Vec<Vec<u8>> = lines.iter().map(|l| format!("{l}\n").into_bytes()).collect();
        parse_chunk(&chunk_of(layout, raw))
    }

    fn chunk_of(layout: Layout, raw: Vec<Vec<u8>>) -> Chunk {
        let mut data = Vec::new();
        let mut line_ends = Vec::new();
        for l in raw {
            data.extend_from_slice(&l);
            line_ends.push(data.len());
        }
        Chunk { ctx: ctx(layout), first_line: 1, data, line_ends, overlong: Vec::new() }
    }

    fn col<'a>(b: &'a RecordBatch, name: &str) -> Vec<&'a str> {
        b.column_by_name(name).unwrap().as_string::<i32>().iter().map(|v| v.unwrap()).collect()
    }

    #[test]
    fn llava_layout_rows_with_image_or_video_files() {
        let lines = [
            r#"{"id":"i","image":"a b.jpg","conversations":[{"from":"human","value":"<image>\nq1"},{"from":"gpt","value":"a1"}]}"#,
            r#"{"id":"v","video":"clips/c.mp4","conversations":[{"from":"human","value":"<video>\nq2"},{"from":"gpt","value":"a2"}]}"#,
            r#"{"id":"s","video":"clips/short.mp4","conversations":[{"from":"human","value":"q3"},{"from":"gpt","value":"a3"}]}"#,
            r#"{"id":"x","video":"clips/bad.mp4","conversations":[{"from":"human","value":"q4"},{"from":"gpt","value":"a4"}]}"#,
            r#"{"id":"n","video":7,"conversations":[{"from":"human","value":"q5"},{"from":"gpt","value":"a5"}]}"#,
            r#"{"id":"e","image":[],"conversations":[{"from":"human","value":"q6"},{"from":"gpt","value":"a6"}]}"#,
        ];
        let probe = VideoProbe(Arc::new(|uri: &str| match uri {
            "file:///media/clips/c.mp4" => Ok(100),
            "file:///media/clips/short.mp4" => Ok(3),
            _ => Err("not a readable video: Invalid data".into()),
        }));
        let ctx = Arc::new(FileContext { video_probe: Some(probe), ..Arc::unwrap_or_clone(ctx(Layout::Video)) });
        let raw: Vec<Vec<u8>> = lines.iter().map(|l| format!("{l}\n").into_bytes()).collect();
        let p = parse_chunk(&Chunk { ctx, ..chunk_of(Layout::Video, raw) });
        assert_eq!(col(&p.pairs, "qa_uid"), vec!["vv::i::t0", "vv::v::t0", "vv::s::t0"]);
        assert_eq!(col(&p.pairs, "question"), vec!["q1", "q2", "q3"]);
        let frames = p.pairs.column_by_name("frames").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(frames.value(0).as_string::<i32>().value(0), "file:///media/a%20b.jpg");
        let video = frames.value(1);
        let video = video.as_string::<i32>();
        assert_eq!(video.len(), 32);
        assert_eq!(video.value(0), "file:///media/clips/c.mp4#frame=0");
        assert_eq!(video.value(31), "file:///media/clips/c.mp4#frame=99");
        assert_eq!(frames.value(2).len(), 3);
        let raw_counts: Vec<i32> = p
            .pairs
            .column_by_name("n_frames_raw")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .values()
            .to_vec();
        assert_eq!(raw_counts, vec![1, 100, 3]);
        assert_eq!(col(&p.rejects, "reason"), vec!["video_unreadable", "bad_field_type", "no_images"]);
        assert!(col(&p.rejects, "detail")[0].contains("clips/bad.mp4: not a readable video"));
        assert_eq!(col(&p.rejects, "detail")[1], "video is a number, expected a file path");
        // One-image rows in a file given as video are counted for the warning.
        assert_eq!(p.counts.other_layout, 1);
    }

    #[test]
    fn pairs_follow_the_spec_rule() {
        let line = r#"{"id":"a","images":["x.jpg","y.jpg"],"messages":[
            {"role":"user","content":"<image>\n first  q"},
            {"role":"assistant","content":"ans one"},
            {"role":"assistant","content":"ignored: no pending question"},
            {"from":"human","value":"replaced"},
            {"from":"human","value":"second q"},
            {"from":"gpt","value":"  "},
            {"from":"human","value":"third q"},
            {"from":"gpt","value":"ans three"}]}"#
            .replace('\n', " ");
        let p = parse(Layout::Onevision, &[&line]);
        assert_eq!(col(&p.pairs, "qa_uid"), vec!["ov::a::t0", "ov::a::t1"]);
        assert_eq!(col(&p.pairs, "question"), vec!["first q", "third q"]);
        assert_eq!(col(&p.pairs, "answer"), vec!["ans one", "ans three"]);
        assert_eq!(col(&p.pairs, "data_source"), vec!["onevision", "onevision"]);
        let frames = p.pairs.column_by_name("frames").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
        assert_eq!(frames.value(0).as_string::<i32>().value(0), "file:///media/x.jpg");
        assert_eq!(frames.value(0).len(), 1, "image pairs keep the first image only");
    }

    #[test]
    fn video_rows_resample_and_default_ids() {
        let frames: Vec<String> = (0..40).map(|i| format!("\"f/{i:02}.jpg\"")).collect();
        let line = format!(
            r#"{{"images":[{}],"messages":[{{"role":"user","content":"What happens after the turn?"}},{{"role":"assistant","content":"It stops"}}],"data_source":"0_30_s_academic_v0_1"}}"#,
            frames.join(",")
        );
        let p = parse(Layout::Video, &["", &line]);
        assert_eq!(p.counts.blank, 1);
        assert_eq!(col(&p.pairs, "qa_uid"), vec!["vv::video-2::t0"]);
        assert_eq!(col(&p.pairs, "video_uid"), vec!["video-2"]);
        assert_eq!(col(&p.pairs, "temporal_category"), vec!["Temporal"]);
        assert_eq!(col(&p.pairs, "source_group"), vec!["0_30_s_academic"]);
        assert_eq!(col(&p.pairs, "stratum"), vec!["short_video|medium|Temporal|Open|q_tiny|a_tiny|0_30_s_academic"]);
        let n = p
            .pairs
            .column_by_name("n_frames")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int32Type>()
            .value(0);
        assert_eq!(n, 32);
    }

    /// `images` is read by its own visitor (a list sized up front): longer lists than
    /// it reserves are read whole, and `null` is a missing list.
    #[test]
    fn frame_lists_longer_than_reserved_and_null_images() {
        let n = FRAME_LIST_CAPACITY + 36;
        let frames: Vec<String> = (0..n).map(|i| format!("\"f/{i:03}.jpg\"")).collect();
        let qa = r#"[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]"#;
        let long = format!(r#"{{"video_id":"v","images":[{}],"messages":{qa}}}"#, frames.join(","));
        let null = format!(r#"{{"video_id":"w","images":null,"messages":{qa}}}"#);
        let p = parse(Layout::Video, &[&long, &null]);
        let raw =
            p.pairs.column_by_name("n_frames_raw").unwrap().as_primitive::<datafusion::arrow::datatypes::Int32Type>();
        assert_eq!(raw.values().to_vec(), vec![n as i32]);
        let kept = p.pairs.column_by_name("frames").unwrap().as_any().downcast_ref::<ListArray>().unwrap().value(0);
        let kept = kept.as_string::<i32>();
        assert_eq!(kept.len(), 32);
        assert!(kept.value(31).ends_with(&format!("f/{:03}.jpg", n - 1)), "{}", kept.value(31));
        assert_eq!(col(&p.rejects, "reason"), vec!["no_images"]);
        assert_eq!(col(&p.rejects, "detail"), vec!["images is missing (and no image or video)"]);
    }

    #[test]
    fn every_bad_input_is_rejected_with_its_reason() {
        let good_msgs = r#"[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]"#;
        let lines = [
            r#"{"id": "x", "images": ["#.to_owned(),
            "[1, 2]".to_owned(),
            format!(r#"{{"images": [], "messages": {good_msgs}}}"#),
            format!(r#"{{"messages": {good_msgs}}}"#),
            format!(r#"{{"images": "x.jpg", "messages": {good_msgs}}}"#),
            r#"{"images": ["x.jpg"], "messages": "oops"}"#.to_owned(),
            r#"{"images": ["x.jpg"], "messages": [{"role":"user","content":5}]}"#.to_owned(),
            r#"{"images": [3], "messages": []}"#.to_owned(),
            r#"{"images": ["x.jpg"], "messages": [{"role":"user","content":"q only"}]}"#.to_owned(),
            format!(r#"{{"id": "dup", "id": "dup2", "images": ["x.jpg"], "messages": {good_msgs}}}"#),
        ];
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut chunk_lines: Vec<Vec<u8>> = refs.iter().map(|l| format!("{l}\n").into_bytes()).collect();
        chunk_lines.push(b"{\"id\": \"\xff\"}\n".to_vec());
        let p = parse_chunk(&chunk_of(Layout::Onevision, chunk_lines));
        let reasons = col(&p.rejects, "reason");
        assert_eq!(
            reasons,
            vec![
                "invalid_json",
                "not_object",
                "no_images",
                "no_images",
                "no_images",
                "bad_field_type",
                "bad_field_type",
                "bad_field_type",
                "no_qa_pair",
                "invalid_utf8",
            ]
        );
        // duplicate keys: accepted, the last value wins as in Python's json module
        assert_eq!(col(&p.pairs, "qa_uid"), vec!["ov::dup2::t0"]);
        let details = col(&p.rejects, "detail");
        assert!(details[5].contains("messages is a string"), "{}", details[5]);
        assert!(details[6].contains("messages[0].content is a number"), "{}", details[6]);
        let lines_col =
            p.rejects.column_by_name("source_line").unwrap().as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(lines_col.value(9), 11);
        assert_eq!(p.counts.rejected.iter().sum::<u64>(), 10);
        assert_eq!(p.counts.rows, 1);
    }

    #[test]
    fn plain_paths_are_those_without_dot_segments() {
        // The rule as first written, with substring searches.
        let reference = |p: &str| {
            !p.starts_with("./")
                && !p.contains("/./")
                && !p.contains("../")
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        };
        let parts = ["", ".", "..", "/", "a", "./", "../", "a.b", "x_y-z", " ", "#", "%", "é"];
        for a in parts {
            for b in parts {
                for c in parts {
                    let p = format!("{a}{b}{c}");
                    assert_eq!(is_plain_path(&p), reference(&p), "{p:?}");
                }
            }
        }
    }

    #[test]
    fn frame_paths_resolve_to_uris() {
        let base = Url::parse("s3://bucket/pool/").unwrap();
        // Appended after what `out` holds (ingest keeps a chunk's URIs in one string).
        let resolve = |p: &str| {
            let mut out = String::from("kept|");
            resolve_frame(&base, p, &mut out);
            out
        };
        assert_eq!(resolve("frames/v0/0001.jpg"), "kept|s3://bucket/pool/frames/v0/0001.jpg");
        assert_eq!(resolve("../media/a b#1.jpg"), "kept|s3://bucket/media/a%20b%231.jpg");
        assert_eq!(resolve("gs://other/x.png"), "kept|gs://other/x.png");
        assert_eq!(resolve("/abs/x.jpg"), "kept|file:///abs/x.jpg");
    }

    #[test]
    fn text_hash_is_sha1_of_joined_pair() {
        // hashlib.sha1(b"q|||a").hexdigest()
        assert_eq!(text_hash("q", "a"), "2289412e8c2aaaaa5c19abf45dd6f59dad0f7689");
    }
}
