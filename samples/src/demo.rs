//! The demo's data (`generate_demo_data`): a pretraining set, a pool with the properties
//! the paper attributes to real instruction pools, the same-sized clean control pool, and
//! three held-out benchmark splits, all with real rendered media.
//!
//! Every pair is single-turn and closed-answer, so a benchmark's chance level is one over
//! its answer set. The skills:
//! - **colour** of the shape in a still image (`image_static`, 6 answers);
//! - **direction** an object moves in a short clip (`video_temporal`, 4 answers): the
//!   frames' order decides it;
//! - **the two legs** of a longer clip's right-angle path, first or after the turn
//!   (`video_long`, 4 answers).
//!
//! **Pretraining** (`pretrain.jsonl`) captions still scenes of 1-3 shapes ("a red square
//! at the left and a blue circle at the top"), motionless clips, and clips whose object
//! moves straight or turns once ("a blue disc moves up, then left"), on media
//! of its own: generic descriptions in sentences, never the pool's question templates
//! or its one-word answers (a pretrained model knows the skills, not the task format).
//!
//! **The pool** (`pool_image.jsonl`, `pool_video.jsonl`) mixes, by pair count
//! ([`POOL_SHARES`]): pairs that need frame order (a minority), colour questions about
//! images and about a frame of a clip, and five low-value kinds: near-duplicates of other
//! pool pairs (same media, text changed only in case, spacing or punctuation), questions
//! answered in their own text, motionless clips asked about as video, and wrong answers.
//! **The clean pool** (`clean_image.jsonl`, `clean_video.jsonl`) has the same size and the
//! same share of frame-order pairs, with none of the low-value kinds.
//!
//! `labels.csv` (`id,pool,kind`) gives every row's kind, so a subset's make-up can be
//! counted by joining its `source_id`. Benchmarks use the pool's question templates on
//! media of their own; no media file is shared between pretraining, the pools and the
//! benchmarks (each is rendered from its own random stream).

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{
    Clip, ClipKind, Colour, Dir, FileSink, Format, PALETTE, Place, Placed, Shape, Speed, Still, StillKind, Texture,
    perturb, pick, stream_rng, write_clip, write_still,
};

/// How big the demo's data is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoDataOptions {
    pub seed: u64,
    /// Pairs in the pool and in the clean pool.
    pub pool_pairs: usize,
    /// Captioned scenes in the pretraining set.
    pub pretrain_pairs: usize,
    /// Questions in each benchmark split.
    pub bench_questions: usize,
}

impl DemoDataOptions {
    /// The full demo: 1,500-pair pools, 2,000 pretraining captions, 200-question splits.
    pub fn full(seed: u64) -> Self {
        Self { seed, pool_pairs: 1500, pretrain_pairs: 2000, bench_questions: 200 }
    }

    /// The quick variant: 400-pair pools, 600 captions, 100-question splits.
    pub fn quick(seed: u64) -> Self {
        Self { seed, pool_pairs: 400, pretrain_pairs: 600, bench_questions: 100 }
    }
}

/// The kinds of pool pair and their shares of the pool, in percent (they sum to 100).
/// The clean pool keeps `temporal_short` and `temporal_long` and gives the low-value
/// kinds' shares to `image_colour` and `clip_colour`, half each (the odd point to images).
pub const POOL_SHARES: [(&str, usize); 8] = [
    ("temporal_short", 12),
    ("temporal_long", 8),
    ("image_colour", 15),
    ("clip_colour", 10),
    ("near_duplicate", 15),
    ("text_answer", 15),
    ("motionless_video", 15),
    ("wrong_answer", 10),
];

/// The low-value kinds of [`POOL_SHARES`].
pub const LOW_VALUE_KINDS: [&str; 4] = ["near_duplicate", "text_answer", "motionless_video", "wrong_answer"];

/// The benchmark splits: (name, file, is it video, chance = 1 / answers).
pub const DEMO_BENCHMARKS: [(&str, &str, bool, usize); 3] = [
    ("image_static", "bench_image_static.jsonl", false, 6),
    ("video_temporal", "bench_video_temporal.jsonl", true, 4),
    ("video_long", "bench_video_long.jsonl", true, 4),
];

/// What [`generate_demo_data`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DemoDataSummary {
    pub pretrain_pairs: usize,
    pub pool_pairs: usize,
    pub clean_pairs: usize,
    /// Pairs per kind in the pool, in [`POOL_SHARES`] order (kinds with a zero share left out).
    pub pool_kinds: Vec<(String, usize)>,
    /// Pairs per kind in the clean pool.
    pub clean_kinds: Vec<(String, usize)>,
    pub bench_questions: Vec<(String, usize)>,
    pub frame_files: usize,
    pub bytes_written: u64,
}

const STREAM_DEMO_PLAN: u64 = 40;
const STREAM_DEMO_MEDIA: u64 = 41 << 20;
const STREAM_DEMO_PRETRAIN: u64 = 42 << 20;
const STREAM_DEMO_BENCH: u64 = 43 << 20;
const SHORT_FRAMES: usize = 8;
const LONG_FRAMES: usize = 12;

/// One pair as written: its media, question and answer, kind and the row id.
struct Pair {
    id: String,
    video: bool,
    images: Vec<String>,
    question: String,
    answer: String,
    kind: &'static str,
}

impl Pair {
    /// A question about the colour of the shape `p` of the image `still`.
    fn colour_of(id: String, still: &Still, p: &Placed, question: String, kind: &'static str) -> Pair {
        Pair { id, video: false, images: vec![still.rel_path()], question, answer: p.colour.name().into(), kind }
    }
}

fn colour_question(rng: &mut ChaCha8Rng, shape: &str, video: bool) -> String {
    let templates: [&str; 3] = if video {
        ["What colour is the {s} in the video?", "Which colour is the {s} in this clip?", "Name the colour of the {s}."]
    } else {
        ["What colour is the {s}?", "Which colour does the {s} have?", "Name the colour of the {s}."]
    };
    pick(rng, &templates).replace("{s}", shape)
}

fn direction_question(rng: &mut ChaCha8Rng, object: &str) -> String {
    pick(rng, &["Which way does the {o} move?", "In which direction does the {o} travel?", "Where is the {o} heading?"])
        .replace("{o}", object)
}

fn leg_question(rng: &mut ChaCha8Rng, shape: &str, second: bool) -> String {
    let t: [&str; 2] = if second {
        ["Which way does the {s} move after it turns?", "After the turn, which way does the {s} go?"]
    } else {
        ["Which way does the {s} move before it turns?", "Before the turn, which way does the {s} go?"]
    };
    pick(rng, &t).replace("{s}", shape)
}

/// A still scene of 1-3 shapes of different kinds, each of a random colour.
fn scene_still(name: String, stream: u64, seed: u64, max_shapes: usize) -> Still {
    let mut rng = stream_rng(seed, stream);
    let texture = Texture::random(&mut rng);
    let mut kinds = [Shape::Square, Shape::Circle, Shape::Triangle];
    kinds.shuffle(&mut rng);
    let count = rng.random_range(1..=max_shapes.clamp(1, 3));
    let mut placed: Vec<Placed> = Vec::new();
    for &shape in kinds.iter().take(count) {
        for _ in 0..100 {
            let size = rng.random_range(20.0..30.0f32);
            let cx = rng.random_range(size..super::IMAGE_W as f32 - size);
            let cy = rng.random_range(size..super::IMAGE_H as f32 - size);
            let free =
                placed.iter().all(|p| ((p.cx - cx).powi(2) + (p.cy - cy).powi(2)).sqrt() > (p.size + size) / 2.0 + 6.0);
            if free {
                placed.push(Placed { shape, colour: Colour::random(&mut rng), cx, cy, size });
                break;
            }
        }
    }
    if placed.is_empty() {
        // Rejection sampling cannot fail for the first shape, but stay total.
        placed.push(Placed { shape: kinds[0], colour: Colour::random(&mut rng), cx: 80.0, cy: 60.0, size: 24.0 });
    }
    Still { name, kind: StillKind::Shapes(placed), format: Format::Jpeg, data_source: "demo_shapes", texture }
}

fn shapes_of(still: &Still) -> &[Placed] {
    match &still.kind {
        StillKind::Shapes(s) => s,
        _ => &[],
    }
}

/// Where a shape sits, in words (thirds of the image).
fn place_word(p: &Placed) -> &'static str {
    let (fx, fy) = (p.cx / super::IMAGE_W as f32, p.cy / super::IMAGE_H as f32);
    if (fx - 0.5).abs() >= (fy - 0.5).abs() {
        if fx < 0.4 {
            "left"
        } else if fx > 0.6 {
            "right"
        } else {
            "centre"
        }
    } else if fy < 0.4 {
        "top"
    } else if fy > 0.6 {
        "bottom"
    } else {
        "centre"
    }
}

fn caption(shapes: &[Placed]) -> String {
    let parts: Vec<String> = shapes.iter().map(|p| format!("a {} at the {}", p.label(), place_word(p))).collect();
    parts.join(" and ")
}

fn clip(name: String, kind: ClipKind, n_frames: usize, rng: &mut ChaCha8Rng, stream: u64) -> Clip {
    let place = match kind {
        ClipKind::Static | ClipKind::StaticNoise => pick(rng, &[Place::Left, Place::Right, Place::Top, Place::Bottom]),
        _ => Place::Centre,
    };
    Clip {
        name,
        kind,
        n_frames,
        data_source: "demo_clips",
        shape: pick(rng, &[Shape::Square, Shape::Disc]),
        colour: Colour::random(rng),
        place,
        stream,
    }
}

/// Renders media and turns them into pairs; counts what it wrote.
struct Maker<'a, 'b> {
    sink: &'b mut FileSink<'a>,
    seed: u64,
    plan: ChaCha8Rng,
    next_media: u64,
}

impl Maker<'_, '_> {
    fn media_stream(&mut self, base: u64) -> u64 {
        self.next_media += 1;
        base + self.next_media
    }

    fn image(&mut self, prefix: &str, base: u64, max_shapes: usize) -> io::Result<Still> {
        let stream = self.media_stream(base);
        let still = scene_still(format!("{prefix}{stream:08x}"), stream, self.seed, max_shapes);
        write_still(&still, "", self.sink)?;
        Ok(still)
    }

    fn clip(&mut self, prefix: &str, kind: ClipKind, frames: usize, base: u64) -> io::Result<Clip> {
        let stream = self.media_stream(base);
        let c = clip(format!("{prefix}{stream:08x}"), kind, frames, &mut self.plan, stream);
        let before = self.sink.frame_files;
        write_clip(&c, "", self.seed, self.sink)?;
        debug_assert_eq!(self.sink.frame_files - before, frames);
        Ok(c)
    }

    fn moving_clip(&mut self, prefix: &str, base: u64) -> io::Result<(Clip, Dir)> {
        let dir = pick(&mut self.plan, &Dir::ALL);
        Ok((self.clip(prefix, ClipKind::Object { dir, speed: Speed::Fast }, SHORT_FRAMES, base)?, dir))
    }

    fn turning_clip(&mut self, prefix: &str, base: u64) -> io::Result<(Clip, Dir, Dir)> {
        let first = pick(&mut self.plan, &Dir::ALL);
        let then = first.perpendicular(&mut self.plan);
        Ok((self.clip(prefix, ClipKind::Sequence { first, then }, LONG_FRAMES, base)?, first, then))
    }

    /// One pair of a good kind, on media of its own.
    fn good_pair(&mut self, kind: &'static str, id: String, base: u64) -> io::Result<Pair> {
        Ok(match kind {
            "temporal_short" => {
                let (c, dir) = self.moving_clip("m", base)?;
                let q = direction_question(&mut self.plan, &c.object());
                Pair { id, video: true, images: c.frame_paths(), question: q, answer: dir.name().into(), kind }
            }
            "temporal_long" => {
                let (c, first, then) = self.turning_clip("t", base)?;
                let second = self.plan.random_bool(0.5);
                let q = leg_question(&mut self.plan, c.shape.name(), second);
                let a = if second { then } else { first };
                Pair { id, video: true, images: c.frame_paths(), question: q, answer: a.name().into(), kind }
            }
            "clip_colour" => {
                let (c, _) = self.moving_clip("m", base)?;
                let q = colour_question(&mut self.plan, c.shape.name(), true);
                Pair { id, video: true, images: c.frame_paths(), question: q, answer: c.colour.name().into(), kind }
            }
            _ => {
                let still = self.image("i", base, 1)?;
                let shapes = shapes_of(&still);
                let p = shapes[self.plan.random_range(0..shapes.len())];
                let q = colour_question(&mut self.plan, p.shape.name(), false);
                Pair::colour_of(id, &still, &p, q, kind)
            }
        })
    }

    /// One low-value pair (`near_duplicate` copies one of `good`).
    fn low_value_pair(&mut self, kind: &'static str, id: String, good: &[Pair], base: u64) -> io::Result<Pair> {
        Ok(match kind {
            "near_duplicate" => {
                let of = &good[self.plan.random_range(0..good.len())];
                Pair {
                    id,
                    video: of.video,
                    images: of.images.clone(),
                    question: perturb(&of.question, &mut self.plan),
                    answer: of.answer.clone(),
                    kind,
                }
            }
            "text_answer" => {
                // The answer is in the question: no frame is needed.
                if self.plan.random_bool(0.5) {
                    let (c, dir) = self.moving_clip("m", base)?;
                    let q = format!(
                        "The {} moves {}. Which way does the {} move?",
                        c.object(),
                        dir.adverb(),
                        c.shape.name()
                    );
                    Pair { id, video: true, images: c.frame_paths(), question: q, answer: dir.name().into(), kind }
                } else {
                    let still = self.image("i", base, 1)?;
                    let p = shapes_of(&still)[0];
                    let q = format!(
                        "The {} is {}. What colour is the {}?",
                        p.shape.name(),
                        p.colour.name(),
                        p.shape.name()
                    );
                    Pair::colour_of(id, &still, &p, q, kind)
                }
            }
            "motionless_video" => {
                let c = self.clip("s", ClipKind::Static, SHORT_FRAMES, base)?;
                let q = colour_question(&mut self.plan, c.shape.name(), true);
                Pair { id, video: true, images: c.frame_paths(), question: q, answer: c.colour.name().into(), kind }
            }
            _ => {
                // wrong_answer: a good pair of a random kind whose answer is replaced by
                // another answer of the same type.
                let like = pick(&mut self.plan, &["temporal_short", "temporal_long", "image_colour", "clip_colour"]);
                let mut p = self.good_pair(like, id, base)?;
                p.answer = wrong_answer(&p.answer, &mut self.plan);
                p.kind = kind;
                p
            }
        })
    }
}

fn wrong_answer(answer: &str, rng: &mut ChaCha8Rng) -> String {
    if let Some(d) = Dir::ALL.iter().find(|d| d.name() == answer) {
        let others = d.distractors();
        return others[rng.random_range(0..others.len())].clone();
    }
    let at = PALETTE.iter().position(|(n, _)| *n == answer).unwrap_or(0);
    Colour(at).other(rng).name().to_owned()
}

fn pair_json(p: &Pair, source: &str) -> io::Result<String> {
    let token = if p.video { "<video>" } else { "<image>" };
    let mut row = serde_json::json!({
        "id": p.id,
        "images": p.images,
        "messages": [
            { "role": "user", "content": format!("{token}\n{}", p.question) },
            { "role": "assistant", "content": p.answer },
        ],
        "data_source": source,
    });
    if p.video {
        row["video_id"] =
            serde_json::Value::String(p.images.first().and_then(|f| f.split('/').nth(1)).unwrap_or("").to_owned());
    }
    serde_json::to_string(&row).map_err(io::Error::other)
}

fn write_jsonl(sink: &mut FileSink, name: &str, pairs: &[&Pair], source: &str) -> io::Result<()> {
    let mut text = String::new();
    for p in pairs {
        text.push_str(&pair_json(p, source)?);
        text.push('\n');
    }
    sink.write(name, text.as_bytes())
}

/// `n` kinds in the given shares (largest-remainder rounding), in a seeded order.
fn kind_plan(shares: &[(&'static str, usize)], n: usize, rng: &mut ChaCha8Rng) -> Vec<&'static str> {
    let total: usize = shares.iter().map(|s| s.1).sum::<usize>().max(1);
    let mut counts: Vec<(usize, usize, &'static str)> =
        shares.iter().map(|&(k, s)| (s * n / total, (s * n) % total, k)).collect();
    let mut left = n - counts.iter().map(|c| c.0).sum::<usize>();
    let mut by_rem: Vec<usize> = (0..counts.len()).collect();
    by_rem.sort_by(|&a, &b| counts[b].1.cmp(&counts[a].1).then(a.cmp(&b)));
    for i in by_rem {
        if left == 0 {
            break;
        }
        if shares[i].1 > 0 {
            counts[i].0 += 1;
            left -= 1;
        }
    }
    let mut plan: Vec<&'static str> = counts.iter().flat_map(|&(c, _, k)| std::iter::repeat_n(k, c)).collect();
    plan.shuffle(rng);
    plan
}

fn count_kinds(pairs: &[&Pair]) -> Vec<(String, usize)> {
    POOL_SHARES
        .iter()
        .map(|&(k, _)| (k.to_owned(), pairs.iter().filter(|p| p.kind == k).count()))
        .filter(|(_, c)| *c > 0)
        .collect()
}

/// Writes the demo's data into `out` (see the module docs for the files).
pub fn generate_demo_data(out: &Path, opts: &DemoDataOptions) -> io::Result<DemoDataSummary> {
    std::fs::create_dir_all(out)?;
    let mut sink = FileSink::new(out);
    let mut m =
        Maker { sink: &mut sink, seed: opts.seed, plan: stream_rng(opts.seed, STREAM_DEMO_PLAN), next_media: 0 };
    let n = opts.pool_pairs;

    // The clean pool's pairs, of which the pool keeps the first `good` in the same order.
    let low_share: usize = POOL_SHARES.iter().filter(|(k, _)| LOW_VALUE_KINDS.contains(k)).map(|s| s.1).sum();
    let mut clean_shares: Vec<(&'static str, usize)> =
        POOL_SHARES.iter().copied().filter(|(k, s)| !LOW_VALUE_KINDS.contains(k) && *s > 0).collect();
    for s in clean_shares.iter_mut() {
        match s.0 {
            "image_colour" => s.1 += low_share - low_share / 2,
            "clip_colour" => s.1 += low_share / 2,
            _ => {}
        }
    }
    let pool_plan = kind_plan(&POOL_SHARES, n, &mut m.plan);
    let mut good_needed: Vec<&'static str> =
        pool_plan.iter().copied().filter(|k| !LOW_VALUE_KINDS.contains(k)).collect();
    // The clean pool: the pool's good pairs first, then more good pairs until the same
    // size, with the extra ones chosen so its kinds have the clean shares.
    let clean_target = kind_plan(&clean_shares, n, &mut m.plan);
    for &(k, _) in &clean_shares {
        let want = clean_target.iter().filter(|&&x| x == k).count();
        let have = good_needed.iter().filter(|&&x| x == k).count();
        good_needed.extend(std::iter::repeat_n(k, want.saturating_sub(have)));
    }
    good_needed.truncate(n);
    let pool_good = pool_plan.iter().filter(|k| !LOW_VALUE_KINDS.contains(k)).count();
    let mut good = Vec::with_capacity(n);
    for (i, &k) in good_needed.iter().enumerate() {
        good.push(m.good_pair(k, format!("g{i:05}"), STREAM_DEMO_MEDIA)?);
    }
    let mut low = Vec::new();
    for (i, &k) in pool_plan.iter().filter(|k| LOW_VALUE_KINDS.contains(k)).enumerate() {
        let p = m.low_value_pair(k, format!("x{i:05}"), &good[..pool_good], STREAM_DEMO_MEDIA)?;
        low.push(p);
    }
    // Interleave the pool in the plan's order: good pairs where the plan has a good kind.
    let mut pool: Vec<&Pair> = Vec::with_capacity(n);
    let (mut gi, mut li) = (0, 0);
    for k in &pool_plan {
        if LOW_VALUE_KINDS.contains(k) {
            pool.push(&low[li]);
            li += 1;
        } else {
            pool.push(&good[gi]);
            gi += 1;
        }
    }
    let clean: Vec<&Pair> = good.iter().collect();

    // Pretraining captions on media of their own: still scenes, motionless clips, and
    // clips whose object moves straight or turns once, described in sentences (the
    // pool asks one-word questions instead).
    let mut pretrain = Vec::with_capacity(opts.pretrain_pairs);
    for i in 0..opts.pretrain_pairs {
        let id = format!("p{i:05}");
        let describe_video = ["Describe the video.", "What happens in the clip?"];
        let p = match m.plan.random_range(0..10) {
            0..=3 => {
                let still = m.image("pi", STREAM_DEMO_PRETRAIN, 3)?;
                let q = pick(&mut m.plan, &["Describe the image.", "What is in the picture?"]).to_owned();
                let answer = caption(shapes_of(&still));
                Pair { id, video: false, images: vec![still.rel_path()], question: q, answer, kind: "caption" }
            }
            4..=5 => {
                let c = m.clip("ps", ClipKind::Static, SHORT_FRAMES, STREAM_DEMO_PRETRAIN)?;
                let (fx, fy) = c.place.fraction();
                let (cx, cy) = (fx * super::IMAGE_W as f32, fy * super::IMAGE_H as f32);
                let p = Placed { shape: c.shape, colour: c.colour, cx, cy, size: 18.0 };
                let answer = format!("{} that stays still", caption(&[p]));
                let q = pick(&mut m.plan, &describe_video).to_owned();
                Pair { id, video: true, images: c.frame_paths(), question: q, answer, kind: "caption" }
            }
            6..=7 => {
                let (c, dir) = m.moving_clip("pm", STREAM_DEMO_PRETRAIN)?;
                let answer = format!("a {} moves {}", c.object(), dir.name());
                let q = pick(&mut m.plan, &describe_video).to_owned();
                Pair { id, video: true, images: c.frame_paths(), question: q, answer, kind: "caption" }
            }
            _ => {
                let (c, first, then) = m.turning_clip("pt", STREAM_DEMO_PRETRAIN)?;
                let answer = format!("a {} moves {}, then {}", c.object(), first.name(), then.name());
                let q = pick(&mut m.plan, &describe_video).to_owned();
                Pair { id, video: true, images: c.frame_paths(), question: q, answer, kind: "caption" }
            }
        };
        pretrain.push(p);
    }

    // Benchmarks: the pool's templates on media of their own.
    let mut bench: Vec<Vec<Pair>> = Vec::new();
    for (s, &(name, _, _, _)) in DEMO_BENCHMARKS.iter().enumerate() {
        let mut rows = Vec::with_capacity(opts.bench_questions);
        for i in 0..opts.bench_questions {
            let id = format!("b{s}{i:05}");
            let kind = match name {
                "image_static" => "image_colour",
                "video_temporal" => "temporal_short",
                _ => "temporal_long",
            };
            let mut p = m.good_pair(kind, id, STREAM_DEMO_BENCH)?;
            p.kind = "benchmark";
            rows.push(p);
        }
        bench.push(rows);
    }

    write_jsonl(m.sink, "pretrain.jsonl", &pretrain.iter().collect::<Vec<_>>(), "demo_pretrain")?;
    let (pool_img, pool_vid): (Vec<&Pair>, Vec<&Pair>) = pool.iter().partition(|p| !p.video);
    let (clean_img, clean_vid): (Vec<&Pair>, Vec<&Pair>) = clean.iter().partition(|p| !p.video);
    write_jsonl(m.sink, "pool_image.jsonl", &pool_img, "demo_pool")?;
    write_jsonl(m.sink, "pool_video.jsonl", &pool_vid, "demo_pool")?;
    write_jsonl(m.sink, "clean_image.jsonl", &clean_img, "demo_clean")?;
    write_jsonl(m.sink, "clean_video.jsonl", &clean_vid, "demo_clean")?;
    for (rows, &(name, file, _, _)) in bench.iter().zip(&DEMO_BENCHMARKS) {
        write_jsonl(m.sink, file, &rows.iter().collect::<Vec<_>>(), &format!("bench_{name}"))?;
    }
    let mut labels = String::from("id,pool,kind\n");
    for (set, rows) in [("pool", &pool), ("clean", &clean)] {
        for p in rows.iter() {
            let _ = writeln!(labels, "{},{set},{}", p.id, p.kind);
        }
    }
    m.sink.write("labels.csv", labels.as_bytes())?;

    Ok(DemoDataSummary {
        pretrain_pairs: pretrain.len(),
        pool_pairs: pool.len(),
        clean_pairs: clean.len(),
        pool_kinds: count_kinds(&pool),
        clean_kinds: count_kinds(&clean),
        bench_questions: DEMO_BENCHMARKS.iter().zip(&bench).map(|(b, r)| (b.0.to_owned(), r.len())).collect(),
        frame_files: sink.frame_files,
        bytes_written: sink.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((p.strip_prefix(dir).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn demo_data_is_reproducible_and_has_the_stated_shares() {
        let opts = DemoDataOptions { seed: 3, pool_pairs: 200, pretrain_pairs: 20, bench_questions: 12 };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let sa = generate_demo_data(a.path(), &opts).unwrap();
        let sb = generate_demo_data(b.path(), &opts).unwrap();
        assert_eq!(sa, sb);
        assert!(read_all(a.path()) == read_all(b.path()), "same seed, same bytes");
        assert_eq!((sa.pool_pairs, sa.clean_pairs, sa.pretrain_pairs), (200, 200, 20));
        // Each kind holds its share of the pool (200 pairs: 2 pairs per percent).
        for (kind, share) in POOL_SHARES {
            let got = sa.pool_kinds.iter().find(|(k, _)| k == kind).map_or(0, |k| k.1);
            assert_eq!(got, 2 * share, "{kind}");
        }
        // The clean pool: the same frame-order pairs, no low-value kind.
        for (kind, n) in &sa.clean_kinds {
            assert!(!LOW_VALUE_KINDS.contains(&kind.as_str()), "{kind}");
            if kind.starts_with("temporal") {
                assert_eq!(Some(n), sa.pool_kinds.iter().find(|(k, _)| k == kind).map(|k| &k.1));
            }
        }
        assert_eq!(sa.clean_kinds.iter().map(|k| k.1).sum::<usize>(), 200);
        // Every line parses, and its frames exist; benchmark answers are in their answer set.
        let text = std::fs::read_to_string(a.path().join("bench_video_temporal.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 12);
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let answer = v["messages"][1]["content"].as_str().unwrap();
            assert!(["left", "right", "up", "down"].contains(&answer), "{answer}");
            for f in v["images"].as_array().unwrap() {
                assert!(a.path().join(f.as_str().unwrap()).exists());
            }
        }
        let labels = std::fs::read_to_string(a.path().join("labels.csv")).unwrap();
        assert_eq!(labels.lines().count(), 1 + 400);
        // A different seed gives different data.
        let c = tempfile::tempdir().unwrap();
        generate_demo_data(c.path(), &DemoDataOptions { seed: 4, ..opts }).unwrap();
        assert!(read_all(a.path()) != read_all(c.path()));
    }
}
