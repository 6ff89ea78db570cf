//! Deterministic generators of the project's sample pool and of large synthetic pools.
//!
//! # The sample pool (`generate_sample_pool`)
//! A few MB of real media plus the two JSONL pools of method §1, small enough to
//! commit as `data-samples/` and rich enough that every descriptor of method §3 has
//! something to tell apart:
//! - **clips** of a smooth seeded texture with known motion: static scenes, sensor
//!   noise, camera pans and moving objects (slow and fast), an object that appears, an
//!   object that changes colour, and longer clips with a two-leg path. Static clips
//!   score zero motion, a small moving object little, a pan (whole frame moving) much
//!   more, and fast more than slow of the same kind; sensor noise raises both AMM and
//!   frame diversity above a small object's, as in the reference's motion fixture;
//! - **questions** whose answers need frame order (temporal), one frame (static), or no
//!   frame at all (text-only), so visual dependency and temporal necessity vary; MCQ
//!   rows, multi-turn rows in both turn layouts, near duplicates and a few wrong answers
//!   for the quality side;
//! - **broken lines** that ingest must reject, and held-out **benchmark** splits in
//!   `benchmarks/` built from their own clips and images.
//!
//! Every row carries a `gdo_sample` object with its ground truth (ingest ignores unknown
//! keys): `kind` (`temporal`, `static`, `visual`, `text_only`, `mixed` or `broken`),
//! `needs_frames`, `wrong_answer`, `near_duplicate_of`, `split` (`train` or `bench`),
//! `media_kind` (the clip kind, e.g. `pan_right`, or `shapes`/`chart`/`geometry`),
//! `motion` for clips (`none`, `noise`, `change`, `slow`, `fast`) and one entry per QA
//! pair in `pairs` (kind, form `open`/`mcq`/`mcq_no_keyword`, needs_frames,
//! wrong_answer). `mcq_no_keyword` marks option lists without the word "choices": the
//! method's MCQ rule calls them `Open` (a documented quirk).
//!
//! # Synthetic pools (`generate_synthetic_pool`)
//! Text-only pools of any size with the reference fixture's shape (about 59% image and
//! 41% video pairs, its turn counts, frame-list lengths and data sources, and its size:
//! about 500 bytes of JSONL a pair); frame paths are names only, and rows carry no
//! `gdo_sample` labels, as the reference's rows carry none. Used by benchmarks, so it writes with a hand-rolled JSON writer.
//!
//! # Determinism
//! Every random choice comes from a ChaCha8 stream derived from the seed, one stream per
//! clip, image and file, so the same seed gives byte-identical files (on one platform:
//! textures use `f32::sin`, whose last bit may differ between math libraries). Output
//! order never depends on hash-map iteration, and JPEG/PNG/WebP encoding is
//! deterministic. The generators overwrite files but never delete any.

mod demo;

pub use demo::{DEMO_BENCHMARKS, DemoDataOptions, DemoDataSummary, LOW_VALUE_KINDS, POOL_SHARES, generate_demo_data};

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

// ---------------------------------------------------------------------------------
// Public API

/// Options of [`generate_sample_pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleOptions {
    /// Seed of every random choice; the same seed gives byte-identical files.
    pub seed: u64,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self { seed: 42 }
    }
}

/// What a generator wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleSummary {
    /// Well-formed rows of `onevision.jsonl` (broken lines not included).
    pub image_rows: usize,
    /// Well-formed rows of `video.jsonl` (broken lines not included).
    pub video_rows: usize,
    /// Clips rendered, training pool and benchmarks together.
    pub clips: usize,
    /// Still images written, training pool and benchmarks together.
    pub images: usize,
    /// Frame files written (all clips).
    pub frame_files: usize,
    /// Bytes of every file written.
    pub bytes_written: u64,
    /// Lines of the two pool files that ingest must skip (the blank line included).
    pub broken_lines: usize,
}

/// Writes the small sample pool into `out` (creating it): onevision.jsonl, video.jsonl,
/// frames/<clip>/<NN>.jpg, images/<name>.(jpg|png|webp), benchmarks/*.jsonl (with their
/// own benchmarks/frames/ and benchmarks/images/, paths relative to that folder).
pub fn generate_sample_pool(out: &Path, opts: &SampleOptions) -> io::Result<SampleSummary> {
    fs::create_dir_all(out)?;
    let seed = opts.seed;
    let mut sink = FileSink::new(out);

    // Training clips, then their rows.
    let clips = plan_training_clips(seed);
    for clip in &clips {
        write_clip(clip, "", seed, &mut sink)?;
    }
    let mut rng = stream_rng(seed, STREAM_VIDEO_ROWS);
    let popular = clips.iter().position(|c| matches!(c.kind, ClipKind::Object { .. }));
    let mut video_rows = Vec::new();
    for (i, clip) in clips.iter().enumerate() {
        let mut bank = video_bank(clip, &mut rng);
        bank.shuffle(&mut rng);
        if Some(i) == popular {
            // One video carries far more than the per-video cap of 8 pairs.
            bank = popular_bank(bank, &mut rng);
        } else {
            bank.truncate(rng.random_range(6..=12));
        }
        video_rows.extend(rows_for_media(&clip_media(clip), bank, Split::Train, &mut rng));
    }
    finish_rows(&mut video_rows, &mut rng);

    // Training images, then their rows.
    let images = plan_training_images(seed);
    let mut rng = stream_rng(seed, STREAM_IMAGE_ROWS);
    let mut image_rows = Vec::new();
    for img in &images {
        write_still(img, "", &mut sink)?;
        let mut bank = image_bank(img, &mut rng);
        bank.shuffle(&mut rng);
        bank.truncate(rng.random_range(5..=9));
        image_rows.extend(rows_for_media(&image_media(img), bank, Split::Train, &mut rng));
    }
    finish_rows(&mut image_rows, &mut rng);

    let first_image = images.first().map_or("images/img000.jpg".to_owned(), |i| i.rel_path());
    let first_clip = clips.first().map_or("clip000".to_owned(), |c| c.name.clone());
    let mut rng = stream_rng(seed, STREAM_BROKEN);
    let broken_ov = broken_image_lines(&first_image);
    let broken_vv = broken_video_lines(&first_clip);
    let lines = with_broken_lines(&image_rows, &broken_ov, &mut rng)?;
    sink.write("onevision.jsonl", lines.as_bytes())?;
    let lines = with_broken_lines(&video_rows, &broken_vv, &mut rng)?;
    sink.write("video.jsonl", lines.as_bytes())?;

    let bench = write_benchmarks(seed, &mut sink)?;

    Ok(SampleSummary {
        image_rows: image_rows.len(),
        video_rows: video_rows.len(),
        clips: clips.len() + bench.clips,
        images: images.len() + bench.images,
        frame_files: sink.frame_files,
        bytes_written: sink.bytes,
        broken_lines: broken_ov.len() + broken_vv.len(),
    })
}

/// Writes a large synthetic pool (no media files; frame paths are names only) with
/// exactly `pairs` extractable QA pairs, about 59% image / 41% video like the reference
/// fixture, into out/onevision.jsonl and out/video.jsonl. A few broken lines (about one
/// per 500 rows) are mixed in, as in real dumps.
pub fn generate_synthetic_pool(out: &Path, pairs: usize, seed: u64) -> io::Result<SampleSummary> {
    fs::create_dir_all(out)?;
    let image_pairs = ((pairs as f64) * SYNTH_IMAGE_SHARE).round() as usize;
    let video_pairs = pairs - image_pairs.min(pairs);
    let image =
        write_synthetic(&out.join("onevision.jsonl"), image_pairs, false, &mut stream_rng(seed, STREAM_SYNTH_IMAGE))?;
    let video =
        write_synthetic(&out.join("video.jsonl"), video_pairs, true, &mut stream_rng(seed, STREAM_SYNTH_VIDEO))?;
    Ok(SampleSummary {
        image_rows: image.rows,
        video_rows: video.rows,
        clips: 0,
        images: 0,
        frame_files: 0,
        bytes_written: image.bytes + video.bytes,
        broken_lines: image.broken + video.broken,
    })
}

// ---------------------------------------------------------------------------------
// Constants, random streams, file output

const FRAME_W: u32 = 128;
const FRAME_H: u32 = 96;
const IMAGE_W: u32 = 160;
const IMAGE_H: u32 = 120;
/// Fixed JPEG quality: with a fixed quality image's encoder is deterministic.
const JPEG_QUALITY: u8 = 85;

// One ChaCha stream per purpose (and per clip/image, offset by its index), so that
// changing one part of the pool does not reshuffle the others.
const STREAM_CLIP_PLAN: u64 = 1;
const STREAM_IMAGE_PLAN: u64 = 2;
const STREAM_VIDEO_ROWS: u64 = 3;
const STREAM_IMAGE_ROWS: u64 = 4;
const STREAM_BROKEN: u64 = 5;
const STREAM_BENCH_PLAN: u64 = 6;
const STREAM_BENCH_ROWS: u64 = 7;
const STREAM_SYNTH_IMAGE: u64 = 8;
const STREAM_SYNTH_VIDEO: u64 = 9;
const STREAM_CLIP: u64 = 1 << 20;
const STREAM_IMAGE: u64 = 2 << 20;
const STREAM_BENCH_CLIP: u64 = 3 << 20;
const STREAM_BENCH_LONG: u64 = 4 << 20;
const STREAM_BENCH_IMAGE: u64 = 5 << 20;

fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A random element of a non-empty constant slice.
fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

/// Writes files below one root and keeps count of what it wrote.
struct FileSink<'a> {
    root: &'a Path,
    bytes: u64,
    frame_files: usize,
}

impl<'a> FileSink<'a> {
    fn new(root: &'a Path) -> Self {
        Self { root, bytes: 0, frame_files: 0 }
    }

    fn write(&mut self, rel: &str, data: &[u8]) -> io::Result<()> {
        let path = self.root.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, data)?;
        self.bytes += data.len() as u64;
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    WebP,
}

impl Format {
    fn extension(self) -> &'static str {
        match self {
            Format::Jpeg => "jpg",
            Format::Png => "png",
            Format::WebP => "webp",
        }
    }
}

fn encode(img: &RgbImage, format: Format) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let (w, h) = img.dimensions();
    let result = match format {
        Format::Jpeg => JpegEncoder::new_with_quality(&mut buf, JPEG_QUALITY).encode_image(img),
        Format::Png => PngEncoder::new(&mut buf).write_image(img.as_raw(), w, h, ExtendedColorType::Rgb8),
        Format::WebP => WebPEncoder::new_lossless(&mut buf).encode(img.as_raw(), w, h, ExtendedColorType::Rgb8),
    };
    result.map_err(io::Error::other)?;
    Ok(buf)
}

// ---------------------------------------------------------------------------------
// Colours, shapes, directions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Colour(usize);

/// Saturated object colours: they stand out from the muted background textures.
const PALETTE: [(&str, [u8; 3]); 6] = [
    ("red", [215, 35, 35]),
    ("green", [35, 165, 55]),
    ("blue", [35, 75, 215]),
    ("yellow", [240, 215, 35]),
    ("purple", [135, 50, 175]),
    ("orange", [245, 135, 25]),
];

impl Colour {
    fn random(rng: &mut ChaCha8Rng) -> Self {
        Colour(rng.random_range(0..PALETTE.len()))
    }

    fn name(self) -> &'static str {
        PALETTE[self.0].0
    }

    fn rgb(self) -> [u8; 3] {
        PALETTE[self.0].1
    }

    /// A random colour different from this one.
    fn other(self, rng: &mut ChaCha8Rng) -> Self {
        Colour((self.0 + rng.random_range(1..PALETTE.len())) % PALETTE.len())
    }

    /// `k` distinct colour names other than this one (for MCQ distractors).
    fn distractors(self, k: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
        let mut others: Vec<usize> = (0..PALETTE.len()).filter(|&i| i != self.0).collect();
        others.shuffle(rng);
        others.into_iter().take(k).map(|i| PALETTE[i].0.to_owned()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Square,
    /// Called "disc" in clips.
    Disc,
    /// Drawn like a disc, called "circle" in still images.
    Circle,
    Triangle,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Square => "square",
            Shape::Disc => "disc",
            Shape::Circle => "circle",
            Shape::Triangle => "triangle",
        }
    }

    fn plural(self) -> String {
        format!("{}s", self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Left,
    Right,
    Up,
    Down,
}

impl Dir {
    const ALL: [Dir; 4] = [Dir::Left, Dir::Right, Dir::Up, Dir::Down];

    fn name(self) -> &'static str {
        match self {
            Dir::Left => "left",
            Dir::Right => "right",
            Dir::Up => "up",
            Dir::Down => "down",
        }
    }

    fn opposite(self) -> Dir {
        match self {
            Dir::Left => Dir::Right,
            Dir::Right => Dir::Left,
            Dir::Up => Dir::Down,
            Dir::Down => Dir::Up,
        }
    }

    /// Unit step in image coordinates (y grows downwards).
    fn delta(self) -> (f32, f32) {
        match self {
            Dir::Left => (-1.0, 0.0),
            Dir::Right => (1.0, 0.0),
            Dir::Up => (0.0, -1.0),
            Dir::Down => (0.0, 1.0),
        }
    }

    fn horizontal(self) -> bool {
        matches!(self, Dir::Left | Dir::Right)
    }

    fn adverb(self) -> &'static str {
        match self {
            Dir::Left => "to the left",
            Dir::Right => "to the right",
            Dir::Up => "upwards",
            Dir::Down => "downwards",
        }
    }

    /// The edge an object moving this way starts near.
    fn start_side(self) -> &'static str {
        self.opposite().end_side()
    }

    /// The edge an object moving this way ends near.
    fn end_side(self) -> &'static str {
        match self {
            Dir::Left => "left",
            Dir::Right => "right",
            Dir::Up => "top",
            Dir::Down => "bottom",
        }
    }

    /// A random direction at right angles to this one.
    fn perpendicular(self, rng: &mut ChaCha8Rng) -> Dir {
        if self.horizontal() { pick(rng, &[Dir::Up, Dir::Down]) } else { pick(rng, &[Dir::Left, Dir::Right]) }
    }

    fn distractors(self) -> Vec<String> {
        Dir::ALL.iter().filter(|&&d| d != self).map(|d| d.name().to_owned()).collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Speed {
    Slow,
    Fast,
}

impl Speed {
    fn name(self) -> &'static str {
        match self {
            Speed::Slow => "slow",
            Speed::Fast => "fast",
        }
    }

    fn adverb(self) -> &'static str {
        match self {
            Speed::Slow => "slowly",
            Speed::Fast => "quickly",
        }
    }
}

/// Where a still object sits in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Left,
    Right,
    Top,
    Bottom,
    Centre,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::Left => "left",
            Place::Right => "right",
            Place::Top => "top",
            Place::Bottom => "bottom",
            Place::Centre => "centre",
        }
    }

    /// Centre of the object as a fraction of the frame.
    fn fraction(self) -> (f32, f32) {
        match self {
            Place::Left => (0.25, 0.5),
            Place::Right => (0.75, 0.5),
            Place::Top => (0.5, 0.27),
            Place::Bottom => (0.5, 0.73),
            Place::Centre => (0.5, 0.5),
        }
    }

    /// The place to put a scene object so that a camera pan towards `dir` keeps it in
    /// view the longest (the scene drifts the other way).
    fn for_pan(dir: Dir) -> Place {
        match dir {
            Dir::Left => Place::Left,
            Dir::Right => Place::Right,
            Dir::Up => Place::Top,
            Dir::Down => Place::Bottom,
        }
    }
}

// ---------------------------------------------------------------------------------
// Texture and drawing

/// A smooth seeded colour texture defined on the whole plane: a camera pan is just a
/// shifted sampling window, and optical flow has gradients everywhere to lock onto
/// (a flat background would make every pan look static).
#[derive(Debug, Clone)]
struct Texture {
    waves: [Wave; 3],
    noise_seed: u64,
    dark: [f32; 3],
    light: [f32; 3],
}

#[derive(Debug, Clone, Copy)]
struct Wave {
    kx: f32,
    ky: f32,
    phase: f32,
    amp: f32,
}

impl Texture {
    /// Muted colours (channels 50..200) so that the saturated objects stand out.
    fn random(rng: &mut ChaCha8Rng) -> Self {
        let waves = [random_wave(rng), random_wave(rng), random_wave(rng)];
        let noise_seed = rng.random();
        let dark = [0; 3].map(|_: i32| rng.random_range(50.0..105.0f32));
        let light = [0; 3].map(|_: i32| rng.random_range(145.0..200.0f32));
        Self { waves, noise_seed, dark, light }
    }

    /// A paler version, behind charts and drawings.
    fn pale(mut self) -> Self {
        self.dark = self.dark.map(|c| c + (235.0 - c) * 0.7);
        self.light = self.light.map(|c| c + (250.0 - c) * 0.7);
        self
    }

    /// Texture value in [0, 1]: a few sinusoids plus two octaves of value noise.
    fn value(&self, x: f32, y: f32) -> f32 {
        let (mut sum, mut norm) = (0.0, 0.0);
        for w in &self.waves {
            sum += w.amp * (w.kx * x + w.ky * y + w.phase).sin();
            norm += w.amp;
        }
        let waves = 0.5 + 0.5 * sum / norm;
        let coarse = value_noise(x / 11.0, y / 11.0, self.noise_seed);
        let fine = value_noise(x / 5.0, y / 5.0, self.noise_seed ^ 0x5bd1_e995);
        (0.5 * waves + 0.38 * coarse + 0.12 * fine).clamp(0.0, 1.0)
    }

    fn pixel(&self, x: f32, y: f32) -> Rgb<u8> {
        let v = self.value(x, y);
        Rgb(std::array::from_fn(|c| (self.dark[c] + (self.light[c] - self.dark[c]) * v).round() as u8))
    }

    /// The `w`x`h` window of the texture whose top-left corner is at (ox, oy).
    fn render(&self, w: u32, h: u32, ox: i32, oy: i32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| self.pixel((x as i32 + ox) as f32, (y as i32 + oy) as f32))
    }
}

fn random_wave(rng: &mut ChaCha8Rng) -> Wave {
    let angle = rng.random::<f32>() * std::f32::consts::TAU;
    let k = std::f32::consts::TAU / rng.random_range(14.0..48.0f32);
    Wave {
        kx: k * angle.cos(),
        ky: k * angle.sin(),
        phase: rng.random::<f32>() * std::f32::consts::TAU,
        amp: rng.random_range(0.4..1.0),
    }
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded value in [0, 1) for an integer lattice point (stateless, so the texture is
/// defined everywhere).
fn lattice(ix: i64, iy: i64, seed: u64) -> f32 {
    let h = splitmix64(
        seed ^ (ix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (iy as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
    );
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Value noise: lattice values blended with a smoothstep.
fn value_noise(x: f32, y: f32, seed: u64) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (smooth(x - x0), smooth(y - y0));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
    let top = lerp(lattice(ix, iy, seed), lattice(ix + 1, iy, seed), sx);
    let bottom = lerp(lattice(ix, iy + 1, seed), lattice(ix + 1, iy + 1, seed), sx);
    lerp(top, bottom, sy)
}

fn put(img: &mut RgbImage, x: i64, y: i64, rgb: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(rgb));
    }
}

/// A filled shape of side/diameter `size` centred on (cx, cy); parts outside the image
/// are clipped.
fn draw_shape(img: &mut RgbImage, shape: Shape, cx: f32, cy: f32, size: f32, rgb: [u8; 3]) {
    let half = size / 2.0;
    let (x0, x1) = ((cx - half).floor() as i64, (cx + half).ceil() as i64);
    let (y0, y1) = ((cy - half).floor() as i64, (cy + half).ceil() as i64);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
            let inside = match shape {
                Shape::Square => dx.abs() <= half && dy.abs() <= half,
                Shape::Disc | Shape::Circle => dx * dx + dy * dy <= half * half,
                Shape::Triangle => {
                    let t = (dy + half) / size; // 0 at the apex, 1 at the base
                    (0.0..=1.0).contains(&t) && dx.abs() <= half * t
                }
            };
            if inside {
                put(img, x, y, rgb);
            }
        }
    }
}

fn fill_rect(img: &mut RgbImage, x0: f32, y0: f32, x1: f32, y1: f32, rgb: [u8; 3]) {
    for y in y0.round() as i64..y1.round() as i64 {
        for x in x0.round() as i64..x1.round() as i64 {
            put(img, x, y, rgb);
        }
    }
}

/// A line two pixels thick.
fn draw_line(img: &mut RgbImage, (x0, y0): (f32, f32), (x1, y1): (f32, f32), rgb: [u8; 3]) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1) * 2;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let (x, y) = ((x0 + (x1 - x0) * t).round() as i64, (y0 + (y1 - y0) * t).round() as i64);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            put(img, x + dx, y + dy, rgb);
        }
    }
}

/// Uniform per-pixel sensor noise in [-amp, amp].
fn add_noise(img: &mut RgbImage, amp: i32, rng: &mut ChaCha8Rng) {
    for p in img.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (*c as i32 + rng.random_range(-amp..=amp)).clamp(0, 255) as u8;
        }
    }
}

// ---------------------------------------------------------------------------------
// Clips

/// What happens in a clip. Directions are in image terms: a camera panning right makes
/// the scene drift left in the frame.
#[derive(Debug, Clone, Copy)]
enum ClipKind {
    /// Nothing moves; all frames are identical.
    Static,
    /// A static scene plus per-frame sensor noise (frame diversity > 0, little flow).
    StaticNoise,
    /// The camera pans towards `dir` by `px` pixels per frame.
    Pan { dir: Dir, px: i32 },
    /// An object crosses a still background.
    Object { dir: Dir, speed: Speed },
    /// The camera pans while a foreground object moves.
    PanPlusObject { pan: Dir, obj: Dir },
    /// An object appears midway; the camera starts panning before or after that.
    Appear { pan: Dir, appears_first: bool },
    /// A still object changes colour midway.
    ColourChange { to: Colour },
    /// An object moves one way, then turns at right angles (longer clips).
    Sequence { first: Dir, then: Dir },
}

impl ClipKind {
    fn label(self) -> String {
        match self {
            ClipKind::Static => "static".into(),
            ClipKind::StaticNoise => "static_noise".into(),
            ClipKind::Pan { dir, .. } => format!("pan_{}", dir.name()),
            ClipKind::Object { dir, .. } => match dir {
                Dir::Right => "object_left_to_right".into(),
                Dir::Left => "object_right_to_left".into(),
                Dir::Up => "object_up".into(),
                Dir::Down => "object_down".into(),
            },
            ClipKind::PanPlusObject { .. } => "pan_plus_object".into(),
            ClipKind::Appear { .. } => "appear".into(),
            ClipKind::ColourChange { .. } => "color_change".into(),
            ClipKind::Sequence { .. } => "sequence".into(),
        }
    }

    /// What changes between frames: `none`, `noise` (sensor noise only), `change` (a
    /// colour switch), `slow` or `fast` motion. Compare `slow`/`fast` within one clip
    /// kind: a small fast object moves fewer pixels overall than a slow pan.
    fn motion(self) -> &'static str {
        match self {
            ClipKind::Static => "none",
            ClipKind::StaticNoise => "noise",
            ClipKind::ColourChange { .. } => "change",
            ClipKind::Pan { px, .. } => {
                if px >= 3 {
                    "fast"
                } else {
                    "slow"
                }
            }
            ClipKind::Object { speed, .. } => speed.name(),
            ClipKind::PanPlusObject { .. } => "fast",
            ClipKind::Appear { .. } | ClipKind::Sequence { .. } => "slow",
        }
    }
}

/// One planned clip; its frames are fully determined by these fields and its stream.
#[derive(Debug, Clone)]
struct Clip {
    /// Folder name under frames/, also the video_id.
    name: String,
    kind: ClipKind,
    n_frames: usize,
    data_source: &'static str,
    shape: Shape,
    colour: Colour,
    /// Where the scene object sits (static, pan and appear clips).
    place: Place,
    /// Random stream of the clip's texture, paths and noise.
    stream: u64,
}

impl Clip {
    fn object(&self) -> String {
        format!("{} {}", self.colour.name(), self.shape.name())
    }

    fn frame_paths(&self) -> Vec<String> {
        (0..self.n_frames).map(|t| format!("frames/{}/{t:02}.jpg", self.name)).collect()
    }
}

/// Short clips: data sources of the 0-30 s groups (and 30-60 s for the 16-frame ones).
fn short_source(n_frames: usize, rng: &mut ChaCha8Rng) -> &'static str {
    match rng.random_range(0..20) {
        0..=7 => "0_30_s_academic_v0_1",
        8..=14 => "0_30_s_youtube_v0_1",
        15..=16 => "0_30_s_nextqa",
        _ if n_frames >= 16 => "30_60_s_academic_v0_1",
        _ => "0_30_s_academic_v0_1",
    }
}

/// Longer clips: 30-60 s and 1-2 min groups, the "longer video" split.
fn long_source(n_frames: usize) -> &'static str {
    if n_frames <= 24 { "30_60_s_academic_v0_1" } else { "1_2_m_youtube_v0_1" }
}

fn make_clip(name: String, kind: ClipKind, long: bool, stream: u64, rng: &mut ChaCha8Rng) -> Clip {
    let n_frames = match (long, kind) {
        (true, _) => pick(rng, &[24, 32, 40, 48]),
        (false, ClipKind::Appear { .. } | ClipKind::ColourChange { .. }) => rng.random_range(12..=16),
        (false, _) => rng.random_range(8..=16),
    };
    let data_source = if long { long_source(n_frames) } else { short_source(n_frames, rng) };
    let shape = match kind {
        ClipKind::ColourChange { .. } => Shape::Disc,
        _ => pick(rng, &[Shape::Square, Shape::Disc]),
    };
    let colour = match kind {
        ClipKind::ColourChange { to } => to.other(rng),
        _ => Colour::random(rng),
    };
    let place = match kind {
        ClipKind::Pan { dir, .. } | ClipKind::Appear { pan: dir, .. } => Place::for_pan(dir),
        ClipKind::ColourChange { .. } => Place::Centre,
        _ => pick(rng, &[Place::Left, Place::Right, Place::Top, Place::Bottom]),
    };
    Clip { name, kind, n_frames, data_source, shape, colour, place, stream }
}

/// The training clips: every kind, slow and fast, in a shuffled (seeded) order.
fn plan_training_clips(seed: u64) -> Vec<Clip> {
    let mut rng = stream_rng(seed, STREAM_CLIP_PLAN);
    let mut kinds: Vec<(ClipKind, bool)> = Vec::new();
    for _ in 0..4 {
        kinds.push((ClipKind::Static, false));
        kinds.push((ClipKind::StaticNoise, false));
    }
    for dir in Dir::ALL {
        kinds.push((ClipKind::Pan { dir, px: 1 }, false));
        kinds.push((ClipKind::Pan { dir, px: rng.random_range(3..=4) }, false));
        kinds.push((ClipKind::Object { dir, speed: Speed::Slow }, false));
        kinds.push((ClipKind::Object { dir, speed: Speed::Fast }, false));
    }
    // Horizontal motion is the common case in real clips: a few more of it.
    for dir in [Dir::Left, Dir::Right] {
        kinds.push((ClipKind::Object { dir, speed: Speed::Slow }, false));
        kinds.push((ClipKind::Object { dir, speed: Speed::Fast }, false));
        kinds.push((ClipKind::Pan { dir, px: 2 }, false));
    }
    for _ in 0..6 {
        let pan = pick(&mut rng, &Dir::ALL);
        let obj = pick(&mut rng, &Dir::ALL);
        kinds.push((ClipKind::PanPlusObject { pan, obj }, false));
    }
    for i in 0..5 {
        let pan = pick(&mut rng, &Dir::ALL);
        kinds.push((ClipKind::Appear { pan, appears_first: i % 2 == 0 }, false));
    }
    for _ in 0..5 {
        kinds.push((ClipKind::ColourChange { to: Colour::random(&mut rng) }, false));
    }
    // The longer clips.
    for _ in 0..5 {
        let first = pick(&mut rng, &Dir::ALL);
        let then = first.perpendicular(&mut rng);
        kinds.push((ClipKind::Sequence { first, then }, true));
    }
    kinds.push((ClipKind::ColourChange { to: Colour::random(&mut rng) }, true));
    kinds.push((ClipKind::Appear { pan: pick(&mut rng, &Dir::ALL), appears_first: true }, true));
    kinds.push((ClipKind::Pan { dir: pick(&mut rng, &Dir::ALL), px: 1 }, true));
    kinds.shuffle(&mut rng);
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, (kind, long))| make_clip(format!("clip{i:03}"), kind, long, STREAM_CLIP + i as u64, &mut rng))
        .collect()
}

/// One object over the clip: per-frame centre and colour (None while hidden).
struct Track {
    shape: Shape,
    size: f32,
    centre: Vec<(f32, f32)>,
    colour: Vec<Option<[u8; 3]>>,
    /// Scene objects move with the background when the camera pans; foreground objects
    /// are placed in frame coordinates.
    in_scene: bool,
}

/// Everything needed to render a clip's frames.
struct ClipScene {
    texture: Texture,
    /// Camera offset (top-left corner of the window into the texture) per frame.
    camera: Vec<(i32, i32)>,
    tracks: Vec<Track>,
    noise: i32,
}

fn still_camera(n: usize) -> Vec<(i32, i32)> {
    vec![(0, 0); n]
}

/// A camera still until frame `start`, then panning towards `dir` by `px` per frame.
fn panning_camera(n: usize, dir: Dir, px: i32, start: usize) -> Vec<(i32, i32)> {
    let (dx, dy) = dir.delta();
    (0..n)
        .map(|t| {
            let steps = t.saturating_sub(start) as i32 * px;
            (dx as i32 * steps, dy as i32 * steps)
        })
        .collect()
}

fn place_centre(place: Place) -> (f32, f32) {
    let (fx, fy) = place.fraction();
    (fx * FRAME_W as f32, fy * FRAME_H as f32)
}

/// A still scene object at the clip's place, visible from frame `from` on.
fn scene_object(clip: &Clip, size: f32, from: usize) -> Track {
    let rgb = clip.colour.rgb();
    Track {
        shape: clip.shape,
        size,
        centre: vec![place_centre(clip.place); clip.n_frames],
        colour: (0..clip.n_frames).map(|t| (t >= from).then_some(rgb)).collect(),
        in_scene: true,
    }
}

/// Centres along a straight path from `start`, `step` pixels per frame towards `dir`.
fn straight_path(n: usize, start: (f32, f32), dir: Dir, step: f32) -> Vec<(f32, f32)> {
    let (dx, dy) = dir.delta();
    (0..n).map(|t| (start.0 + dx * step * t as f32, start.1 + dy * step * t as f32)).collect()
}

/// A foreground object crossing the frame towards `dir`, starting near the opposite
/// edge; `speed` sets the pixels per frame, reduced if the path would leave the frame.
fn crossing_track(clip: &Clip, dir: Dir, speed: Speed, size: f32, rng: &mut ChaCha8Rng) -> Track {
    let n = clip.n_frames;
    let (extent, across) =
        if dir.horizontal() { (FRAME_W as f32, FRAME_H as f32) } else { (FRAME_H as f32, FRAME_W as f32) };
    let margin = size / 2.0 + 3.0;
    let span = extent - 2.0 * margin;
    let wanted: f32 = match (speed, dir.horizontal()) {
        (Speed::Slow, true) => 2.0,
        (Speed::Slow, false) => 1.5,
        (Speed::Fast, true) => 6.0,
        (Speed::Fast, false) => 4.5,
    };
    let steps = (n.max(2) - 1) as f32;
    // A fast object always crosses most of the frame, so "where does it end up" has a
    // clear answer; nothing leaves the frame.
    let wanted = if speed == Speed::Fast { wanted.max(0.75 * span / steps) } else { wanted };
    let step = wanted.min(span / steps);
    let along = margin + rng.random_range(0.0..4.0f32);
    let along = if matches!(dir, Dir::Left | Dir::Up) { extent - along } else { along };
    let cross = across * rng.random_range(0.35..0.65f32);
    let start = if dir.horizontal() { (along, cross) } else { (cross, along) };
    Track {
        shape: clip.shape,
        size,
        centre: straight_path(n, start, dir, step),
        colour: vec![Some(clip.colour.rgb()); n],
        in_scene: false,
    }
}

fn static_scene(clip: &Clip, texture: Texture, noise: i32) -> ClipScene {
    ClipScene { texture, camera: still_camera(clip.n_frames), tracks: vec![scene_object(clip, 18.0, 0)], noise }
}

fn pan_scene(clip: &Clip, texture: Texture, dir: Dir, px: i32) -> ClipScene {
    ClipScene {
        texture,
        camera: panning_camera(clip.n_frames, dir, px, 0),
        tracks: vec![scene_object(clip, 16.0, 0)],
        noise: 0,
    }
}

fn object_scene(clip: &Clip, texture: Texture, dir: Dir, speed: Speed, rng: &mut ChaCha8Rng) -> ClipScene {
    ClipScene {
        texture,
        camera: still_camera(clip.n_frames),
        tracks: vec![crossing_track(clip, dir, speed, 16.0, rng)],
        noise: 0,
    }
}

fn pan_plus_object_scene(clip: &Clip, texture: Texture, pan: Dir, obj: Dir, rng: &mut ChaCha8Rng) -> ClipScene {
    let px = rng.random_range(1..=2);
    ClipScene {
        texture,
        camera: panning_camera(clip.n_frames, pan, px, 0),
        tracks: vec![crossing_track(clip, obj, Speed::Fast, 16.0, rng)],
        noise: 0,
    }
}

/// The object appears at one frame and the camera starts panning at another; which one
/// comes first is the answer to the clip's ordering question.
fn appear_scene(clip: &Clip, texture: Texture, pan: Dir, appears_first: bool, rng: &mut ChaCha8Rng) -> ClipScene {
    let n = clip.n_frames;
    let early = rng.random_range(2..=(n / 3).max(2));
    let late = early + rng.random_range(2..=(n / 4).max(2));
    let (appear_at, pan_at) = if appears_first { (early, late) } else { (late, early) };
    ClipScene {
        texture,
        camera: panning_camera(n, pan, 2, pan_at),
        tracks: vec![scene_object(clip, 18.0, appear_at)],
        noise: 0,
    }
}

fn colour_change_scene(clip: &Clip, texture: Texture, to: Colour, rng: &mut ChaCha8Rng) -> ClipScene {
    let n = clip.n_frames;
    let switch = rng.random_range(n / 3..=(2 * n) / 3);
    let mut track = scene_object(clip, 22.0, 0);
    track.colour = (0..n).map(|t| Some(if t < switch { clip.colour.rgb() } else { to.rgb() })).collect();
    ClipScene { texture, camera: still_camera(n), tracks: vec![track], noise: 0 }
}

/// Two perpendicular legs: the first half of the clip towards `first`, the second half
/// towards `then`, starting where both legs stay inside the frame.
fn sequence_scene(clip: &Clip, texture: Texture, first: Dir, then: Dir) -> ClipScene {
    let n = clip.n_frames;
    let size = 16.0;
    let margin = size / 2.0 + 6.0;
    let axis_start = |extent: f32, dir: Option<Dir>| match dir {
        Some(Dir::Right | Dir::Down) => margin,
        Some(Dir::Left | Dir::Up) => extent - margin,
        None => extent / 2.0,
    };
    let horizontal = [first, then].into_iter().find(|d| d.horizontal());
    let vertical = [first, then].into_iter().find(|d| !d.horizontal());
    let start = (axis_start(FRAME_W as f32, horizontal), axis_start(FRAME_H as f32, vertical));
    let half = n / 2;
    let leg_step = |dir: Dir, frames: usize| {
        let extent = if dir.horizontal() { FRAME_W as f32 } else { FRAME_H as f32 };
        0.65 * (extent - 2.0 * margin) / frames.max(1) as f32
    };
    let leg1 = straight_path(half + 1, start, first, leg_step(first, half));
    let turn = leg1.last().copied().unwrap_or(start);
    let leg2 = straight_path(n - half, turn, then, leg_step(then, n - half - 1));
    let centre: Vec<(f32, f32)> = leg1[..half].iter().chain(leg2.iter()).copied().collect();
    let track = Track { shape: clip.shape, size, centre, colour: vec![Some(clip.colour.rgb()); n], in_scene: false };
    ClipScene { texture, camera: still_camera(n), tracks: vec![track], noise: 0 }
}

fn build_scene(clip: &Clip, rng: &mut ChaCha8Rng) -> ClipScene {
    let texture = Texture::random(rng);
    match clip.kind {
        ClipKind::Static => static_scene(clip, texture, 0),
        ClipKind::StaticNoise => static_scene(clip, texture, 6),
        ClipKind::Pan { dir, px } => pan_scene(clip, texture, dir, px),
        ClipKind::Object { dir, speed } => object_scene(clip, texture, dir, speed, rng),
        ClipKind::PanPlusObject { pan, obj } => pan_plus_object_scene(clip, texture, pan, obj, rng),
        ClipKind::Appear { pan, appears_first } => appear_scene(clip, texture, pan, appears_first, rng),
        ClipKind::ColourChange { to } => colour_change_scene(clip, texture, to, rng),
        ClipKind::Sequence { first, then } => sequence_scene(clip, texture, first, then),
    }
}

fn render_frames(scene: &ClipScene, rng: &mut ChaCha8Rng) -> Vec<RgbImage> {
    let mut frames = Vec::with_capacity(scene.camera.len());
    let mut background: Option<((i32, i32), RgbImage)> = None;
    for (t, &(ox, oy)) in scene.camera.iter().enumerate() {
        // The background only changes when the camera moves.
        let mut img = match &background {
            Some((at, img)) if *at == (ox, oy) => img.clone(),
            _ => {
                let img = scene.texture.render(FRAME_W, FRAME_H, ox, oy);
                background = Some(((ox, oy), img.clone()));
                img
            }
        };
        for track in &scene.tracks {
            if let (Some(&Some(rgb)), Some(&(cx, cy))) = (track.colour.get(t), track.centre.get(t)) {
                let (cx, cy) = if track.in_scene { (cx - ox as f32, cy - oy as f32) } else { (cx, cy) };
                draw_shape(&mut img, track.shape, cx, cy, track.size, rgb);
            }
        }
        if scene.noise > 0 {
            add_noise(&mut img, scene.noise, rng);
        }
        frames.push(img);
    }
    frames
}

/// Renders a clip and writes its frames under `folder` (`""` or `"benchmarks/"`).
fn write_clip(clip: &Clip, folder: &str, seed: u64, sink: &mut FileSink) -> io::Result<()> {
    let mut rng = stream_rng(seed, clip.stream);
    let scene = build_scene(clip, &mut rng);
    let frames = render_frames(&scene, &mut rng);
    for (frame, rel) in frames.iter().zip(clip.frame_paths()) {
        sink.write(&format!("{folder}{rel}"), &encode(frame, Format::Jpeg)?)?;
        sink.frame_files += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Still images

#[derive(Debug, Clone, Copy)]
struct Placed {
    shape: Shape,
    colour: Colour,
    cx: f32,
    cy: f32,
    size: f32,
}

impl Placed {
    fn label(&self) -> String {
        format!("{} {}", self.colour.name(), self.shape.name())
    }
}

#[derive(Debug, Clone, Copy)]
struct Bar {
    colour: Colour,
    /// Height as a share of the plot height.
    height: f32,
}

#[derive(Debug, Clone)]
enum StillKind {
    /// CLEVR-like: coloured shapes on a texture (counts, colours, positions).
    Shapes(Vec<Placed>),
    /// A bar chart without text (tallest, shortest, order).
    Chart(Vec<Bar>),
    /// A triangle (angles in degrees) or a circle (radius in cm) outline; the questions
    /// are mostly answerable from the text alone.
    Triangle {
        a: u32,
        b: u32,
    },
    Circle {
        radius: u32,
    },
}

impl StillKind {
    fn label(&self) -> &'static str {
        match self {
            StillKind::Shapes(_) => "shapes",
            StillKind::Chart(_) => "chart",
            StillKind::Triangle { .. } | StillKind::Circle { .. } => "geometry",
        }
    }
}

#[derive(Debug, Clone)]
struct Still {
    /// File stem, e.g. `img007`.
    name: String,
    kind: StillKind,
    format: Format,
    data_source: &'static str,
    texture: Texture,
}

impl Still {
    fn rel_path(&self) -> String {
        format!("images/{}.{}", self.name, self.format.extension())
    }
}

/// Non-overlapping shapes placed by seeded rejection sampling.
fn place_shapes(count: usize, rng: &mut ChaCha8Rng) -> Vec<Placed> {
    let mut placed: Vec<Placed> = Vec::new();
    for _ in 0..200 {
        if placed.len() == count {
            break;
        }
        let size = rng.random_range(14.0..24.0f32);
        let cx = rng.random_range(size..IMAGE_W as f32 - size);
        let cy = rng.random_range(size..IMAGE_H as f32 - size);
        let free = placed.iter().all(|p| {
            let d = ((p.cx - cx).powi(2) + (p.cy - cy).powi(2)).sqrt();
            d > (p.size + size) / 2.0 + 6.0
        });
        if free {
            let shape = pick(rng, &[Shape::Square, Shape::Circle, Shape::Triangle]);
            placed.push(Placed { shape, colour: Colour::random(rng), cx, cy, size });
        }
    }
    placed
}

fn random_chart(rng: &mut ChaCha8Rng) -> Vec<Bar> {
    let k = rng.random_range(3..=5);
    let mut colours: Vec<usize> = (0..PALETTE.len()).collect();
    colours.shuffle(rng);
    let mut heights: Vec<u32> = (2..=9).collect();
    heights.shuffle(rng);
    colours.into_iter().zip(heights).take(k).map(|(c, h)| Bar { colour: Colour(c), height: h as f32 / 10.0 }).collect()
}

fn random_geometry(rng: &mut ChaCha8Rng) -> StillKind {
    if rng.random_bool(0.6) {
        let a = rng.random_range(3..=9) * 10;
        let b = rng.random_range(3..=(17 - a / 10).min(9)) * 10;
        StillKind::Triangle { a, b }
    } else {
        StillKind::Circle { radius: rng.random_range(2..=12) }
    }
}

fn render_still(still: &Still) -> RgbImage {
    let mut img = still.texture.render(IMAGE_W, IMAGE_H, 0, 0);
    let ink = [30, 30, 40];
    match &still.kind {
        StillKind::Shapes(shapes) => {
            for p in shapes {
                draw_shape(&mut img, p.shape, p.cx, p.cy, p.size, p.colour.rgb());
            }
        }
        StillKind::Chart(bars) => {
            let (left, base, top) = (14.0, IMAGE_H as f32 - 14.0, 14.0);
            let slot = (IMAGE_W as f32 - 2.0 * left) / bars.len() as f32;
            for (i, bar) in bars.iter().enumerate() {
                let x0 = left + slot * (i as f32 + 0.2);
                let y0 = base - bar.height * (base - top);
                fill_rect(&mut img, x0, y0, x0 + slot * 0.6, base, bar.colour.rgb());
            }
            draw_line(&mut img, (left - 4.0, base), (IMAGE_W as f32 - left + 4.0, base), ink);
            draw_line(&mut img, (left - 4.0, base), (left - 4.0, top - 4.0), ink);
        }
        StillKind::Triangle { .. } => {
            let (a, b, c) = ((30.0, 100.0), (130.0, 100.0), (70.0, 22.0));
            draw_line(&mut img, a, b, ink);
            draw_line(&mut img, b, c, ink);
            draw_line(&mut img, c, a, ink);
        }
        StillKind::Circle { .. } => {
            let (cx, cy, r) = (80.0f32, 60.0f32, 42.0f32);
            for y in 0..IMAGE_H {
                for x in 0..IMAGE_W {
                    let d = ((x as f32 + 0.5 - cx).powi(2) + (y as f32 + 0.5 - cy).powi(2)).sqrt();
                    if (d - r).abs() < 1.2 {
                        put(&mut img, x as i64, y as i64, ink);
                    }
                }
            }
            draw_line(&mut img, (cx, cy), (cx + r, cy), ink);
        }
    }
    img
}

fn make_still(name: String, kind_tag: u8, format: Format, stream: u64, seed: u64) -> Still {
    let mut rng = stream_rng(seed, stream);
    let texture = Texture::random(&mut rng);
    let (kind, data_source, texture) = match kind_tag {
        0 => {
            let shapes = place_shapes(rng.random_range(2..=6), &mut rng);
            let source = match rng.random_range(0..4) {
                0 | 1 => "CLEVR-Math(MathV360K)",
                2 => "vqav2(cauldron)",
                _ => "ai2d(cauldron,llava_format)",
            };
            (StillKind::Shapes(shapes), source, texture)
        }
        1 => (StillKind::Chart(random_chart(&mut rng)), "chartqa(cauldron,llava_format)", texture.pale()),
        _ => (random_geometry(&mut rng), "geo170k(qa)", texture.pale()),
    };
    Still { name, kind, format, data_source, texture }
}

/// 52 training images: shape scenes, charts and geometry drawings; mostly JPEG, five
/// PNG and two lossless WebP.
fn plan_training_images(seed: u64) -> Vec<Still> {
    let mut rng = stream_rng(seed, STREAM_IMAGE_PLAN);
    let mut tags: Vec<u8> = [vec![0u8; 34], vec![1u8; 11], vec![2u8; 7]].concat();
    tags.shuffle(&mut rng);
    let mut formats = vec![Format::Jpeg; tags.len()];
    for (i, f) in formats.iter_mut().take(7).enumerate() {
        *f = if i < 5 { Format::Png } else { Format::WebP };
    }
    formats.shuffle(&mut rng);
    tags.iter()
        .zip(formats)
        .enumerate()
        .map(|(i, (&tag, format))| make_still(format!("img{i:03}"), tag, format, STREAM_IMAGE + i as u64, seed))
        .collect()
}

fn write_still(still: &Still, folder: &str, sink: &mut FileSink) -> io::Result<()> {
    let data = encode(&render_still(still), still.format)?;
    sink.write(&format!("{folder}{}", still.rel_path()), &data)
}

// ---------------------------------------------------------------------------------
// Questions

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QKind {
    /// Needs several frames in order.
    Temporal,
    /// Answerable from one frame of a clip.
    Static,
    /// Needs the (single) image.
    Visual,
    /// Answerable from the text alone.
    TextOnly,
}

impl QKind {
    fn name(self) -> &'static str {
        match self {
            QKind::Temporal => "temporal",
            QKind::Static => "static",
            QKind::Visual => "visual",
            QKind::TextOnly => "text_only",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Open,
    /// Options listed with the word "choices": the method's MCQ rule fires.
    Mcq,
    /// Options listed without the word: the method's rule says Open (its quirk).
    McqNoKeyword,
}

impl Form {
    fn name(self) -> &'static str {
        match self {
            Form::Open => "open",
            Form::Mcq => "mcq",
            Form::McqNoKeyword => "mcq_no_keyword",
        }
    }
}

/// One question/answer pair and its ground truth.
#[derive(Debug, Clone)]
struct Qa {
    question: String,
    answer: String,
    /// A plausible wrong answer, used for the few deliberately wrong rows.
    wrong: Option<String>,
    kind: QKind,
    form: Form,
    is_wrong: bool,
}

impl Qa {
    fn new(kind: QKind, question: impl Into<String>, answer: impl Into<String>) -> Self {
        Qa { question: question.into(), answer: answer.into(), wrong: None, kind, form: Form::Open, is_wrong: false }
    }

    fn or_wrong(mut self, wrong: impl Into<String>) -> Self {
        self.wrong = Some(wrong.into());
        self
    }
}

fn temporal(q: impl Into<String>, a: impl Into<String>) -> Qa {
    Qa::new(QKind::Temporal, q, a)
}

fn still(q: impl Into<String>, a: impl Into<String>) -> Qa {
    Qa::new(QKind::Static, q, a)
}

fn visual(q: impl Into<String>, a: impl Into<String>) -> Qa {
    Qa::new(QKind::Visual, q, a)
}

const LETTERS: [&str; 5] = ["A", "B", "C", "D", "E"];

/// A multiple-choice question in one of the layouts seen in real data. One layout in
/// five lists the options without the word "choices" (see [`Form::McqNoKeyword`]).
fn mcq(kind: QKind, stem: &str, correct: &str, distractors: &[String], rng: &mut ChaCha8Rng) -> Qa {
    let mut options: Vec<&str> = std::iter::once(correct).chain(distractors.iter().map(String::as_str)).collect();
    options.truncate(LETTERS.len());
    options.shuffle(rng);
    let at = options.iter().position(|&o| o == correct).unwrap_or(0);
    let listed: Vec<String> = options.iter().enumerate().map(|(i, o)| format!("{}. {o}", LETTERS[i])).collect();
    let (question, form) = match rng.random_range(0..5) {
        0 | 1 => (format!("{stem}\nChoices:\n{}", listed.join("\n")), Form::Mcq),
        2 => (format!("{stem} Choices: {}", listed.join(" ")), Form::Mcq),
        3 => (format!("{stem}\nchoices: {}\nAnswer with the letter.", listed.join(", ")), Form::Mcq),
        _ => (
            format!("{stem}\n{}\nAnswer with the option's letter from the given options.", listed.join("\n")),
            Form::McqNoKeyword,
        ),
    };
    let answer = if rng.random_bool(0.3) { listed[at].clone() } else { LETTERS[at].to_owned() };
    let wrong = LETTERS[(at + 1) % options.len()];
    let mut qa = Qa::new(kind, question, answer).or_wrong(wrong);
    qa.form = form;
    qa
}

/// Numbers around `n` as MCQ distractors.
fn number_distractors(n: usize) -> Vec<String> {
    let mut out: Vec<String> = [n + 1, n + 2].iter().map(|v| v.to_string()).collect();
    out.push(if n > 0 { (n - 1).to_string() } else { (n + 3).to_string() });
    out
}

const WORDS: [&str; 10] = ["cat", "frame", "video", "apple", "river", "motion", "pixel", "camera", "garden", "yellow"];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Questions answerable without looking: arithmetic, spelling, facts. Some use words
/// of the temporal regex ("next", "after", "sequence") although no frame helps: the
/// regex's false positives.
const FACTS: [(&str, &str, &str); 8] = [
    ("What colour do you get by mixing blue and yellow?", "green", "purple"),
    ("How many sides does a hexagon have?", "6", "8"),
    ("What is the capital of France?", "Paris", "Lyon"),
    ("What is the English word for the French \u{ab}café\u{bb}?", "coffee", "tea"),
    ("How many minutes are in an hour?", "60", "100"),
    ("What is the opposite of left?", "right", "up"),
    ("Was ist größer, drei oder fünf?", "fünf", "drei"),
    ("Which is heavier, a kilogram of iron or a kilogram of feathers?", "Neither; they weigh the same.", "iron"),
];

fn text_only(rng: &mut ChaCha8Rng) -> Qa {
    let (a, b) = (rng.random_range(2..20usize), rng.random_range(2..20usize));
    let word = pick(rng, &WORDS);
    match rng.random_range(0..10) {
        0 => Qa::new(QKind::TextOnly, format!("What is {a} plus {b}?"), (a + b).to_string())
            .or_wrong((a + b + 1).to_string()),
        1 => {
            let (a, b) = (a % 9 + 2, b % 9 + 2);
            Qa::new(QKind::TextOnly, format!("What is {a} times {b}?"), (a * b).to_string())
                .or_wrong((a * b + a).to_string())
        }
        2 => Qa::new(
            QKind::TextOnly,
            format!("Spell the word {word} backwards."),
            word.chars().rev().collect::<String>(),
        )
        .or_wrong(word),
        3 => Qa::new(QKind::TextOnly, format!("How many letters are in the word \"{word}\"?"), word.len().to_string())
            .or_wrong((word.len() + 1).to_string()),
        4 if a != b => Qa::new(QKind::TextOnly, format!("Which number is larger, {a} or {b}?"), a.max(b).to_string())
            .or_wrong(a.min(b).to_string()),
        5 => {
            let d = b % 4 + 1;
            let seq = format!("{}, {}, {}, {}", a, a + d, a + 2 * d, a + 3 * d);
            Qa::new(QKind::TextOnly, format!("What is the next number in the sequence {seq}?"), (a + 4 * d).to_string())
                .or_wrong((a + 5 * d).to_string())
        }
        6 => {
            let i = rng.random_range(0..DAYS.len());
            Qa::new(QKind::TextOnly, format!("Which day comes after {}?", DAYS[i]), DAYS[(i + 1) % 7])
                .or_wrong(DAYS[(i + 2) % 7])
        }
        7 => {
            let (q, ans, wrong) = pick(rng, &FACTS);
            Qa::new(QKind::TextOnly, q, ans).or_wrong(wrong)
        }
        8 => {
            let (big, small) = (a.max(b), a.min(b));
            Qa::new(QKind::TextOnly, format!("What is {big} minus {small}?"), (big - small).to_string())
                .or_wrong((big - small + 2).to_string())
        }
        _ => {
            let mut nums = [a, b, a + b];
            let asked = format!("{}, {}, {}", nums[2], nums[0], nums[1]);
            nums.sort_unstable();
            Qa::new(
                QKind::TextOnly,
                format!("Put these numbers in order from smallest to largest: {asked}."),
                format!("{}, {}, {}", nums[0], nums[1], nums[2]),
            )
        }
    }
}

/// Questions about the clip's object that one frame answers.
fn object_still_questions(clip: &Clip, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let (shape, colour) = (clip.shape.name(), clip.colour.name());
    let mut out = vec![
        still(format!("What colour is the {shape}?"), colour).or_wrong(clip.colour.other(rng).name()),
        still(format!("What shape is the {colour} object?"), shape).or_wrong(if clip.shape == Shape::Square {
            "disc"
        } else {
            "square"
        }),
    ];
    if rng.random_bool(0.5) {
        // Static, yet the regex fires on "first".
        out.push(still(format!("What colour is the {shape} in the first frame?"), colour));
    }
    out.push(mcq(
        QKind::Static,
        &format!("What colour is the {shape}?"),
        colour,
        &clip.colour.distractors(3, rng),
        rng,
    ));
    out
}

fn static_questions(clip: &Clip, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let obj = clip.object();
    let place = clip.place.name();
    let mut out = vec![
        temporal(format!("Does the {obj} move during the video?"), "no").or_wrong("yes"),
        temporal("Is the camera moving or still?", "still").or_wrong("moving"),
        temporal("Does anything move in this clip?", "No").or_wrong("Yes"),
        temporal(
            "Describe the motion in the clip.",
            format!("Nothing moves: the camera and the {obj} stay still for the whole clip."),
        ),
        still(format!("Where is the {obj} in the frame?"), place),
        mcq(
            QKind::Static,
            &format!("Where is the {obj}?"),
            place,
            &["left", "right", "top", "bottom"]
                .iter()
                .filter(|&&p| p != place)
                .map(|p| p.to_string())
                .collect::<Vec<_>>(),
            rng,
        ),
    ];
    out.extend(object_still_questions(clip, rng));
    out
}

fn pan_questions(clip: &Clip, dir: Dir, px: i32, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let obj = clip.object();
    let speed = if px >= 3 { Speed::Fast } else { Speed::Slow };
    let mut out = vec![
        temporal("Which way does the camera pan?", dir.name()).or_wrong(dir.opposite().name()),
        temporal("In which direction does the background move while the camera pans?", dir.opposite().name())
            .or_wrong(dir.name()),
        temporal("Is the camera panning fast or slow?", speed.name()),
        temporal(
            format!("After the first frame, which way does the {obj} drift across the frame?"),
            dir.opposite().name(),
        )
        .or_wrong(dir.name()),
        temporal("Describe the camera motion.", format!("The camera pans {} {}.", speed.adverb(), dir.adverb())),
        mcq(QKind::Temporal, "Which direction does the camera pan?", dir.name(), &dir.distractors(), rng),
    ];
    out.extend(object_still_questions(clip, rng));
    out
}

fn object_questions(clip: &Clip, dir: Dir, speed: Speed, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let (obj, shape) = (clip.object(), clip.shape.name());
    let mut out = vec![
        temporal(format!("In which direction does the {obj} move?"), dir.name()).or_wrong(dir.opposite().name()),
        temporal(
            format!("If the video were played backwards, which way would the {shape} move?"),
            dir.opposite().name(),
        )
        .or_wrong(dir.name()),
        temporal(format!("Does the {shape} move fast or slow?"), speed.name()),
        temporal(format!("Does the camera move while the {shape} moves?"), "no").or_wrong("yes"),
        temporal(
            "Describe what happens in the video.",
            format!(
                "A {obj} moves {} from the {} towards the {} of the frame while the camera stays still.",
                speed.adverb(),
                dir.start_side(),
                dir.end_side()
            ),
        ),
        still(format!("Where is the {shape} at the start of the clip?"), format!("near the {}", dir.start_side())),
        mcq(QKind::Temporal, &format!("Which direction does the {obj} move?"), dir.name(), &dir.distractors(), rng),
    ];
    if speed == Speed::Fast {
        // Only a fast object clearly reaches the far edge.
        out.push(
            temporal(
                format!("Where is the {shape} first, and where does it end up finally?"),
                format!("{}, then {}", dir.start_side(), dir.end_side()),
            )
            .or_wrong(format!("{}, then {}", dir.end_side(), dir.start_side())),
        );
        out.push(temporal(
            format!("Which side of the frame does the {obj} reach after it starts moving?"),
            dir.end_side(),
        ));
    }
    out.extend(object_still_questions(clip, rng));
    out
}

fn pan_plus_object_questions(clip: &Clip, pan: Dir, obj_dir: Dir, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let (obj, shape) = (clip.object(), clip.shape.name());
    let mut out = vec![
        temporal(format!("Which way does the camera pan while the {shape} moves?"), pan.name())
            .or_wrong(pan.opposite().name()),
        temporal(format!("In which direction does the {obj} move across the frame?"), obj_dir.name())
            .or_wrong(obj_dir.opposite().name()),
        temporal(format!("Do both the camera and the {shape} move?"), "yes").or_wrong("no"),
        temporal("Is the camera still or moving?", "moving").or_wrong("still"),
        mcq(QKind::Temporal, "Which direction does the camera pan?", pan.name(), &pan.distractors(), rng),
    ];
    out.extend(object_still_questions(clip, rng));
    out
}

fn appear_questions(clip: &Clip, pan: Dir, appears_first: bool, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let (obj, shape) = (clip.object(), clip.shape.name());
    let (order, other) = if appears_first { ("before", "after") } else { ("after", "before") };
    let mut out = vec![
        temporal(format!("Does the {obj} appear before or after the camera starts moving?"), order).or_wrong(other),
        temporal(format!("Is the {shape} visible in the first frame?"), "no").or_wrong("yes"),
        temporal("What appears during the video?", format!("a {obj}")),
        temporal("Which way does the camera pan once it starts moving?", pan.name()).or_wrong(pan.opposite().name()),
        temporal(
            format!("What happens first: the {shape} appears, or the camera starts to pan?"),
            if appears_first {
                format!("The {shape} appears first.")
            } else {
                "The camera starts to pan first.".into()
            },
        ),
        still("What colour is the object that appears?", clip.colour.name()).or_wrong(clip.colour.other(rng).name()),
        mcq(
            QKind::Temporal,
            &format!("When does the {obj} appear?"),
            &format!("{order} the camera starts moving"),
            &[format!("{other} the camera starts moving"), "it is there from the start".into()],
            rng,
        ),
    ];
    out.extend(object_still_questions(clip, rng).into_iter().take(1));
    out
}

fn colour_change_questions(clip: &Clip, to: Colour, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let shape = clip.shape.name();
    let (from, to) = (clip.colour.name(), to.name());
    vec![
        temporal(
            format!("What colour is the {shape} first, and what colour is it after the change?"),
            format!("{from}, then {to}"),
        )
        .or_wrong(format!("{to}, then {from}")),
        temporal(format!("What colour does the {shape} turn into?"), to).or_wrong(from),
        temporal(format!("Before the change, what colour is the {shape}?"), from).or_wrong(to),
        temporal(format!("Does the {shape} change colour?"), "yes").or_wrong("no"),
        temporal(format!("Does the {shape} move while its colour changes?"), "no"),
        still(format!("What colour is the {shape} in the last frame?"), to).or_wrong(from),
        {
            // Distractors: the colour before the change and two unrelated ones.
            let mut distractors: Vec<String> =
                clip.colour.distractors(3, rng).into_iter().filter(|c| c != to).take(2).collect();
            distractors.push(from.to_owned());
            mcq(QKind::Temporal, &format!("What colour is the {shape} finally?"), to, &distractors, rng)
        },
    ]
}

fn sequence_questions(clip: &Clip, first: Dir, then: Dir, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let (obj, shape) = (clip.object(), clip.shape.name());
    let order = format!("{}, then {}", first.name(), then.name());
    let mut out = vec![
        temporal(format!("Where does the {obj} go first, and where does it go next?"), order.clone())
            .or_wrong(format!("{}, then {}", then.name(), first.name())),
        temporal(
            format!("What does the {shape} do after it stops moving {}?", first.adverb()),
            format!("It moves {}.", then.adverb()),
        ),
        temporal(format!("In which direction does the {shape} move finally?"), then.name()).or_wrong(first.name()),
        temporal(format!("How many times does the {shape} change direction?"), "once").or_wrong("twice"),
        temporal(format!("Which direction does the {shape} move at the start?"), first.name()).or_wrong(then.name()),
        mcq(
            QKind::Temporal,
            &format!("What is the order of the {shape}'s movements?"),
            &order,
            &[
                format!("{}, then {}", then.name(), first.name()),
                format!("{}, then {}", first.opposite().name(), then.name()),
                format!("{}, then {}", first.name(), then.opposite().name()),
            ],
            rng,
        ),
    ];
    out.extend(object_still_questions(clip, rng).into_iter().take(2));
    out
}

/// The question bank of a training clip: kind-specific questions plus two text-only.
fn video_bank(clip: &Clip, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let mut bank = match clip.kind {
        ClipKind::Static | ClipKind::StaticNoise => static_questions(clip, rng),
        ClipKind::Pan { dir, px } => pan_questions(clip, dir, px, rng),
        ClipKind::Object { dir, speed } => object_questions(clip, dir, speed, rng),
        ClipKind::PanPlusObject { pan, obj } => pan_plus_object_questions(clip, pan, obj, rng),
        ClipKind::Appear { pan, appears_first } => appear_questions(clip, pan, appears_first, rng),
        ClipKind::ColourChange { to } => colour_change_questions(clip, to, rng),
        ClipKind::Sequence { first, then } => sequence_questions(clip, first, then, rng),
    };
    bank.push(text_only(rng));
    bank.push(text_only(rng));
    bank
}

/// The whole bank twice, the second time rephrased: one video far over the cap of 8.
fn popular_bank(bank: Vec<Qa>, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let prefixes = ["Based on the video, ", "Watch the clip carefully. ", "Looking at the frames, "];
    let mut out = bank.clone();
    for mut qa in bank {
        let prefix = pick(rng, &prefixes);
        let mut chars = qa.question.chars();
        let rest: String = match chars.next() {
            Some(c) if prefix.ends_with(", ") => c.to_lowercase().chain(chars).collect(),
            Some(c) => std::iter::once(c).chain(chars).collect(),
            None => String::new(),
        };
        qa.question = format!("{prefix}{rest}");
        out.push(qa);
    }
    out
}

fn shapes_questions(shapes: &[Placed], rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let n = shapes.len();
    let mut out = vec![
        visual("How many shapes are in the image?", n.to_string()).or_wrong((n + 1).to_string()),
        mcq(QKind::Visual, "How many shapes are in the image?", &n.to_string(), &number_distractors(n), rng),
    ];
    if let Some(p) = shapes.get(rng.random_range(0..n.max(1))) {
        let same = shapes.iter().filter(|q| q.colour == p.colour).count();
        let colour = p.colour.name();
        out.push(
            visual(format!("How many {colour} shapes are there?"), same.to_string()).or_wrong((same + 1).to_string()),
        );
        out.push(
            visual(format!("Subtract all {colour} objects. How many objects are left?"), (n - same).to_string())
                .or_wrong((n - same + 1).to_string()),
        );
    }
    let kind = pick(rng, &[Shape::Square, Shape::Circle, Shape::Triangle]);
    let count = shapes.iter().filter(|p| p.shape == kind).count();
    out.push(visual(format!("How many {} are there in the image?", kind.plural()), count.to_string()));
    if let Some(left) = shapes.iter().min_by(|a, b| a.cx.total_cmp(&b.cx)) {
        out.push(
            visual("What colour is the leftmost shape?", left.colour.name()).or_wrong(left.colour.other(rng).name()),
        );
        out.push(mcq(
            QKind::Visual,
            "What colour is the leftmost shape?",
            left.colour.name(),
            &left.colour.distractors(3, rng),
            rng,
        ));
    }
    if let Some(top) = shapes.iter().min_by(|a, b| a.cy.total_cmp(&b.cy)) {
        out.push(visual("Which shape is nearest the top of the image?", format!("the {}", top.label())));
    }
    // Left/right of two shapes with distinct labels, far enough apart to be clear.
    let unique = |p: &Placed| shapes.iter().filter(|q| q.label() == p.label()).count() == 1;
    if let Some((a, b)) = shapes.iter().enumerate().find_map(|(i, a)| {
        shapes[i + 1..].iter().find(|b| unique(a) && unique(b) && (a.cx - b.cx).abs() > 12.0).map(|b| (a, b))
    }) {
        let side = if a.cx < b.cx { "left" } else { "right" };
        let other = if side == "left" { "right" } else { "left" };
        out.push(
            visual(format!("Is the {} to the left or to the right of the {}?", a.label(), b.label()), side)
                .or_wrong(other),
        );
    }
    let listed: Vec<String> = shapes.iter().map(|p| format!("a {}", p.label())).collect();
    out.push(visual(
        "Describe the image.",
        format!("The image shows {} shapes on a textured background: {}.", n, listed.join(", ")),
    ));
    out
}

fn chart_questions(bars: &[Bar], rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let mut out = Vec::new();
    let tallest = bars.iter().max_by(|a, b| a.height.total_cmp(&b.height));
    let shortest = bars.iter().min_by(|a, b| a.height.total_cmp(&b.height));
    if let (Some(t), Some(s)) = (tallest, shortest) {
        out.push(visual("Which colour bar is the tallest?", t.colour.name()).or_wrong(s.colour.name()));
        out.push(visual("Which colour bar is the shortest?", s.colour.name()).or_wrong(t.colour.name()));
        let others: Vec<String> =
            bars.iter().filter(|b| b.colour != t.colour).map(|b| b.colour.name().to_owned()).collect();
        out.push(mcq(QKind::Visual, "Which bar is the tallest?", t.colour.name(), &others, rng));
        out.push(visual(
            "Describe the chart.",
            format!("A bar chart with {} bars; the {} bar is the tallest.", bars.len(), t.colour.name()),
        ));
    }
    out.push(
        visual("How many bars are shown in the chart?", bars.len().to_string()).or_wrong((bars.len() + 1).to_string()),
    );
    if let [a, b, ..] = bars {
        let yes = if a.height > b.height { "yes" } else { "no" };
        out.push(
            visual(format!("Is the {} bar taller than the {} bar?", a.colour.name(), b.colour.name()), yes)
                .or_wrong(if yes == "yes" { "no" } else { "yes" }),
        );
        out.push(visual("Which bar is second from the left?", b.colour.name()).or_wrong(a.colour.name()));
    }
    out
}

fn geometry_questions(kind: &StillKind) -> Vec<Qa> {
    match *kind {
        StillKind::Triangle { a, b } => {
            let c = 180 - a - b;
            vec![
                Qa::new(
                    QKind::TextOnly,
                    format!("In triangle ABC, angle A is {a} degrees and angle B is {b} degrees. What is the measure of angle C?"),
                    c.to_string(),
                )
                .or_wrong((c + 10).to_string()),
                Qa::new(QKind::TextOnly, "What is the sum of the interior angles of a triangle?", "180 degrees")
                    .or_wrong("360 degrees"),
                visual("What shape is drawn in the image?", "triangle").or_wrong("circle"),
            ]
        }
        StillKind::Circle { radius } => vec![
            Qa::new(
                QKind::TextOnly,
                format!("A circle has a radius of {radius} cm. What is its diameter?"),
                format!("{} cm", 2 * radius),
            )
            .or_wrong(format!("{radius} cm")),
            Qa::new(
                QKind::TextOnly,
                format!("A circle has a radius of {radius} cm. What is its circumference, rounded to one decimal?"),
                format!("{:.1} cm", 2.0 * std::f64::consts::PI * radius as f64),
            ),
            visual("What shape is drawn in the image?", "circle").or_wrong("triangle"),
        ],
        _ => Vec::new(),
    }
}

/// The question bank of a training image: kind-specific questions plus text-only ones.
fn image_bank(img: &Still, rng: &mut ChaCha8Rng) -> Vec<Qa> {
    let mut bank = match &img.kind {
        StillKind::Shapes(shapes) => shapes_questions(shapes, rng),
        StillKind::Chart(bars) => chart_questions(bars, rng),
        kind => geometry_questions(kind),
    };
    bank.push(text_only(rng));
    if matches!(img.kind, StillKind::Triangle { .. } | StillKind::Circle { .. }) {
        bank.push(text_only(rng));
        bank.push(text_only(rng));
    }
    bank
}

// ---------------------------------------------------------------------------------
// Rows

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Bench,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Bench => "bench",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `{"role": "user", "content": ...}`
    RoleContent,
    /// `{"from": "human", "value": ...}`
    FromValue,
    /// Alternating per pair (seen in real merged dumps).
    Mixed,
}

/// What the rows of one clip or image share.
struct Media {
    id_prefix: String,
    video_id: Option<String>,
    images: Vec<String>,
    data_source: &'static str,
    token: &'static str,
    media_kind: String,
    motion: Option<&'static str>,
}

fn clip_media(clip: &Clip) -> Media {
    Media {
        id_prefix: clip.name.clone(),
        video_id: Some(clip.name.clone()),
        images: clip.frame_paths(),
        data_source: clip.data_source,
        token: "<video>",
        media_kind: clip.kind.label(),
        motion: Some(clip.kind.motion()),
    }
}

fn image_media(img: &Still) -> Media {
    Media {
        id_prefix: img.name.clone(),
        video_id: None,
        images: vec![img.rel_path()],
        data_source: img.data_source,
        token: "<image>",
        media_kind: img.kind.label().to_owned(),
        motion: None,
    }
}

#[derive(Debug, Clone)]
struct Row {
    id: String,
    video_id: Option<String>,
    images: Vec<String>,
    pairs: Vec<Qa>,
    data_source: &'static str,
    token: &'static str,
    /// The media token after the question instead of before it.
    token_after: bool,
    layout: Layout,
    media_kind: String,
    motion: Option<&'static str>,
    near_duplicate_of: Option<String>,
    split: Split,
}

/// Groups a bank into rows: mostly one pair, some two or three (multi-turn) in training;
/// benchmark rows are single-turn.
fn rows_for_media(media: &Media, mut bank: Vec<Qa>, split: Split, rng: &mut ChaCha8Rng) -> Vec<Row> {
    let mut rows = Vec::new();
    while !bank.is_empty() {
        let take = match (split, rng.random_range(0..100)) {
            (Split::Bench, _) => 1,
            (_, 0..=15) => 2,
            (_, 16..=23) => 3,
            _ => 1,
        }
        .min(bank.len());
        let layout = match (split, rng.random_range(0..20)) {
            (Split::Bench, _) | (_, 0..=10) => Layout::RoleContent,
            (_, 11..=18) => Layout::FromValue,
            _ => Layout::Mixed,
        };
        rows.push(Row {
            id: format!("{}-{}", media.id_prefix, rows.len()),
            video_id: media.video_id.clone(),
            images: media.images.clone(),
            pairs: bank.drain(..take).collect(),
            data_source: media.data_source,
            token: media.token,
            token_after: split == Split::Train && rng.random_bool(0.1),
            layout,
            media_kind: media.media_kind.clone(),
            motion: media.motion,
            near_duplicate_of: None,
            split,
        });
    }
    rows
}

/// A copy of the text that differs only in whitespace, case or punctuation. Whitespace
/// changes vanish under the method's `norm`; the others survive it (near, not exact).
fn perturb(text: &str, rng: &mut ChaCha8Rng) -> String {
    match rng.random_range(0..5) {
        0 => text.replace(' ', "  "),
        1 => format!("  {text} \n"),
        2 => text.to_lowercase(),
        3 => match text.strip_suffix('?') {
            Some(stem) => format!("{stem} ?"),
            None => format!("{text}!"),
        },
        _ => text.to_uppercase(),
    }
}

/// Training rows' finishing touches: about 3% deliberately wrong answers, about 4% near
/// duplicates, then a seeded shuffle so rows of one clip are spread over the file.
fn finish_rows(rows: &mut Vec<Row>, rng: &mut ChaCha8Rng) {
    let single = |r: &Row| r.pairs.len() == 1;
    let mut candidates: Vec<usize> =
        (0..rows.len()).filter(|&i| single(&rows[i]) && rows[i].pairs[0].wrong.is_some()).collect();
    candidates.shuffle(rng);
    candidates.truncate((rows.len() * 3).div_ceil(100));
    for &i in &candidates {
        let qa = &mut rows[i].pairs[0];
        if let Some(wrong) = qa.wrong.clone() {
            qa.answer = wrong;
            qa.is_wrong = true;
        }
    }

    let mut originals: Vec<usize> =
        (0..rows.len()).filter(|&i| single(&rows[i]) && !rows[i].pairs[0].is_wrong).collect();
    originals.shuffle(rng);
    originals.truncate((rows.len() * 4).div_ceil(100));
    originals.sort_unstable();
    for i in originals {
        let mut dup = rows[i].clone();
        dup.near_duplicate_of = Some(dup.id.clone());
        dup.id = format!("{}-nd", dup.id);
        dup.pairs[0].question = perturb(&dup.pairs[0].question, rng);
        if rng.random_bool(0.3) {
            dup.pairs[0].answer = perturb(&dup.pairs[0].answer, rng);
        }
        dup.layout = if dup.layout == Layout::FromValue { Layout::RoleContent } else { Layout::FromValue };
        rows.push(dup);
    }
    rows.shuffle(rng);
}

#[derive(Serialize)]
struct RowOut<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    video_id: Option<&'a str>,
    images: &'a [String],
    messages: Vec<TurnOut<'a>>,
    data_source: &'a str,
    gdo_sample: TruthOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum TurnOut<'a> {
    Role { role: &'a str, content: String },
    From { from: &'a str, value: String },
}

#[derive(Serialize)]
struct TruthOut<'a> {
    kind: &'a str,
    needs_frames: bool,
    wrong_answer: bool,
    near_duplicate_of: Option<&'a str>,
    split: &'a str,
    media_kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    motion: Option<&'a str>,
    pairs: Vec<PairTruth>,
}

#[derive(Serialize)]
struct PairTruth {
    kind: &'static str,
    form: &'static str,
    needs_frames: bool,
    wrong_answer: bool,
}

fn turn(layout: Layout, index: usize, user: bool, text: String) -> TurnOut<'static> {
    let from_value = match layout {
        Layout::RoleContent => false,
        Layout::FromValue => true,
        Layout::Mixed => index % 2 == 1,
    };
    match (from_value, user) {
        (false, true) => TurnOut::Role { role: "user", content: text },
        (false, false) => TurnOut::Role { role: "assistant", content: text },
        (true, true) => TurnOut::From { from: "human", value: text },
        (true, false) => TurnOut::From { from: "gpt", value: text },
    }
}

fn row_json(row: &Row) -> io::Result<String> {
    let mut messages = Vec::with_capacity(row.pairs.len() * 2);
    for (i, qa) in row.pairs.iter().enumerate() {
        let question = match (i, row.token_after) {
            (0, false) => format!("{}\n{}", row.token, qa.question),
            (0, true) => format!("{}\n{}", qa.question, row.token),
            _ => qa.question.clone(),
        };
        messages.push(turn(row.layout, i, true, question));
        messages.push(turn(row.layout, i, false, qa.answer.clone()));
    }
    let first = row.pairs.first().map_or(QKind::TextOnly, |q| q.kind);
    let kind = if row.pairs.iter().all(|q| q.kind == first) { first.name() } else { "mixed" };
    let out = RowOut {
        id: &row.id,
        video_id: row.video_id.as_deref(),
        images: &row.images,
        messages,
        data_source: row.data_source,
        gdo_sample: TruthOut {
            kind,
            needs_frames: row.pairs.iter().any(|q| q.kind != QKind::TextOnly),
            wrong_answer: row.pairs.iter().any(|q| q.is_wrong),
            near_duplicate_of: row.near_duplicate_of.as_deref(),
            split: row.split.name(),
            media_kind: &row.media_kind,
            motion: row.motion,
            pairs: row
                .pairs
                .iter()
                .map(|q| PairTruth {
                    kind: q.kind.name(),
                    form: q.form.name(),
                    needs_frames: q.kind != QKind::TextOnly,
                    wrong_answer: q.is_wrong,
                })
                .collect(),
        },
    };
    serde_json::to_string(&out).map_err(io::Error::other)
}

/// The rows as JSONL with the broken lines inserted at seeded positions.
fn with_broken_lines(rows: &[Row], broken: &[String], rng: &mut ChaCha8Rng) -> io::Result<String> {
    let mut lines = rows.iter().map(row_json).collect::<io::Result<Vec<String>>>()?;
    for line in broken {
        let at = rng.random_range(1..=lines.len().max(1)).min(lines.len());
        lines.insert(at, line.clone());
    }
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn broken_truth(why: &str) -> String {
    format!(
        r#""gdo_sample": {{"kind": "broken", "needs_frames": false, "wrong_answer": false, "near_duplicate_of": null, "split": "train", "broken": "{why}"}}"#
    )
}

/// Lines of onevision.jsonl that ingest must reject, one per reason, and the blank line.
fn broken_image_lines(image: &str) -> Vec<String> {
    vec![
        // Truncated object: not valid JSON.
        format!(
            r#"{{"id": "broken-ov-1", "images": ["{image}"], "messages": [{{"role": "user", "content": "<image>\nWhat colour is the sq"#
        ),
        format!(
            r#"{{"id": "broken-ov-2", "images": [], "messages": [{{"role": "user", "content": "<image>\nHow many shapes are there?"}}, {{"role": "assistant", "content": "3"}}], "data_source": "vqav2(cauldron)", {}}}"#,
            broken_truth("empty_images")
        ),
        format!(
            r#"{{"id": "broken-ov-3", "messages": [{{"from": "human", "value": "<image>\nWhat colour is the circle?"}}, {{"from": "gpt", "value": "red"}}], "data_source": "vqav2(cauldron)", {}}}"#,
            broken_truth("missing_images")
        ),
        format!(
            r#"{{"id": "broken-ov-4", "images": ["{image}"], "messages": [{{"role": "user", "content": "<image>\nDescribe the image."}}], "data_source": "ai2d(cauldron,llava_format)", {}}}"#,
            broken_truth("no_answer")
        ),
        format!(
            r#"{{"id": "broken-ov-5", "images": ["{image}"], "messages": "oops", "data_source": "chartqa(cauldron,llava_format)", {}}}"#,
            broken_truth("wrong_type")
        ),
        String::new(),
    ]
}

/// Lines of video.jsonl that ingest must reject, one per reason.
fn broken_video_lines(clip: &str) -> Vec<String> {
    vec![
        format!(r#"{{"id": "broken-vv-1", "video_id": "{clip}", "images": ["frames/{clip}/00.jpg", "frames/{clip}/0"#),
        format!(
            r#"{{"id": "broken-vv-2", "video_id": "{clip}", "images": [], "messages": [{{"role": "user", "content": "<video>\nWhich way does the camera pan?"}}, {{"role": "assistant", "content": "left"}}], "data_source": "0_30_s_academic_v0_1", {}}}"#,
            broken_truth("empty_images")
        ),
        format!(
            r#"{{"id": "broken-vv-3", "video_id": "{clip}", "messages": [{{"role": "user", "content": "<video>\nDoes the disc move?"}}, {{"role": "assistant", "content": "no"}}], "data_source": "0_30_s_youtube_v0_1", {}}}"#,
            broken_truth("missing_images")
        ),
        format!(
            r#"{{"id": "broken-vv-4", "video_id": "{clip}", "images": ["frames/{clip}/00.jpg"], "messages": [{{"from": "human", "value": "<video>\nWhat happens next?"}}, {{"from": "gpt", "value": ""}}], "data_source": "0_30_s_nextqa", {}}}"#,
            broken_truth("no_answer")
        ),
        format!(
            r#"{{"id": "broken-vv-5", "video_id": "{clip}", "images": ["frames/{clip}/00.jpg"], "messages": [{{"role": "user", "content": 7}}, {{"role": "assistant", "content": 12}}], "data_source": "0_30_s_academic_v0_1", {}}}"#,
            broken_truth("wrong_type")
        ),
    ]
}

// ---------------------------------------------------------------------------------
// Held-out benchmarks

struct BenchCounts {
    clips: usize,
    images: usize,
}

/// Benchmark questions for a clip: phrased differently from the training templates (an
/// exact-question decontamination pass must not wipe out the training pool), single-word
/// or short answers.
fn bench_video_bank(clip: &Clip) -> Vec<Qa> {
    let (obj, shape, colour) = (clip.object(), clip.shape.name(), clip.colour.name());
    match clip.kind {
        ClipKind::Object { dir, .. } => vec![
            temporal(format!("Which way is the {obj} heading?"), dir.name()),
            temporal(format!("Once the clip ends, which edge is the {shape} closest to?"), dir.end_side()),
            temporal(format!("At first the {shape} is near which edge?"), dir.start_side()),
            temporal(format!("Played in reverse, which way would the {obj} travel?"), dir.opposite().name()),
        ],
        ClipKind::Pan { dir, .. } => vec![
            temporal("Which way is the camera turning?", dir.name()),
            temporal("As the camera moves, which way does the scenery slide?", dir.opposite().name()),
            temporal("Is the camera still or moving during the clip?", "moving"),
            temporal(
                format!("Toward which side does the {obj} drift after the first frame?"),
                dir.opposite().end_side(),
            ),
        ],
        ClipKind::PanPlusObject { pan, obj: d } => vec![
            temporal(format!("Which way does the {obj} travel while the camera moves?"), d.name()),
            temporal("Which way is the camera turning?", pan.name()),
            temporal(format!("Are both the camera and the {shape} moving?"), "yes"),
            temporal(format!("Played in reverse, which way would the {obj} travel?"), d.opposite().name()),
        ],
        ClipKind::Appear { pan, appears_first } => vec![
            temporal(
                format!("Which comes first: the {shape} showing up or the camera moving?"),
                if appears_first { shape } else { "camera" },
            ),
            temporal(format!("Is the {shape} present at the very beginning?"), "no"),
            temporal("Which object shows up later in the clip?", obj),
            temporal("Which way does the camera move after it starts?", pan.name()),
        ],
        ClipKind::ColourChange { to } => vec![
            temporal(format!("What colour does the {shape} have at the beginning?"), colour),
            temporal(format!("After the switch, what colour is the {shape}?"), to.name()),
            temporal(format!("Name the two colours of the {shape} in order."), format!("{colour} then {}", to.name())),
            temporal(format!("Does the {shape} keep the same colour throughout?"), "no"),
        ],
        ClipKind::Sequence { first, then } => vec![
            temporal(format!("Which way does the {obj} travel at first?"), first.name()),
            temporal(format!("Which way does the {shape} travel at the end?"), then.name()),
            temporal(
                format!("List the two directions of the {shape}'s path in order."),
                format!("{} then {}", first.name(), then.name()),
            ),
            temporal(format!("How many turns does the {shape} make?"), "one"),
            temporal(format!("What colour is the moving {shape} later in the clip?"), colour),
        ],
        ClipKind::Static | ClipKind::StaticNoise => vec![
            temporal("Is there any motion in the clip?", "no"),
            still(format!("Which colour is the {shape} shown?"), colour),
        ],
    }
}

fn bench_image_bank(shapes: &[Placed]) -> Vec<Qa> {
    let mut out = vec![visual("Count the shapes in the picture.", shapes.len().to_string())];
    if let Some(p) = shapes.first() {
        let same = shapes.iter().filter(|q| q.colour == p.colour).count();
        out.push(visual(format!("How many {} objects can you see?", p.colour.name()), same.to_string()));
    }
    if let Some(left) = shapes.iter().min_by(|a, b| a.cx.total_cmp(&b.cx)) {
        out.push(visual("Which colour is the object furthest to the left?", left.colour.name()));
    }
    let kind = if shapes.len().is_multiple_of(2) { Shape::Triangle } else { Shape::Square };
    let present = if shapes.iter().any(|p| p.shape == kind) { "yes" } else { "no" };
    out.push(visual(format!("Is there a {} in the picture?", kind.name()), present));
    out
}

fn bench_rows(media: &Media, bank: Vec<Qa>, prefix: &str, rng: &mut ChaCha8Rng) -> Vec<Row> {
    let mut rows = rows_for_media(media, bank, Split::Bench, rng);
    for row in &mut rows {
        row.id = format!("{prefix}-{}", row.id);
    }
    rows
}

fn write_bench_file(sink: &mut FileSink, name: &str, rows: &[Row]) -> io::Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row_json(row)?);
        text.push('\n');
    }
    sink.write(&format!("benchmarks/{name}"), text.as_bytes())
}

/// benchmarks/image_static.jsonl, video_temporal.jsonl, video_long.jsonl, from clips and
/// images of their own (benchmarks/frames/bench_*, benchmarks/images/bench_*).
fn write_benchmarks(seed: u64, sink: &mut FileSink) -> io::Result<BenchCounts> {
    let mut plan = stream_rng(seed, STREAM_BENCH_PLAN);
    let mut rng = stream_rng(seed, STREAM_BENCH_ROWS);
    let mut counts = BenchCounts { clips: 0, images: 0 };

    // Short temporal clips.
    let mut kinds: Vec<ClipKind> = Dir::ALL
        .iter()
        .flat_map(|&dir| [ClipKind::Object { dir, speed: Speed::Fast }, ClipKind::Pan { dir, px: 3 }])
        .collect();
    kinds.push(ClipKind::Object { dir: Dir::Right, speed: Speed::Fast });
    kinds.push(ClipKind::Object { dir: Dir::Left, speed: Speed::Fast });
    kinds.push(ClipKind::Appear { pan: Dir::Right, appears_first: true });
    kinds.push(ClipKind::Appear { pan: Dir::Down, appears_first: false });
    kinds.push(ClipKind::ColourChange { to: Colour::random(&mut plan) });
    kinds.push(ClipKind::ColourChange { to: Colour::random(&mut plan) });
    kinds.push(ClipKind::PanPlusObject { pan: Dir::Left, obj: Dir::Down });
    let mut rows = Vec::new();
    for (i, kind) in kinds.into_iter().enumerate() {
        let clip = make_clip(format!("bench_clip{i:03}"), kind, false, STREAM_BENCH_CLIP + i as u64, &mut plan);
        write_clip(&clip, "benchmarks/", seed, sink)?;
        counts.clips += 1;
        let mut media = clip_media(&clip);
        media.data_source = "bench_video_temporal";
        rows.extend(bench_rows(&media, bench_video_bank(&clip), "bvt", &mut rng));
    }
    write_bench_file(sink, "video_temporal.jsonl", &rows)?;

    // Longer clips.
    let mut rows = Vec::new();
    for i in 0..8 {
        let kind = match i {
            0..=5 => {
                let first = pick(&mut plan, &Dir::ALL);
                ClipKind::Sequence { first, then: first.perpendicular(&mut plan) }
            }
            6 => ClipKind::ColourChange { to: Colour::random(&mut plan) },
            _ => ClipKind::Appear { pan: pick(&mut plan, &Dir::ALL), appears_first: false },
        };
        let clip = make_clip(format!("bench_long{i:03}"), kind, true, STREAM_BENCH_LONG + i as u64, &mut plan);
        write_clip(&clip, "benchmarks/", seed, sink)?;
        counts.clips += 1;
        let mut media = clip_media(&clip);
        media.data_source = "bench_video_long";
        rows.extend(bench_rows(&media, bench_video_bank(&clip), "bvl", &mut rng));
    }
    write_bench_file(sink, "video_long.jsonl", &rows)?;

    // Still images.
    let mut rows = Vec::new();
    for i in 0..14 {
        let still = make_still(format!("bench_img{i:03}"), 0, Format::Jpeg, STREAM_BENCH_IMAGE + i as u64, seed);
        write_still(&still, "benchmarks/", sink)?;
        counts.images += 1;
        if let StillKind::Shapes(shapes) = &still.kind {
            let mut media = image_media(&still);
            media.data_source = "bench_image_static";
            rows.extend(bench_rows(&media, bench_image_bank(shapes), "bis", &mut rng));
        }
    }
    write_bench_file(sink, "image_static.jsonl", &rows)?;
    Ok(counts)
}

// ---------------------------------------------------------------------------------
// Synthetic pools

/// Share of image pairs in the reference fixture (10,862 of 18,358).
const SYNTH_IMAGE_SHARE: f64 = 0.5917;

/// Data sources and their row weights in the reference fixture.
const SYNTH_IMAGE_SOURCES: [(&str, u32); 11] = [
    ("CLEVR-Math(MathV360K)", 2990),
    ("ai2d(cauldron,llava_format)", 1495),
    ("chartqa(cauldron,llava_format)", 735),
    ("vqav2(cauldron)", 359),
    ("sharegpt4v(coco)", 198),
    ("image_textualization(filtered)", 96),
    ("geo170k(qa)", 52),
    ("textcaps", 20),
    ("infographic_vqa", 18),
    ("ureader_kg", 5),
    ("visual7w(cauldron,llava_format)", 4),
];

const SYNTH_VIDEO_SOURCES: [(&str, u32); 12] = [
    ("0_30_s_academic_v0_1", 1008),
    ("0_30_s_youtube_v0_1", 673),
    ("30_60_s_academic_v0_1", 437),
    ("30_60_s_youtube_v0_1", 296),
    ("1_2_m_academic_v0_1", 193),
    ("1_2_m_youtube_v0_1", 132),
    ("2_3_m_academic_v0_1", 101),
    ("0_30_s_nextqa", 63),
    ("0_30_s_activitynetqa", 38),
    ("30_60_s_perceptiontest", 30),
    ("1_2_m_nextqa", 15),
    ("2_3_m_activitynetqa", 14),
];

/// Well-formed rows between two broken lines of a synthetic pool.
const SYNTH_BROKEN_EVERY: usize = 500;

/// Pairs per row (weights for 1, 2, ...), close to the fixture's distributions.
const SYNTH_IMAGE_TURNS: [u32; 6] = [55, 24, 11, 5, 3, 2];
const SYNTH_VIDEO_TURNS: [u32; 8] = [40, 24, 14, 9, 6, 3, 2, 2];
/// Frame-list lengths of the fixture's video rows.
const SYNTH_FRAME_COUNTS: [usize; 7] = [1, 8, 16, 32, 64, 96, 180];

const NOUNS: [&str; 20] = [
    "dog", "car", "ball", "man", "woman", "child", "table", "chart", "street", "kitchen", "square", "circle",
    "triangle", "person", "bicycle", "window", "door", "tree", "cup", "book",
];
const ADJECTIVES: [&str; 10] =
    ["red", "green", "blue", "small", "large", "yellow", "wooden", "bright", "dark", "round"];
const VERBS: [&str; 10] =
    ["walks", "opens", "picks up", "moves", "holds", "drops", "turns", "jumps", "stops", "enters"];
const PLACES: [&str; 8] = ["left", "right", "top", "bottom", "centre", "corner", "background", "foreground"];
const NON_ASCII: [&str; 5] = ["café", "naïve", "größe", "東京", "señal"];

fn pick_weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| w).sum();
    let mut roll = rng.random_range(0..total.max(1));
    for &(item, w) in items {
        if roll < w {
            return item;
        }
        roll -= w;
    }
    items[items.len() - 1].0
}

fn pick_turns(rng: &mut ChaCha8Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut roll = rng.random_range(0..total.max(1));
    for (i, &w) in weights.iter().enumerate() {
        if roll < w {
            return i + 1;
        }
        roll -= w;
    }
    weights.len()
}

/// Appends `s` as a JSON string literal.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A synthetic question (appended to `q`) and its kind and form; video questions are
/// temporal about half the time (with words of the temporal regex).
fn synth_question(rng: &mut ChaCha8Rng, video: bool, q: &mut String) -> (QKind, Form) {
    let noun = pick(rng, &NOUNS);
    let other = pick(rng, &NOUNS);
    let adj = pick(rng, &ADJECTIVES);
    let verb = pick(rng, &VERBS);
    if rng.random_range(0..100) < 5 {
        let (a, b) = (rng.random_range(2..50), rng.random_range(2..50));
        let _ = write!(q, "What is {a} plus {b}?");
        return (QKind::TextOnly, Form::Open);
    }
    let kind = if video && rng.random_bool(0.55) {
        match rng.random_range(0..6) {
            0 => {
                let _ = write!(q, "What does the {adj} {noun} do after the {other} {verb}");
            }
            1 => {
                let _ = write!(q, "What happens first in the {noun} scene");
            }
            2 => {
                let _ = write!(q, "Where does the {noun} go next");
            }
            3 => {
                let _ = write!(q, "What does the {noun} do before it {verb}");
            }
            4 => {
                let _ = write!(q, "What is the {noun} doing while the {other} {verb}");
            }
            _ => {
                let _ = write!(q, "What happens finally to the {adj} {noun}");
            }
        }
        QKind::Temporal
    } else {
        match rng.random_range(0..5) {
            0 => {
                let _ = write!(q, "What colour is the {noun}");
            }
            1 => {
                let _ = write!(q, "How many {noun}s are in the {}", pick(rng, &PLACES));
            }
            2 => {
                let _ = write!(q, "Where is the {adj} {noun}");
            }
            3 => {
                let _ = write!(q, "What is the {noun} holding");
            }
            _ => {
                let _ = write!(q, "Is the {noun} {adj}");
            }
        }
        if video { QKind::Static } else { QKind::Visual }
    };
    // Longer questions, so every question-length bucket fills.
    if rng.random_bool(0.35) {
        for _ in 0..rng.random_range(1..=7) {
            let _ = write!(
                q,
                " in the {} of the {} near the {} {}",
                pick(rng, &PLACES),
                pick(rng, &NOUNS),
                pick(rng, &ADJECTIVES),
                pick(rng, &NOUNS)
            );
        }
    }
    if rng.random_range(0..100) == 0 {
        let _ = write!(q, " ({})", pick(rng, &NON_ASCII));
    }
    q.push('?');
    let form = match rng.random_range(0..100) {
        0..=11 => {
            q.push_str(" Choices:");
            for letter in &LETTERS[..4] {
                let _ = write!(q, " {letter}. {}", pick(rng, &NOUNS));
            }
            Form::Mcq
        }
        12..=14 => {
            for letter in &LETTERS[..4] {
                let _ = write!(q, "\n{letter}. {}", pick(rng, &NOUNS));
            }
            Form::McqNoKeyword
        }
        _ => Form::Open,
    };
    (kind, form)
}

/// A synthetic answer of 1 to about 50 words (appended to `a`).
fn synth_answer(rng: &mut ChaCha8Rng, form: Form, a: &mut String) {
    if form != Form::Open {
        a.push_str(pick(rng, &LETTERS[..4]));
        return;
    }
    let words = match rng.random_range(0..100) {
        0..=39 => rng.random_range(1..=2),
        40..=69 => rng.random_range(3..=8),
        70..=89 => rng.random_range(9..=24),
        _ => rng.random_range(25..=50),
    };
    for i in 0..words {
        if i > 0 {
            a.push(' ');
        }
        a.push_str(match rng.random_range(0..4) {
            0 => pick(rng, &ADJECTIVES),
            1 => pick(rng, &VERBS),
            2 => pick(rng, &PLACES),
            _ => pick(rng, &NOUNS),
        });
    }
}

struct SynthCounts {
    rows: usize,
    broken: usize,
    bytes: u64,
}

/// Writes rows until exactly `target_pairs` pairs are in the file.
fn write_synthetic(path: &Path, target_pairs: usize, video: bool, rng: &mut ChaCha8Rng) -> io::Result<SynthCounts> {
    let mut file = BufWriter::with_capacity(1 << 20, File::create(path)?);
    let mut counts = SynthCounts { rows: 0, broken: 0, bytes: 0 };
    let (prefix, token, sources, turns): (&str, &str, &[(&str, u32)], &[u32]) = if video {
        ("vid", "<video>", &SYNTH_VIDEO_SOURCES, &SYNTH_VIDEO_TURNS)
    } else {
        ("ov", "<image>", &SYNTH_IMAGE_SOURCES, &SYNTH_IMAGE_TURNS)
    };
    let mut line = String::with_capacity(16 * 1024);
    let (mut q, mut a, mut last_q) = (String::new(), String::new(), String::new());
    let (mut emitted, mut video_no, mut next_broken) = (0usize, 0usize, SYNTH_BROKEN_EVERY);
    while emitted < target_pairs {
        let row = counts.rows;
        line.clear();
        // One broken line per SYNTH_BROKEN_EVERY rows: truncated JSON, or no images.
        if row == next_broken {
            next_broken += SYNTH_BROKEN_EVERY;
            if counts.broken.is_multiple_of(2) {
                let _ = writeln!(line, r#"{{"id": "broken-{row}", "images": ["x.jpg"], "messages": ["#);
            } else {
                let _ = writeln!(
                    line,
                    r#"{{"id": "broken-{row}", "images": [], "messages": [{{"role": "user", "content": "hi?"}}, {{"role": "assistant", "content": "hello"}}]}}"#
                );
            }
            file.write_all(line.as_bytes())?;
            counts.bytes += line.len() as u64;
            counts.broken += 1;
            continue;
        }
        let n_turns = pick_turns(rng, turns).min(target_pairs - emitted);
        let _ = write!(line, r#"{{"id": "{prefix}-{row}", "#);
        if video {
            let vid = if rng.random_range(0..100) < 3 {
                "v-popular".to_owned()
            } else {
                if rng.random_bool(0.6) {
                    video_no += 1;
                }
                format!("v{video_no}")
            };
            let n_frames = pick(rng, &SYNTH_FRAME_COUNTS);
            let _ = write!(line, r#""video_id": "{vid}", "images": ["#);
            for j in 0..n_frames {
                if j > 0 {
                    line.push_str(", ");
                }
                let _ = write!(line, r#""frames/{vid}/{j:04}.jpg""#);
            }
            line.push_str("], ");
        } else {
            let _ = write!(line, r#""images": ["images/ov_{row}.jpg"], "#);
        }
        line.push_str(r#""messages": ["#);
        for t in 0..n_turns {
            q.clear();
            a.clear();
            let (_, form) = synth_question(rng, video, &mut q);
            // About 1% of rows repeat the previous row's question with extra whitespace.
            if t == 0 && !last_q.is_empty() && rng.random_range(0..100) == 0 {
                q.clear();
                q.push_str(&last_q.replace(' ', "  "));
            }
            synth_answer(rng, form, &mut a);
            if t == 0 {
                last_q.clone_from(&q);
            }
            let from_value = (row + t) % 2 == 1;
            let (ukey, ur, akey, ar, tkey) = if from_value {
                ("from", "human", "from", "gpt", "value")
            } else {
                ("role", "user", "role", "assistant", "content")
            };
            if t > 0 {
                line.push_str(", ");
            }
            let _ = write!(line, r#"{{"{ukey}": "{ur}", "{tkey}": "#);
            let text = if t == 0 { format!("{token}\n{q}") } else { q.clone() };
            push_json_str(&mut line, &text);
            let _ = write!(line, r#"}}, {{"{akey}": "{ar}", "{tkey}": "#);
            push_json_str(&mut line, &a);
            line.push('}');
        }
        line.push_str(r#"], "data_source": "#);
        push_json_str(&mut line, pick_weighted(rng, sources));
        // No `gdo_sample` labels here: rows keep the reference pool's size (the labels
        // made them a fifth larger than the fixture's, and ingest benches then read more
        // bytes per pair than the reference's own profile pass).
        line.push_str("}\n");
        file.write_all(line.as_bytes())?;
        counts.bytes += line.len() as u64;
        counts.rows += 1;
        emitted += n_turns;
    }
    file.flush()?;
    Ok(counts)
}

// ---------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    fn files_under(root: &Path) -> io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push(path.strip_prefix(root).map_err(io::Error::other)?.to_path_buf());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn read_lines(path: &Path) -> Vec<String> {
        fs::read_to_string(path).expect("read jsonl").lines().map(str::to_owned).collect()
    }

    /// Parsed well-formed rows of a JSONL file and the count of broken lines.
    fn parse_rows(path: &Path) -> (Vec<serde_json::Value>, usize) {
        let mut rows = Vec::new();
        let mut broken = 0;
        for line in read_lines(path) {
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) if v["gdo_sample"]["kind"] != "broken" => rows.push(v),
                _ => broken += 1,
            }
        }
        (rows, broken)
    }

    /// (question, answer) texts of a row, either turn layout.
    fn pairs_of(row: &serde_json::Value) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut pending = None;
        for turn in row["messages"].as_array().expect("messages list") {
            let role = turn.get("role").or_else(|| turn.get("from")).and_then(|v| v.as_str()).unwrap_or("");
            let text = turn.get("content").or_else(|| turn.get("value")).and_then(|v| v.as_str()).unwrap_or("");
            match role {
                "user" | "human" => pending = Some(text.to_owned()),
                "assistant" | "gpt" => {
                    if let Some(q) = pending.take() {
                        out.push((q, text.to_owned()));
                    }
                }
                _ => {}
            }
        }
        out
    }

    fn norm(s: &str) -> String {
        s.replace("<image>", " ").replace("<video>", " ").split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn same_seed_gives_identical_files() {
        let (a, b) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
        let sa = generate_sample_pool(a.path(), &SampleOptions::default()).expect("generate a");
        let sb = generate_sample_pool(b.path(), &SampleOptions { seed: 42 }).expect("generate b");
        assert_eq!(sa, sb);
        let (fa, fb) = (files_under(a.path()).expect("list a"), files_under(b.path()).expect("list b"));
        assert_eq!(fa, fb);
        for rel in &fa {
            let (da, db) = (fs::read(a.path().join(rel)).expect("read"), fs::read(b.path().join(rel)).expect("read"));
            assert!(da == db, "{} differs between runs", rel.display());
        }
        let total: u64 = fa.iter().map(|rel| fs::metadata(a.path().join(rel)).map(|m| m.len()).unwrap_or(0)).sum();
        assert_eq!(total, sa.bytes_written);

        let c = tempfile::tempdir().expect("tempdir");
        generate_sample_pool(c.path(), &SampleOptions { seed: 7 }).expect("generate c");
        let other = fs::read(c.path().join("video.jsonl")).expect("read");
        assert_ne!(other, fs::read(a.path().join("video.jsonl")).expect("read"), "another seed, another pool");
    }

    #[test]
    fn rows_parse_and_media_decode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let summary = generate_sample_pool(dir.path(), &SampleOptions::default()).expect("generate");
        let mut decoded = BTreeSet::new();
        let mut broken = 0;
        for name in [
            "onevision.jsonl",
            "video.jsonl",
            "benchmarks/image_static.jsonl",
            "benchmarks/video_temporal.jsonl",
            "benchmarks/video_long.jsonl",
        ] {
            let path = dir.path().join(name);
            let base = path.parent().expect("parent").to_path_buf();
            let (rows, bad) = parse_rows(&path);
            broken += bad;
            assert!(!rows.is_empty(), "{name} has rows");
            for row in &rows {
                let images = row["images"].as_array().expect("images list");
                assert!(!images.is_empty(), "{name}: {row}");
                for img in images {
                    let p = base.join(img.as_str().expect("path string"));
                    assert!(p.is_file(), "{} missing", p.display());
                    if decoded.insert(p.clone()) {
                        image::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                    }
                }
                assert!(!pairs_of(row).is_empty(), "{name}: row without a pair: {row}");
                let truth = &row["gdo_sample"];
                assert!(truth["needs_frames"].is_boolean() && truth["wrong_answer"].is_boolean());
                let split = if name.starts_with("benchmarks/") { "bench" } else { "train" };
                assert_eq!(truth["split"], split);
                if name == "video.jsonl" || name.contains("video_") {
                    assert!(row["video_id"].is_string(), "{row}");
                }
            }
        }
        assert_eq!(broken, summary.broken_lines);
        assert_eq!(decoded.len(), summary.frame_files + summary.images);
    }

    fn luma_frames(dir: &Path, row: &serde_json::Value) -> Vec<image::GrayImage> {
        row["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|p| image::open(dir.join(p.as_str().expect("path"))).expect("decode").to_luma8())
            .collect()
    }

    /// Mean |next(x, y) - prev(x + k, y)| over a fixed window.
    fn shifted_error(prev: &image::GrayImage, next: &image::GrayImage, k: u32) -> f64 {
        let (w, h) = prev.dimensions();
        let mut sum = 0.0;
        let mut n = 0.0;
        for y in 0..h {
            for x in 0..w - 8 {
                sum += (next.get_pixel(x, y).0[0] as f64 - prev.get_pixel(x + k, y).0[0] as f64).abs();
                n += 1.0;
            }
        }
        sum / n
    }

    #[test]
    fn pan_right_frames_are_shifted() {
        let dir = tempfile::tempdir().expect("tempdir");
        generate_sample_pool(dir.path(), &SampleOptions::default()).expect("generate");
        let (rows, _) = parse_rows(&dir.path().join("video.jsonl"));
        let mut seen = BTreeMap::new();
        for row in &rows {
            if row["gdo_sample"]["media_kind"] == "pan_right" {
                seen.entry(row["video_id"].as_str().expect("video_id").to_owned()).or_insert(row);
            }
        }
        assert!(seen.len() >= 2, "slow and fast pan_right clips");
        for (clip, row) in seen {
            let frames = luma_frames(dir.path(), row);
            for pair in frames.windows(2) {
                let errors: Vec<f64> = (0..=6).map(|k| shifted_error(&pair[0], &pair[1], k)).collect();
                let best = (0..errors.len()).min_by(|&a, &b| errors[a].total_cmp(&errors[b])).unwrap_or(0);
                assert!(best >= 1, "{clip}: the camera pans right, the scene moves left: {errors:?}");
                assert!(errors[best] < 0.5 * errors[0], "{clip}: shifted match must be clearly better: {errors:?}");
            }
        }
        // And a static clip's frames are identical.
        let still = rows.iter().find(|r| r["gdo_sample"]["media_kind"] == "static").expect("a static clip");
        let frames = luma_frames(dir.path(), still);
        assert!(frames.windows(2).all(|p| p[0] == p[1]));
    }

    #[test]
    fn pool_has_the_promised_shape() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = generate_sample_pool(dir.path(), &SampleOptions::default()).expect("generate");
        assert!((2_000_000..=5_500_000).contains(&s.bytes_written), "{s:?}");
        let training_clips = fs::read_dir(dir.path().join("frames")).expect("frames dir").count();
        assert!((48..=64).contains(&training_clips), "{training_clips} clips");
        let training_images = fs::read_dir(dir.path().join("images")).expect("images dir").count();
        assert!((40..=60).contains(&training_images), "{training_images} images");
        let (image_rows, _) = parse_rows(&dir.path().join("onevision.jsonl"));
        let (video_rows, _) = parse_rows(&dir.path().join("video.jsonl"));
        let image_pairs: usize = image_rows.iter().map(|r| pairs_of(r).len()).sum();
        let video_pairs: usize = video_rows.iter().map(|r| pairs_of(r).len()).sum();
        assert!((300..=500).contains(&image_pairs), "{image_pairs} image pairs");
        assert!((500..=800).contains(&video_pairs), "{video_pairs} video pairs");

        let mut per_video: BTreeMap<String, usize> = BTreeMap::new();
        for row in &video_rows {
            *per_video.entry(row["video_id"].as_str().expect("video_id").to_owned()).or_default() +=
                pairs_of(row).len();
        }
        assert!(per_video.values().any(|&n| n > 8), "one video over the per-video cap");

        let truth =
            |rows: &[serde_json::Value], key: &str| rows.iter().filter(|r| r["gdo_sample"][key] == true).count();
        assert!(truth(&video_rows, "wrong_answer") >= 5 && truth(&image_rows, "wrong_answer") >= 3);
        assert!(video_rows.iter().filter(|r| r["gdo_sample"]["near_duplicate_of"].is_string()).count() >= 5);
        assert!(video_rows.iter().any(|r| r["gdo_sample"]["needs_frames"] == false));
        let layouts =
            |rows: &[serde_json::Value], key: &str| rows.iter().filter(|r| r["messages"][0].get(key).is_some()).count();
        assert!(layouts(&image_rows, "from") > 0 && layouts(&image_rows, "role") > 0);
        assert!(image_rows.iter().any(|r| pairs_of(r).len() >= 2));
        let long = video_rows.iter().filter(|r| r["images"].as_array().map_or(0, Vec::len) >= 24).count();
        assert!(long > 0, "longer clips");

        // The temporal regex fires on some video questions and not on others; MCQ present.
        let re = regex::Regex::new(
            r"(?i)\b(before|after|then|while|during|first|next|finally|sequence|later|earlier|transition|happen)\b",
        )
        .expect("regex");
        let questions: Vec<String> = video_rows.iter().flat_map(pairs_of).map(|(q, _)| norm(&q)).collect();
        let temporal = questions.iter().filter(|q| re.is_match(q)).count();
        assert!(temporal > questions.len() / 5 && temporal < questions.len() * 4 / 5, "{temporal}/{}", questions.len());
        assert!(questions.iter().any(|q| q.to_lowercase().contains("choices")));

        // Media formats.
        let exts: BTreeSet<String> = fs::read_dir(dir.path().join("images"))
            .expect("images dir")
            .filter_map(|e| e.ok()?.path().extension()?.to_str().map(str::to_owned))
            .collect();
        assert_eq!(exts, ["jpg", "png", "webp"].iter().map(|s| s.to_string()).collect());

        // Benchmarks: sized, held out, no question shared with the training pool.
        let train: BTreeSet<String> =
            image_rows.iter().chain(&video_rows).flat_map(pairs_of).map(|(q, _)| norm(&q).to_lowercase()).collect();
        for name in ["image_static.jsonl", "video_temporal.jsonl", "video_long.jsonl"] {
            let (rows, broken) = parse_rows(&dir.path().join("benchmarks").join(name));
            assert_eq!(broken, 0);
            assert!((30..=80).contains(&rows.len()), "{name}: {} rows", rows.len());
            for row in &rows {
                for img in row["images"].as_array().expect("images") {
                    assert!(img.as_str().is_some_and(|p| p.contains("bench_")), "{name}: {img}");
                }
                for (q, a) in pairs_of(row) {
                    assert!(!train.contains(&norm(&q).to_lowercase()), "{name}: {q} is also a training question");
                    assert!(a.split_whitespace().count() <= 3, "{name}: short answers: {a}");
                }
            }
        }
    }

    #[test]
    fn synthetic_pool_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = generate_synthetic_pool(dir.path(), 1000, 42).expect("generate");
        let (image_rows, image_broken) = parse_rows(&dir.path().join("onevision.jsonl"));
        let (video_rows, video_broken) = parse_rows(&dir.path().join("video.jsonl"));
        assert_eq!((image_rows.len(), video_rows.len()), (s.image_rows, s.video_rows));
        assert_eq!(image_broken + video_broken, s.broken_lines);
        let image_pairs: usize = image_rows.iter().map(|r| pairs_of(r).len()).sum();
        let video_pairs: usize = video_rows.iter().map(|r| pairs_of(r).len()).sum();
        assert_eq!(image_pairs + video_pairs, 1000);
        assert!((560..=620).contains(&image_pairs), "{image_pairs}");
        for row in video_rows.iter().chain(&image_rows) {
            assert!(!row["images"].as_array().expect("images").is_empty());
            assert!(pairs_of(row).iter().all(|(q, a)| !norm(q).is_empty() && !a.is_empty()));
        }
        assert!(video_rows.iter().all(|r| r["video_id"].is_string()));
        // The reference fixture's pool is 9.15 MB of JSONL for 18,358 pairs (498 bytes a
        // pair); a 246k-pair pool of real LLaVA rows is 484. Benchmarks compare against those.
        let per_pair = s.bytes_written as f64 / 1000.0;
        assert!((440.0..=560.0).contains(&per_pair), "{per_pair:.0} bytes a pair");
        assert!(image_rows.iter().chain(&video_rows).all(|r| r.get("gdo_sample").is_none()));

        // Deterministic too.
        let again = tempfile::tempdir().expect("tempdir");
        generate_synthetic_pool(again.path(), 1000, 42).expect("generate");
        for name in ["onevision.jsonl", "video.jsonl"] {
            assert_eq!(
                fs::read(dir.path().join(name)).expect("read"),
                fs::read(again.path().join(name)).expect("read")
            );
        }
    }
}
