//! `media_descriptors(frames)`: every frame-based descriptor of a pair from one fetch
//! and one decode of its frames.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use candle_core::Device;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, Int64Builder, ListBuilder, StringBuilder, StructArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_datafusion_err, exec_err, plan_err};
use datafusion::config::ConfigOptions;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use rayon::prelude::*;

use crate::common::DOC_SECTION_GDO;
use crate::media::{FrameError, FrameFetcher, decode_rgb};
use crate::method::uniform_indices;
use crate::motion::candle_flow::CandleMotion;
use crate::motion::{FLOW_FRAMES, Plane, motion_descriptors, prepare_gray};
use crate::options::gdo_options;

/// At most this many frames (uniformly resampled) enter `vis_feat`.
pub const VIS_FRAMES: usize = 6;

/// The struct fields of `media_descriptors`, in order.
pub fn media_fields() -> Fields {
    Fields::from(vec![
        Field::new("amm", DataType::Float64, true),
        Field::new("frame_diversity", DataType::Float64, true),
        Field::new("vis_feat", DataType::List(Arc::new(Field::new_list_field(DataType::Float64, true))), true),
        Field::new("n_frames_read", DataType::Int64, true),
        Field::new("frame_errors", DataType::Int64, true),
        Field::new("error", DataType::Utf8, true),
    ])
}

/// SQL function `media_descriptors`; user documentation: `DOC` (`gdo sql --help-functions`, docs/sql-functions.md).
#[derive(Debug)]
pub struct MediaDescriptors {
    signature: Signature,
    fetcher: FrameFetcher,
    /// Frames decoded by this registered instance (one session), for tests and reports.
    decodes: Arc<AtomicU64>,
    /// The candle motion path of the last `gdo.motion_device` seen, built once (opening
    /// a CUDA device is slow): a cache, the setting itself lives in the session config.
    candle: Mutex<Option<(String, CandleMotion)>>,
}

impl PartialEq for MediaDescriptors {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.decodes, &other.decodes)
    }
}
impl Eq for MediaDescriptors {}
impl std::hash::Hash for MediaDescriptors {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "media_descriptors".hash(state);
    }
}

impl MediaDescriptors {
    pub fn new(fetcher: FrameFetcher) -> Self {
        Self {
            signature: crate::common::any_listing(vec![crate::common::frames_type()], Volatility::Immutable),
            fetcher,
            decodes: Arc::new(AtomicU64::new(0)),
            candle: Mutex::new(None),
        }
    }

    /// Frames decoded so far by this function instance.
    pub fn decode_count(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// The candle motion path for a `gdo.motion_device` value, or None for the tuned
    /// CPU kernel (`cpu`).
    fn candle_for(&self, spec: &str) -> Result<Option<CandleMotion>> {
        let spec = spec.trim();
        if spec.is_empty() || spec == "cpu" {
            return Ok(None);
        }
        let mut cache = self.candle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, m)) = cache.as_ref()
            && s == spec
        {
            return Ok(Some(m.clone()));
        }
        let device = match spec {
            "candle-cpu" => Device::Cpu,
            _ if spec.starts_with("cuda") => match crate::device::select(spec) {
                Ok(d) => d,
                Err(why) => return exec_err!("gdo.motion_device = '{spec}': {why}"),
            },
            _ => return plan_err!("gdo.motion_device = '{spec}': use cpu, candle-cpu, cuda or cuda:N"),
        };
        let motion = CandleMotion::new(device);
        *cache = Some((spec.to_owned(), motion.clone()));
        Ok(Some(motion))
    }

    /// Compute the descriptors of many rows (None = NULL frames list) under a session's
    /// settings: `gdo.motion_device` picks the motion path.
    pub fn compute_in(&self, rows: &[Option<Vec<String>>], config: &ConfigOptions) -> Result<Vec<Option<MediaValues>>> {
        let candle = self.candle_for(&gdo_options(config).motion_device)?;
        self.compute_with(rows, candle.as_ref())
    }

    /// With `candle`, the motion of the whole batch runs as one candle program after
    /// the frames are decoded; without, each row's motion runs on the tuned kernel.
    fn compute_with(
        &self,
        rows: &[Option<Vec<String>>],
        candle: Option<&CandleMotion>,
    ) -> Result<Vec<Option<MediaValues>>> {
        // Which frames each row needs: the union of the motion and vis_feat choices.
        let plans: Vec<Option<RowPlan>> = rows.iter().map(|r| r.as_ref().map(|f| RowPlan::new(f))).collect();
        let mut uris: Vec<String> = Vec::new();
        for (row, plan) in rows.iter().zip(&plans) {
            if let (Some(frames), Some(plan)) = (row, plan) {
                uris.extend(plan.needed.iter().map(|&i| frames[i].clone()));
            }
        }
        // All frames of the batch in flight together (bounded by the fetcher).
        let fetched = fetch_blocking(&self.fetcher, &uris);
        let mut fetched = fetched.into_iter();
        let per_row: Vec<Option<RowFrames>> = rows
            .iter()
            .zip(&plans)
            .map(|(row, plan)| match (row, plan) {
                (Some(frames), Some(plan)) => {
                    Some(((0..plan.needed.len()).filter_map(|_| fetched.next()).collect(), plan, frames))
                }
                _ => None,
            })
            .collect();
        let tuned = candle.is_none();
        let mut values: Vec<Option<(MediaValues, Vec<Plane<u8>>)>> = per_row
            .into_par_iter()
            .map(|row| row.map(|(bytes, plan, frames)| self.row_values(frames, plan, bytes, tuned)))
            .collect();
        if let Some(candle) = candle {
            // Rows with readable frames, in order; the others keep their NULLs.
            let (at, clips): (Vec<usize>, Vec<Vec<Plane<u8>>>) = values
                .iter_mut()
                .enumerate()
                .filter_map(|(i, v)| v.as_mut().filter(|(m, _)| m.amm.is_some()).map(|(_, g)| (i, std::mem::take(g))))
                .unzip();
            let motion = candle
                .motion_descriptors(&clips)
                .map_err(|e| exec_datafusion_err!("motion on {:?}: {e}", candle.device()))?;
            for (i, (amm, div)) in at.into_iter().zip(motion) {
                if let Some((m, _)) = values[i].as_mut() {
                    m.amm = Some(amm);
                    m.frame_diversity = Some(div);
                }
            }
        }
        Ok(values.into_iter().map(|v| v.map(|(m, _)| m)).collect())
    }

    /// One row's values; with `tuned`, its motion too, else its prepared gray frames
    /// for a batched motion pass (amm and frame_diversity then hold 0 until it runs).
    fn row_values(
        &self,
        frames: &[String],
        plan: &RowPlan,
        bytes: Vec<Result<bytes::Bytes, FrameError>>,
        tuned: bool,
    ) -> (MediaValues, Vec<Plane<u8>>) {
        let decoded: Vec<Result<image::RgbImage, FrameError>> = plan
            .needed
            .par_iter()
            .zip(bytes)
            .map(|(&i, b)| {
                let b = b?;
                self.decodes.fetch_add(1, Ordering::Relaxed);
                decode_rgb(&frames[i], &b)
            })
            .collect();
        let by_index: BTreeMap<usize, &Result<image::RgbImage, FrameError>> =
            plan.needed.iter().copied().zip(decoded.iter()).collect();
        let errors: Vec<&FrameError> = decoded.iter().filter_map(|d| d.as_ref().err()).collect();
        let n_read = decoded.len() - errors.len();
        let error = (!errors.is_empty()).then(|| {
            let shown: Vec<String> = errors.iter().take(3).map(|e| e.to_string()).collect();
            let more = if errors.len() > 3 { format!("; and {} more", errors.len() - 3) } else { String::new() };
            format!("{} of {} frames unreadable: {}{more}", errors.len(), decoded.len(), shown.join("; "))
        });
        if !plan.needed.is_empty() && n_read == 0 {
            let values = MediaValues {
                amm: None,
                frame_diversity: None,
                vis_feat: None,
                n_frames_read: 0,
                frame_errors: errors.len() as i64,
                error,
            };
            return (values, Vec::new());
        }
        let gray: Vec<_> = plan
            .motion
            .iter()
            .filter_map(|i| by_index[i].as_ref().ok())
            .map(|img| prepare_gray(img.as_raw(), img.width() as usize, img.height() as usize))
            .collect();
        let (amm, div) = if tuned { motion_descriptors(&gray) } else { (0.0, 0.0) };
        let vis: Vec<&image::RgbImage> = plan.vis.iter().filter_map(|i| by_index[i].as_ref().ok()).collect();
        let values = MediaValues {
            amm: Some(amm),
            frame_diversity: Some(div),
            vis_feat: Some(vis_feat(&vis)),
            n_frames_read: n_read as i64,
            frame_errors: errors.len() as i64,
            error,
        };
        (values, if tuned { Vec::new() } else { gray })
    }
}

/// One row's fetched frame bytes (or why a frame could not be read), its plan and its
/// frame URIs.
type RowFrames<'a> = (Vec<Result<bytes::Bytes, FrameError>>, &'a RowPlan, &'a Vec<String>);

/// One row's frame choice: indices into its frames list.
struct RowPlan {
    motion: Vec<usize>,
    vis: Vec<usize>,
    /// Sorted union of `motion` and `vis`: fetched and decoded once each.
    needed: Vec<usize>,
}

impl RowPlan {
    fn new(frames: &[String]) -> Self {
        let motion = uniform_indices(frames.len(), FLOW_FRAMES);
        let vis = uniform_indices(frames.len(), VIS_FRAMES);
        let mut needed: Vec<usize> = motion.iter().chain(&vis).copied().collect();
        needed.sort_unstable();
        needed.dedup();
        Self { motion, vis, needed }
    }
}

/// The values of one row of `media_descriptors`.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaValues {
    pub amm: Option<f64>,
    pub frame_diversity: Option<f64>,
    pub vis_feat: Option<Vec<f64>>,
    pub n_frames_read: i64,
    pub frame_errors: i64,
    pub error: Option<String>,
}

/// Per-channel mean and (population) standard deviation of RGB in [0,1] over all
/// pixels of `frames`; six zeros without frames. Sums in f64 in frame order.
pub fn vis_feat(frames: &[&image::RgbImage]) -> Vec<f64> {
    let (mut sum, mut sq, mut n) = ([0f64; 3], [0f64; 3], 0u64);
    for img in frames {
        let (mut s, mut q) = ([0u64; 3], [0u64; 3]);
        for px in img.as_raw().chunks_exact(3) {
            for c in 0..3 {
                let v = px[c] as u64;
                s[c] += v;
                q[c] += v * v;
            }
        }
        for c in 0..3 {
            sum[c] += s[c] as f64;
            sq[c] += q[c] as f64;
        }
        n += (img.width() * img.height()) as u64;
    }
    if n == 0 {
        return vec![0.0; 6];
    }
    let n = n as f64;
    let mean: Vec<f64> = (0..3).map(|c| sum[c] / n / 255.0).collect();
    let std: Vec<f64> = (0..3).map(|c| ((sq[c] / n / (255.0 * 255.0)) - mean[c] * mean[c]).max(0.0).sqrt()).collect();
    mean.into_iter().chain(std).collect()
}

/// Run an async fetch from inside a (synchronous) scalar function.
///
/// Why not an async UDF: DataFusion 55 evaluates async UDFs in a separate
/// `AsyncFuncExec` before the projection; keeping `media_descriptors` a plain scalar
/// function lets `amm`/`frame_diversity`/`vis_feat` simplify to its fields and lets
/// common-subexpression elimination compute it once per row, in any plan node. The
/// fetch itself stays concurrent (a whole batch of frames in flight): on DataFusion's
/// multi-threaded runtime `block_in_place` hands this worker's other tasks to other
/// workers while we wait. Off such a runtime (a current-thread test runtime, no
/// runtime) the fetch runs on a helper thread with its own runtime.
fn fetch_blocking(fetcher: &FrameFetcher, uris: &[String]) -> Vec<Result<bytes::Bytes, FrameError>> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| h.block_on(fetcher.fetch_all(uris)))
        }
        _ => std::thread::scope(|s| {
            s.spawn(|| match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(fetcher.fetch_all(uris)),
                // Without a runtime no frame can be fetched: every frame reports why.
                Err(e) => uris
                    .iter()
                    .map(|u| {
                        Err(FrameError {
                            kind: crate::media::FrameErrorKind::Io,
                            uri: u.clone(),
                            detail: format!("cannot start a tokio runtime: {e}"),
                        })
                    })
                    .collect(),
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
    }
}

/// The frames lists of a `List<Utf8>`-like array, NULL lists as None.
/// A plan error naming the function the user called (not the `media_descriptors` it
/// becomes) when its argument cannot be a list of frame URIs.
fn check_frames_type(name: &str, arg_types: &[DataType]) -> Result<()> {
    match arg_types {
        [DataType::List(_) | DataType::LargeList(_) | DataType::Null] => Ok(()),
        [other] => plan_err!("{name} expects a list of frame URIs, got {other}"),
        _ => plan_err!("{name} takes one argument (a list of frame URIs), got {}", arg_types.len()),
    }
}

pub fn frames_lists(array: &ArrayRef, name: &str) -> Result<Vec<Option<Vec<String>>>> {
    let strings =
        |values: &ArrayRef| -> Result<Vec<Option<String>>> { crate::common::map_strings(values, name, str::to_owned) };
    let mut out = Vec::with_capacity(array.len());
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            for i in 0..list.len() {
                out.push(if list.is_null(i) {
                    None
                } else {
                    Some(strings(&list.value(i))?.into_iter().flatten().collect())
                });
            }
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            for i in 0..list.len() {
                out.push(if list.is_null(i) {
                    None
                } else {
                    Some(strings(&list.value(i))?.into_iter().flatten().collect())
                });
            }
        }
        DataType::Null => out.extend((0..array.len()).map(|_| None)),
        other => return exec_err!("{name} expects a list of frame URIs, got {other}"),
    }
    Ok(out)
}

/// Build the struct array of `media_descriptors` from row values.
pub fn to_struct_array(values: &[Option<MediaValues>]) -> Result<StructArray> {
    let (mut amm, mut div) = (Float64Builder::new(), Float64Builder::new());
    let mut vis = ListBuilder::new(Float64Builder::new());
    let (mut read, mut errs, mut error) = (Int64Builder::new(), Int64Builder::new(), StringBuilder::new());
    let mut nulls = Vec::with_capacity(values.len());
    for v in values {
        nulls.push(v.is_some());
        let v = v.as_ref();
        amm.append_option(v.and_then(|v| v.amm));
        div.append_option(v.and_then(|v| v.frame_diversity));
        match v.and_then(|v| v.vis_feat.as_ref()) {
            Some(f) => {
                vis.values().append_slice(f);
                vis.append(true);
            }
            None => vis.append(false),
        }
        read.append_option(v.map(|v| v.n_frames_read));
        errs.append_option(v.map(|v| v.frame_errors));
        error.append_option(v.and_then(|v| v.error.as_deref()));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(amm.finish()),
        Arc::new(div.finish()),
        Arc::new(vis.finish()),
        Arc::new(read.finish()),
        Arc::new(errs.finish()),
        Arc::new(error.finish()),
    ];
    Ok(StructArray::try_new(media_fields(), columns, Some(nulls.into()))?)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        DOC_SECTION_GDO,
        "The frame-based descriptors of the method (docs/method.md section 3) from one fetch and one decode \
         of the pair's frames. Returns `STRUCT<amm DOUBLE, frame_diversity DOUBLE, vis_feat LIST<DOUBLE>, \
         n_frames_read BIGINT, frame_errors BIGINT, error VARCHAR>`: amm (average Farneback flow magnitude \
         over up to 8 uniformly resampled frames, 224x224 gray), frame_diversity (mean(abs(g_t - g_{t-1}))/255 \
         on the same frames), vis_feat (per-channel RGB mean and standard deviation in [0,1] over up to 6 \
         uniformly resampled frames: [mean_r, mean_g, mean_b, std_r, std_g, std_b]), n_frames_read (frames \
         fetched and decoded), frame_errors (frames dropped as missing, unreadable or undecodable) and error \
         (what went wrong, NULL if nothing). With at most one readable frame, amm and frame_diversity are 0 \
         (image pairs). When frames were listed but none could be read, amm, frame_diversity and vis_feat are \
         NULL and error says why; the query never fails for a bad frame. An empty list gives 0, 0 and six \
         zeros; a NULL list gives NULL. Frames are fetched concurrently through the session's object stores \
         and decoded (JPEG, PNG, WebP). Motion runs where `SET gdo.motion_device` says: 'cpu' (default, the \
         tuned CPU kernel), 'cuda' or 'cuda:N' (the motion of each batch of rows as one candle program on \
         that GPU), 'candle-cpu' (the same program on the CPU). amm(frames), frame_diversity(frames) and \
         vis_feat(frames) are rewritten to fields of this function, so a query asking for several decodes \
         each frame once.",
        "media_descriptors(frames)",
    )
    .with_argument("frames", "List of frame URIs (file://, s3://, gs://, az://) in time order.")
    .with_sql_example(
        "SELECT qa_uid, media_descriptors(frames)['error'] FROM pool LIMIT 5;\n\
         SELECT qa_uid, media_descriptors(frames)['amm'] FROM pool LIMIT 5;",
    )
    .with_related_udf("amm")
    .with_related_udf("frame_diversity")
    .with_related_udf("vis_feat")
    .build()
});

impl ScalarUDFImpl for MediaDescriptors {
    fn name(&self) -> &str {
        "media_descriptors"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_frames_type(self.name(), arg_types)?;
        Ok(DataType::Struct(media_fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = crate::common::single_array(&args.args, args.number_rows, self.name())?;
        let rows = frames_lists(&array, self.name())?;
        let values = self.compute_in(&rows, &args.config_options)?;
        Ok(ColumnarValue::Array(Arc::new(to_struct_array(&values)?)))
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

/// A descriptor that is one field of `media_descriptors` (`amm`, `frame_diversity`,
/// `vis_feat`). It simplifies to `get_field(media_descriptors(frames), field)` so that
/// common-subexpression elimination computes the struct once per row however many of
/// these a query asks for; called directly (no optimizer), it computes the struct itself.
#[derive(Debug)]
pub struct MediaField {
    name: &'static str,
    field: &'static str,
    return_type: DataType,
    doc: &'static LazyLock<Documentation>,
    signature: Signature,
    media: Arc<datafusion::logical_expr::ScalarUDF>,
}

impl PartialEq for MediaField {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.media, &other.media)
    }
}
impl Eq for MediaField {}
impl std::hash::Hash for MediaField {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl MediaField {
    /// `media` must be the session's registered `media_descriptors`.
    pub fn new(
        name: &'static str,
        field: &'static str,
        doc: &'static LazyLock<Documentation>,
        media: Arc<datafusion::logical_expr::ScalarUDF>,
    ) -> Self {
        let return_type = media_fields().find(field).map(|(_, f)| f.data_type().clone()).unwrap_or(DataType::Null);
        let signature = crate::common::any_listing(vec![crate::common::frames_type()], Volatility::Immutable);
        Self { name, field, return_type, doc, signature, media }
    }
}

impl ScalarUDFImpl for MediaField {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_frames_type(self.name, arg_types)?;
        Ok(self.return_type.clone())
    }
    fn simplify(
        &self,
        args: Vec<datafusion::logical_expr::Expr>,
        _info: &datafusion::logical_expr::simplify::SimplifyContext,
    ) -> Result<datafusion::logical_expr::simplify::ExprSimplifyResult> {
        use datafusion::logical_expr::expr::ScalarFunction;
        let call =
            datafusion::logical_expr::Expr::ScalarFunction(ScalarFunction::new_udf(Arc::clone(&self.media), args));
        Ok(datafusion::logical_expr::simplify::ExprSimplifyResult::Simplified(
            datafusion::functions::core::expr_fn::get_field(call, self.field),
        ))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(media) = (self.media.inner().as_ref() as &dyn std::any::Any).downcast_ref::<MediaDescriptors>() else {
            return exec_err!("{}: media_descriptors is not gdo's", self.name);
        };
        let array = crate::common::single_array(&args.args, args.number_rows, self.name)?;
        let values = media.compute_in(&frames_lists(&array, self.name)?, &args.config_options)?;
        let all = to_struct_array(&values)?;
        match all.column_by_name(self.field) {
            Some(col) => Ok(ColumnarValue::Array(Arc::clone(col))),
            None => exec_err!("{}: no field {}", self.name, self.field),
        }
    }
    fn documentation(&self) -> Option<&Documentation> {
        Some(self.doc)
    }
}
