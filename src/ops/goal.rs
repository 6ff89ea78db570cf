//! The method's selection logic (method §5.1, 5.4, 5.5, 5.6-5.8), free of DataFusion so
//! it can be tested alone: profile from the strata table, budget, quotas and hard
//! constraints, per-stratum candidate heaps, the reservoir, the six fill stages and
//! the Uni-10x draw. The operators in `goal_select.rs` and `uni_sample.rs` feed it.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, HashSet};

use datafusion::common::{Result, plan_err};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use super::params::GoalParams;

/// A scored row as `scan_pairs` offers it: borrowed, so rows nobody keeps cost no
/// allocation.
pub struct PairRef<'a> {
    pub pool_index: i64,
    pub qa_uid: &'a str,
    pub video_uid: &'a str,
    pub text_hash: &'a str,
    pub stratum: u32,
    pub score: f64,
    pub base_score: f64,
    pub vds3: f64,
    pub metric_quality: f64,
}

impl PairRef<'_> {
    pub fn to_pair(&self, tie: u64) -> Pair {
        Pair {
            pool_index: self.pool_index,
            qa_uid: self.qa_uid.to_string(),
            video_uid: self.video_uid.to_string(),
            text_hash: self.text_hash.to_string(),
            stratum: self.stratum,
            score: self.score,
            base_score: self.base_score,
            vds3: self.vds3,
            metric_quality: self.metric_quality,
            tie,
        }
    }
}

/// Index of the video bucket field etc. inside a stratum key
/// (`bucket|duration|temporal|form|q_len|a_len|source_group`).
pub const PROFILE_FIELDS: [&str; 7] =
    ["bucket", "duration_bucket", "temporal_category", "question_form", "q_len_bucket", "a_len_bucket", "source_group"];

/// One stratum of the pool.
#[derive(Debug, Clone)]
pub struct Stratum {
    pub key: String,
    pub pairs: u64,
    pub first_seen: i64,
    /// The seven field values, in [`PROFILE_FIELDS`] order.
    pub fields: Vec<String>,
}

impl Stratum {
    pub fn bucket(&self) -> &str {
        &self.fields[0]
    }
    pub fn temporal(&self) -> &str {
        &self.fields[2]
    }
    pub fn source_group(&self) -> &str {
        &self.fields[6]
    }
    pub fn is_video(&self) -> bool {
        self.bucket() != "image_qa"
    }
}

/// The pool's profile (method §5.1), built from `(stratum, pairs, first_seen)` rows.
#[derive(Debug, Clone)]
pub struct Profile {
    pub total: u64,
    /// In first-seen order.
    pub strata: Vec<Stratum>,
    pub index: HashMap<String, u32>,
    /// Per field: values with pair counts, in first-seen order.
    pub field_counts: Vec<Vec<(String, u64)>>,
    /// Source groups: index into `field_counts[6]`, per stratum.
    pub stratum_group: Vec<u32>,
    pub video_pairs: u64,
    /// Temporal categories among video pairs, first-seen order.
    pub video_temporal: Vec<(String, u64)>,
}

impl Profile {
    pub fn new(mut rows: Vec<(String, u64, i64)>) -> Result<Self> {
        rows.sort_by_key(|r| r.2);
        let mut strata = Vec::with_capacity(rows.len());
        let mut index = HashMap::new();
        let mut field_counts: Vec<Vec<(String, u64)>> = vec![Vec::new(); 7];
        let mut field_pos: Vec<HashMap<String, usize>> = vec![HashMap::new(); 7];
        let mut stratum_group = Vec::with_capacity(rows.len());
        let mut video_pairs = 0;
        let mut video_temporal: Vec<(String, u64)> = Vec::new();
        let mut total = 0u64;
        for (key, pairs, first_seen) in rows {
            let fields: Vec<String> = key.split('|').map(str::to_string).collect();
            if fields.len() != 7 {
                return plan_err!(
                    "stratum {key:?} does not have the 7 fields bucket|duration|temporal|form|q_len|a_len|source_group"
                );
            }
            if index.insert(key.clone(), strata.len() as u32).is_some() {
                return plan_err!("stratum {key:?} appears twice in the strata table");
            }
            for (f, value) in fields.iter().enumerate() {
                let pos = *field_pos[f].entry(value.clone()).or_insert_with(|| {
                    field_counts[f].push((value.clone(), 0));
                    field_counts[f].len() - 1
                });
                field_counts[f][pos].1 += pairs;
                if f == 6 {
                    stratum_group.push(pos as u32);
                }
            }
            let s = Stratum { key, pairs, first_seen, fields };
            if s.is_video() {
                video_pairs += pairs;
                match video_temporal.iter_mut().find(|(t, _)| t == s.temporal()) {
                    Some(e) => e.1 += pairs,
                    None => video_temporal.push((s.temporal().to_string(), pairs)),
                }
            }
            total += pairs;
            strata.push(s);
        }
        Ok(Profile { total, strata, index, field_counts, stratum_group, video_pairs, video_temporal })
    }

    /// `profile[field][value]` shares.
    pub fn shares(&self, field: usize) -> Vec<(String, f64)> {
        self.field_counts[field].iter().map(|(v, c)| (v.clone(), *c as f64 / self.total as f64)).collect()
    }
}

/// Positive-VDS3 counts over all metric rows (the budget adjustment's input).
#[derive(Debug, Clone, Copy, Default)]
pub struct Vds3Counts {
    pub positive: u64,
    pub total: u64,
}

/// The subset size and how it was derived (method §5.4).
#[derive(Debug, Clone)]
pub struct Budget {
    pub n: u64,
    pub info: Value,
}

fn ceil_u(x: f64) -> u64 {
    if x <= 0.0 { 0 } else { x.ceil() as u64 }
}
fn floor_u(x: f64) -> u64 {
    if x <= 0.0 { 0 } else { x.floor() as u64 }
}

pub fn derive_budget(p: &GoalParams, prof: &Profile, vds3: Option<Vds3Counts>) -> Budget {
    let total = prof.total;
    if let Some(c) = p.count {
        let n = c.min(total).max(1);
        return Budget { n, info: json!({"mode": "fixed_count", "requested_count": c, "recommended_count": n}) };
    }
    if let Some(r) = p.ratio {
        let n = floor_u(total as f64 * r).max(1).min(total);
        return Budget { n, info: json!({"mode": "fixed_ratio", "ratio": r, "recommended_count": n}) };
    }
    let t = total as f64;
    let shares: Vec<f64> = prof.strata.iter().map(|s| s.pairs as f64 / t).collect();
    let entropy: f64 = -shares.iter().filter(|&&p| p > 0.0).map(|&p| p * p.ln()).sum::<f64>();
    let effective = entropy.exp();
    let mut sorted = shares.clone();
    // Stable sort: equal shares keep first-seen order.
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap_or(Ordering::Equal));
    let (mut acc, mut p_tail, mut covered) = (0.0, 0.0, 0usize);
    for &s in &sorted {
        acc += s;
        p_tail = s;
        covered += 1;
        if acc >= p.coverage_mass {
            break;
        }
    }
    let n_eff = ceil_u((effective * p.strata_mult.max(1.0)).max(1.0));
    let n_tail = ceil_u(p.tail_target.max(1.0) / p_tail.max(1e-9));
    let n_lo = ceil_u(t * p.min_ratio);
    let n_hi = match floor_u(t * p.max_ratio) {
        0 => total,
        v => v,
    };
    let mut n = p.min_count.max(n_lo).max(n_eff).max(n_tail);
    n = n.min(p.max_count).min(n_hi).min(total).max(1);
    let recommended = n;
    let mut adjustment = json!({"enabled": false});
    if let Some(v) = vds3
        && p.vds3_budget
        && v.total > 0
    {
        let pos_ratio = v.positive as f64 / v.total as f64;
        let mut obj = Map::new();
        obj.insert("enabled".into(), json!(true));
        obj.insert("vds3_positive_ratio".into(), json!(pos_ratio));
        obj.insert("vds3_positive_count".into(), json!(v.positive));
        obj.insert("vds3_total_count".into(), json!(v.total));
        obj.insert("vds3_threshold".into(), json!(p.vds3_threshold));
        obj.insert("vds3_target_positive".into(), json!(p.vds3_target_positive));
        if pos_ratio > 0.0 {
            let n_pos = ceil_u(p.vds3_target_positive.max(1.0) / pos_ratio);
            let cap = total.min(p.max_count).min(ceil_u(n as f64 * p.vds3_max_mult.max(1.0))).min(n_hi);
            n = n.max(n_pos).min(cap).clamp(1, total.max(1));
            obj.insert("n_from_vds3_positive".into(), json!(n_pos));
            obj.insert("vds3_adjust_cap".into(), json!(cap));
        }
        obj.insert("adjusted_target".into(), json!(n));
        adjustment = Value::Object(obj);
    } else if !p.vds3_budget {
        adjustment = json!({"enabled": false, "reason": "disabled (no_vds3_budget)"});
    } else {
        adjustment = json!({"enabled": false, "reason": "no metric rows"});
    }
    let _ = &mut adjustment;
    Budget {
        n,
        info: json!({
            "mode": "distribution_auto",
            "effective_strata": effective,
            "coverage_mass": p.coverage_mass,
            "covered_strata": covered,
            "tail_prob_at_coverage": p_tail,
            "n_from_effective_strata": n_eff,
            "n_from_tail_coverage": n_tail,
            "n_from_min_ratio": n_lo,
            "n_from_max_ratio": n_hi,
            "recommended_count": recommended,
            "recommended_ratio": recommended as f64 / t,
            "vds3_adjustment": adjustment,
        }),
    }
}

/// Largest-remainder split of `n` over `counts` (method §5.5): floors first, then one
/// each in order of descending fractional part (ties keep input order), cycling.
pub fn largest_remainder(n: u64, counts: &[u64], total: u64) -> Vec<u64> {
    if counts.is_empty() || total == 0 {
        return vec![0; counts.len()];
    }
    let raw: Vec<f64> = counts.iter().map(|&c| n as f64 * c as f64 / total as f64).collect();
    let mut quotas: Vec<u64> = raw.iter().map(|r| r.floor() as u64).collect();
    let assigned: u64 = quotas.iter().sum();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = raw[a] - raw[a].floor();
        let fb = raw[b] - raw[b].floor();
        fb.partial_cmp(&fa).unwrap_or(Ordering::Equal)
    });
    let mut left = n.saturating_sub(assigned);
    let mut i = 0;
    while left > 0 {
        quotas[order[i % order.len()]] += 1;
        left -= 1;
        i += 1;
    }
    quotas
}

/// A source-group floor.
#[derive(Debug, Clone)]
pub struct GroupFloor {
    pub group: u32,
    pub name: String,
    pub required: u64,
}

/// Quotas and hard constraints (method §5.5).
#[derive(Debug, Clone)]
pub struct Plan {
    pub n: u64,
    pub bucket_quotas: Vec<(String, u64)>,
    pub stratum_quotas: Vec<u64>,
    pub min_video: u64,
    pub max_video: u64,
    pub min_temporal: u64,
    pub temporal: HashSet<String>,
    pub group_floors: Vec<GroupFloor>,
    pub constraints: Map<String, Value>,
}

pub fn plan_quotas(p: &GoalParams, prof: &Profile, n: u64) -> Plan {
    let total = prof.total;
    let t = total as f64;
    let buckets = &prof.field_counts[0];
    let bq = largest_remainder(n, &buckets.iter().map(|b| b.1).collect::<Vec<_>>(), total);
    let bucket_quotas: Vec<(String, u64)> = buckets.iter().zip(&bq).map(|(b, q)| (b.0.clone(), *q)).collect();
    let stratum_quotas = largest_remainder(n, &prof.strata.iter().map(|s| s.pairs).collect::<Vec<_>>(), total);

    let video_share = prof.video_pairs as f64 / t;
    let min_video_ratio = if p.min_video_ratio < 0.0 { video_share } else { p.min_video_ratio };
    let min_video = ceil_u(min_video_ratio * n as f64);
    let max_video_raw = if p.max_video_ratio < 0.0 { n } else { floor_u(p.max_video_ratio * n as f64) };
    let max_video = min_video.max(max_video_raw.min(n));
    let temporal: HashSet<String> = p.temporal_categories.iter().cloned().collect();
    let t_pairs: u64 = prof.video_temporal.iter().filter(|(c, _)| temporal.contains(c)).map(|(_, n)| n).sum();
    let t_share = if prof.video_pairs > 0 { t_pairs as f64 / prof.video_pairs as f64 } else { 0.0 };
    let t_ratio = if p.min_temporal_in_video_ratio < 0.0 { t_share } else { p.min_temporal_in_video_ratio };
    let video_quota: u64 = bucket_quotas.iter().filter(|(b, _)| b != "image_qa").map(|(_, q)| q).sum();
    let min_temporal = ceil_u(t_ratio * min_video.max(video_quota) as f64);

    // Source-group floors for the top-k groups by pairs (ties: first seen).
    let mut group_floors = Vec::new();
    let groups = &prof.field_counts[6];
    if p.source_group_floor_topk > 0 && p.min_source_group_ratio > 0.0 && n > 0 && total > 0 {
        let mut order: Vec<usize> = (0..groups.len()).collect();
        order.sort_by(|&a, &b| groups[b].1.cmp(&groups[a].1));
        let floor_abs = ceil_u(n as f64 * p.min_source_group_ratio).max(1);
        for &g in order.iter().take(p.source_group_floor_topk as usize) {
            let expected = n as f64 * groups[g].1 as f64 / t;
            let required = floor_abs.max(ceil_u(p.source_group_floor_frac_of_expected * expected));
            if required <= floor_u(expected) {
                group_floors.push(GroupFloor { group: g as u32, name: groups[g].0.clone(), required });
            }
        }
        let sum: u64 = group_floors.iter().map(|f| f.required).sum();
        let limit = floor_u(0.7 * n as f64);
        if sum > limit {
            for f in &mut group_floors {
                f.required = floor_u(f.required as f64 * limit as f64 / sum as f64).max(1);
            }
        }
    }
    let mut constraints = Map::new();
    let mut tc: Vec<&String> = temporal.iter().collect();
    tc.sort();
    constraints.insert("temporal_categories".into(), json!(tc));
    constraints.insert("full_video_ratio".into(), json!(video_share));
    constraints.insert("full_temporal_in_video_ratio".into(), json!(t_share));
    constraints.insert("min_video_ratio_effective".into(), json!(min_video_ratio));
    constraints.insert("min_video_count".into(), json!(min_video));
    constraints.insert(
        "max_video_ratio_effective".into(),
        json!(if p.max_video_ratio < 0.0 { 1.0 } else { p.max_video_ratio }),
    );
    constraints.insert("max_video_count".into(), json!(max_video));
    constraints.insert("min_temporal_in_video_ratio_effective".into(), json!(t_ratio));
    constraints.insert("min_temporal_video_count".into(), json!(min_temporal));
    let floors: Map<String, Value> = group_floors.iter().map(|f| (f.name.clone(), json!(f.required))).collect();
    constraints.insert("source_group_floor_requirements".into(), Value::Object(floors));
    Plan { n, bucket_quotas, stratum_quotas, min_video, max_video, min_temporal, temporal, group_floors, constraints }
}

/// A scored pair as the operators keep it.
#[derive(Debug, Clone)]
pub struct Pair {
    pub pool_index: i64,
    pub qa_uid: String,
    pub video_uid: String,
    pub text_hash: String,
    pub stratum: u32,
    pub score: f64,
    pub base_score: f64,
    pub vds3: f64,
    pub metric_quality: f64,
    /// Seeded random tie-break (higher wins among equal scores).
    pub tie: u64,
}

/// A seeded 64-bit number for a pair: sha1(seed, purpose, qa_uid). Keyed by the pair,
/// not by its position in a stream, so any partitioning of the pool gives the same
/// ties and the same reservoir.
pub fn pair_random(seed: u64, purpose: u8, qa_uid: &str) -> u64 {
    let mut h = Sha1::new();
    h.update(seed.to_le_bytes());
    h.update([purpose]);
    h.update(qa_uid.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().expect("sha1 has 20 bytes"))
}

pub const TIE: u8 = 1;
pub const RESERVOIR: u8 = 2;

/// Heap entry ordered so that the *worst* candidate is on top (min-heap by score, tie).
struct Worst(Pair);

impl PartialEq for Worst {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Worst {}
impl PartialOrd for Worst {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Worst {
    fn cmp(&self, other: &Self) -> Ordering {
        // A worse pair compares greater, so the max-heap keeps the worst on top.
        better(&self.0, &other.0)
    }
}

/// Order by (score, tie) descending: `Less` when `a` ranks first.
pub fn better(a: &Pair, b: &Pair) -> Ordering {
    b.score.total_cmp(&a.score).then(b.tie.cmp(&a.tie))
}

/// The per-stratum top-`cap` candidate heaps of method §5.6.
pub struct Candidates {
    caps: Vec<usize>,
    heaps: Vec<BinaryHeap<Worst>>,
}

impl Candidates {
    pub fn new(p: &GoalParams, prof: &Profile, plan: &Plan) -> Self {
        let base = p.oversample.max(1.0);
        let caps = prof
            .strata
            .iter()
            .zip(&plan.stratum_quotas)
            .map(|(s, &q)| {
                if q == 0 {
                    return 0;
                }
                let mut mult = base;
                if s.is_video() {
                    mult = mult.max(p.video_oversample);
                    if plan.temporal.contains(s.temporal()) {
                        mult = mult.max(p.temporal_oversample);
                    }
                }
                q.max(ceil_u(q as f64 * mult)) as usize
            })
            .collect::<Vec<_>>();
        let heaps = caps.iter().map(|_| BinaryHeap::new()).collect();
        Candidates { caps, heaps }
    }

    /// Whether a pair of this stratum can enter at all (quota > 0).
    pub fn wants(&self, stratum: u32) -> bool {
        self.caps[stratum as usize] > 0
    }

    /// Whether a pair with this (score, tie) would enter its stratum's heap.
    pub fn would_take(&self, stratum: u32, score: f64, tie: u64) -> bool {
        let s = stratum as usize;
        let heap = &self.heaps[s];
        if heap.len() < self.caps[s] {
            return true;
        }
        match heap.peek() {
            Some(worst) => score > worst.0.score || (score == worst.0.score && tie > worst.0.tie),
            None => false,
        }
    }

    pub fn offer(&mut self, pair: Pair) {
        let s = pair.stratum as usize;
        let cap = self.caps[s];
        if cap == 0 {
            return;
        }
        let heap = &mut self.heaps[s];
        if heap.len() < cap {
            heap.push(Worst(pair));
        } else if let Some(worst) = heap.peek()
            && better(&pair, &worst.0) == Ordering::Less
        {
            // Only a strictly better (score, tie) replaces the worst kept candidate.
            heap.pop();
            heap.push(Worst(pair));
        }
    }

    /// Each stratum's candidates, best first.
    pub fn into_sorted(self) -> Vec<Vec<Pair>> {
        self.heaps
            .into_iter()
            .map(|h| {
                let mut v: Vec<Pair> = h.into_iter().map(|w| w.0).collect();
                v.sort_by(better);
                v
            })
            .collect()
    }
}

/// A seeded uniform sample of `size` pairs: the pairs with the smallest
/// `pair_random(seed, RESERVOIR, qa_uid)`. Like the reference's reservoir it is uniform
/// over the pool; unlike it, it does not depend on the order rows arrive in.
pub struct Reservoir {
    size: usize,
    /// Max-heap of the kept (priority, pool_index, slot in `items`). The pair data sits
    /// in `items`, so sifting moves 24 bytes instead of the strings, and a replaced
    /// slot reuses its string buffers.
    heap: BinaryHeap<(u64, i64, u32)>,
    items: Vec<ReservoirItem>,
}

#[derive(Debug, Clone, Default)]
struct ReservoirItem {
    qa_uid: String,
    video_uid: String,
    text_hash: String,
    stratum: u32,
    /// score, base_score, vds3, metric_quality as bits.
    bits: [u64; 4],
}

impl ReservoirItem {
    fn set(&mut self, pair: &PairRef<'_>) {
        for (dst, src) in [
            (&mut self.qa_uid, pair.qa_uid),
            (&mut self.video_uid, pair.video_uid),
            (&mut self.text_hash, pair.text_hash),
        ] {
            dst.clear();
            dst.push_str(src);
        }
        self.stratum = pair.stratum;
        self.bits =
            [pair.score.to_bits(), pair.base_score.to_bits(), pair.vds3.to_bits(), pair.metric_quality.to_bits()];
    }
}

impl Reservoir {
    pub fn new(size: usize) -> Self {
        Reservoir { size, heap: BinaryHeap::new(), items: Vec::new() }
    }

    pub fn offer(&mut self, seed: u64, pair: &PairRef<'_>) {
        if self.size == 0 {
            return;
        }
        let prio = pair_random(seed, RESERVOIR, pair.qa_uid);
        let slot = if self.heap.len() >= self.size {
            match self.heap.peek() {
                Some(&(p, i, _)) if (prio, pair.pool_index) < (p, i) => self.heap.pop().map_or(0, |(_, _, slot)| slot),
                _ => return,
            }
        } else {
            self.items.push(ReservoirItem::default());
            (self.items.len() - 1) as u32
        };
        self.items[slot as usize].set(pair);
        self.heap.push((prio, pair.pool_index, slot));
    }

    /// The sample in its (random) priority order.
    pub fn into_pairs(self) -> Vec<Pair> {
        let mut keys = self.heap.into_vec();
        keys.sort_unstable();
        let mut items = self.items;
        keys.into_iter()
            .map(|(prio, pool_index, slot)| {
                let item = std::mem::take(&mut items[slot as usize]);
                Pair {
                    pool_index,
                    qa_uid: item.qa_uid,
                    video_uid: item.video_uid,
                    text_hash: item.text_hash,
                    stratum: item.stratum,
                    score: f64::from_bits(item.bits[0]),
                    base_score: f64::from_bits(item.bits[1]),
                    vds3: f64::from_bits(item.bits[2]),
                    metric_quality: f64::from_bits(item.bits[3]),
                    tie: prio,
                }
            })
            .collect()
    }
}

/// The dedup rules both subsets share (method §5.7/4.8). Keys borrow from the pairs
/// being drawn from, which outlive the draw: no string is copied per taken pair.
struct Taken<'p> {
    uids: datafusion::common::HashSet<&'p str>,
    hashes: datafusion::common::HashSet<&'p str>,
    per_video: datafusion::common::HashMap<&'p str, u64>,
    max_per_video: u64,
}

impl<'p> Taken<'p> {
    fn new(max_per_video: u64) -> Self {
        Taken { uids: Default::default(), hashes: Default::default(), per_video: Default::default(), max_per_video }
    }
    fn allows(&self, p: &Pair, check_hash: bool, check_video: bool) -> bool {
        if self.uids.contains(p.qa_uid.as_str()) {
            return false;
        }
        if check_hash && self.hashes.contains(p.text_hash.as_str()) {
            return false;
        }
        if check_video
            && !p.video_uid.is_empty()
            && self.per_video.get(p.video_uid.as_str()).copied().unwrap_or(0) >= self.max_per_video
        {
            return false;
        }
        true
    }
    fn take(&mut self, p: &'p Pair) {
        self.uids.insert(&p.qa_uid);
        self.hashes.insert(&p.text_hash);
        if !p.video_uid.is_empty() {
            *self.per_video.entry(&p.video_uid).or_insert(0) += 1;
        }
    }
}

/// One selected pair with the stage that took it.
#[derive(Debug, Clone)]
pub struct Selected {
    pub pair: Pair,
    pub stage: String,
}

/// The result of filling one goal's subset.
#[derive(Debug, Clone)]
pub struct Fill {
    pub selected: Vec<Selected>,
    /// Stages in order with the count each took (zero counts included).
    pub stage_counts: Vec<(String, u64)>,
    /// Floors still short after the fill, with their shortfall.
    pub unmet: Vec<(String, u64)>,
    pub video: u64,
    pub temporal_video: u64,
    pub group_counts: Vec<u64>,
}

struct Filler<'a, 'p> {
    prof: &'a Profile,
    plan: &'a Plan,
    taken: Taken<'p>,
    selected: Vec<Selected>,
    video: u64,
    temporal_video: u64,
    group_counts: Vec<u64>,
    stratum_counts: Vec<u64>,
}

impl<'p> Filler<'_, 'p> {
    fn full(&self) -> bool {
        self.selected.len() as u64 >= self.plan.n
    }
    fn is_video(&self, p: &Pair) -> bool {
        self.prof.strata[p.stratum as usize].is_video()
    }
    fn in_t(&self, p: &Pair) -> bool {
        let s = &self.prof.strata[p.stratum as usize];
        s.is_video() && self.plan.temporal.contains(s.temporal())
    }
    fn can_take(&self, p: &Pair) -> bool {
        if !self.taken.allows(p, true, true) {
            return false;
        }
        !(self.is_video(p) && self.video >= self.plan.max_video)
    }
    fn take(&mut self, p: &'p Pair, stage: &str) {
        self.taken.take(p);
        if self.is_video(p) {
            self.video += 1;
        }
        if self.in_t(p) {
            self.temporal_video += 1;
        }
        self.group_counts[self.prof.stratum_group[p.stratum as usize] as usize] += 1;
        self.stratum_counts[p.stratum as usize] += 1;
        self.selected.push(Selected { pair: p.clone(), stage: stage.to_string() });
    }
    /// Take from `pool` (best first) while `need()` says more are needed.
    fn stage(
        &mut self,
        stage: &str,
        pool: impl Iterator<Item = &'p Pair>,
        mut need: impl FnMut(&Self) -> bool,
        eligible: impl Fn(&Self, &Pair) -> bool,
    ) -> u64 {
        let mut n = 0;
        for p in pool {
            if self.full() || !need(self) {
                break;
            }
            if eligible(self, p) && self.can_take(p) {
                self.take(p, stage);
                n += 1;
            }
        }
        n
    }
}

/// Fill the subset (method §5.7) from the sorted per-stratum candidates and the reservoir.
pub fn fill(prof: &Profile, plan: &Plan, candidates: Vec<Vec<Pair>>, reservoir: &[Pair], max_per_video: u64) -> Fill {
    let mut tail: Vec<Pair> = candidates.iter().flatten().cloned().collect();
    tail.sort_by(better);
    let mut f = Filler {
        prof,
        plan,
        taken: Taken::new(max_per_video),
        selected: Vec::new(),
        video: 0,
        temporal_video: 0,
        group_counts: vec![0; prof.field_counts[6].len()],
        stratum_counts: vec![0; prof.strata.len()],
    };
    let mut stages: Vec<(String, u64)> = Vec::new();
    let min_t = plan.min_temporal;
    let n = f.stage("hard_temporal_video", tail.iter(), |f| f.temporal_video < min_t, |f, p| f.in_t(p));
    stages.push(("hard_temporal_video".into(), n));
    let min_v = plan.min_video;
    let n = f.stage("hard_video", tail.iter(), |f| f.video < min_v, |f, p| f.is_video(p));
    stages.push(("hard_video".into(), n));
    for floor in &plan.group_floors {
        let name = format!("hard_source_group::{}", floor.name);
        let (g, req) = (floor.group as usize, floor.required);
        let n = f.stage(
            &name,
            tail.iter(),
            |f| f.group_counts[g] < req,
            |f, p| f.prof.stratum_group[p.stratum as usize] as usize == g,
        );
        stages.push((name, n));
    }
    let mut quota_taken = 0;
    for (s, cands) in candidates.iter().enumerate() {
        let q = plan.stratum_quotas[s];
        quota_taken += f.stage("stratum_quota", cands.iter(), |f| f.stratum_counts[s] < q, |_, _| true);
    }
    stages.push(("stratum_quota".into(), quota_taken));
    let n = f.stage("tail", tail.iter(), |_| true, |_, _| true);
    stages.push(("tail".into(), n));
    let n = f.stage("reservoir", reservoir.iter(), |_| true, |_, _| true);
    stages.push(("reservoir".into(), n));

    let mut unmet = Vec::new();
    if f.temporal_video < plan.min_temporal {
        unmet.push(("temporal_video".to_string(), plan.min_temporal - f.temporal_video));
    }
    if f.video < plan.min_video {
        unmet.push(("video".to_string(), plan.min_video - f.video));
    }
    for floor in &plan.group_floors {
        let have = f.group_counts[floor.group as usize];
        if have < floor.required {
            unmet.push((format!("source_group::{}", floor.name), floor.required - have));
        }
    }
    // Never a silently short subset: a shortfall against the budget is reported too.
    let short = plan.n.saturating_sub(f.selected.len() as u64);
    if short > 0 {
        unmet.push(("target_count".to_string(), short));
    }
    Fill {
        selected: f.selected,
        stage_counts: stages,
        unmet,
        video: f.video,
        temporal_video: f.temporal_video,
        group_counts: f.group_counts,
    }
}

/// The Uni-10x draw (method §5.8): the reservoir in its random order, taken with the same
/// dedup rules as the goal subset; if short, again ignoring text hashes; if still
/// short, anything not yet taken. Returns pairs with the pass that took them.
pub fn uni_draw(reservoir: &[Pair], count: u64, max_per_video: u64) -> Vec<(&Pair, &'static str)> {
    let mut taken = Taken::new(max_per_video);
    let mut out = Vec::new();
    for (pass, check_hash, check_video) in [("unique", true, true), ("text_dup", false, true), ("any", false, false)] {
        for p in reservoir {
            if out.len() as u64 >= count {
                return out;
            }
            if taken.allows(p, check_hash, check_video) {
                taken.take(p);
                out.push((p, pass));
            }
        }
    }
    out
}

/// Jensen-Shannon divergence (natural log) between two distributions given as counts
/// over the union of their values; `eps` 1e-12 guards the logarithms.
pub fn js_divergence(p: &HashMap<String, f64>, q: &HashMap<String, f64>) -> f64 {
    const EPS: f64 = 1e-12;
    let sp: f64 = p.values().sum();
    let sq: f64 = q.values().sum();
    if sp <= 0.0 || sq <= 0.0 {
        return 0.0;
    }
    let mut keys: Vec<&String> = p.keys().chain(q.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut kl_p = 0.0;
    let mut kl_q = 0.0;
    for k in keys {
        let a = p.get(k).copied().unwrap_or(0.0) / sp;
        let b = q.get(k).copied().unwrap_or(0.0) / sq;
        let m = 0.5 * (a + b);
        if a > 0.0 {
            kl_p += a * ((a + EPS) / (m + EPS)).ln();
        }
        if b > 0.0 {
            kl_q += b * ((b + EPS) / (m + EPS)).ln();
        }
    }
    0.5 * kl_p + 0.5 * kl_q
}

/// Per-field JS divergence between a subset (given by its strata) and the pool.
pub fn js_to_profile(prof: &Profile, strata: impl Iterator<Item = u32>) -> Map<String, Value> {
    let mut subset: Vec<HashMap<String, f64>> = vec![HashMap::new(); 7];
    for s in strata {
        for (f, v) in prof.strata[s as usize].fields.iter().enumerate() {
            *subset[f].entry(v.clone()).or_insert(0.0) += 1.0;
        }
    }
    let mut out = Map::new();
    for (f, name) in PROFILE_FIELDS.iter().enumerate() {
        let pool: HashMap<String, f64> = prof.field_counts[f].iter().map(|(v, c)| (v.clone(), *c as f64)).collect();
        out.insert(name.to_string(), json!(js_divergence(&subset[f], &pool)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_remainder_hands_out_by_fraction_then_first_seen() {
        // 10 over 3/3/3 (of 9): raw 3.33 each -> floors 3, remainder 1 goes to the first.
        assert_eq!(largest_remainder(10, &[3, 3, 3], 9), vec![4, 3, 3]);
        // 7 over 1/2/4: raw 1, 2, 4 exactly.
        assert_eq!(largest_remainder(7, &[1, 2, 4], 7), vec![1, 2, 4]);
        // 5 over 1/1/8 (of 10): raw .5 .5 4 -> floors 0 0 4, one left, first .5 wins.
        assert_eq!(largest_remainder(5, &[1, 1, 8], 10), vec![1, 0, 4]);
        assert_eq!(largest_remainder(3, &[], 0), Vec::<u64>::new());
    }

    #[test]
    fn js_divergence_is_zero_for_equal_and_ln2_for_disjoint() {
        let a: HashMap<String, f64> = [("x".to_string(), 2.0), ("y".to_string(), 2.0)].into();
        let b: HashMap<String, f64> = [("x".to_string(), 5.0), ("y".to_string(), 5.0)].into();
        assert!(js_divergence(&a, &b).abs() < 1e-12);
        let c: HashMap<String, f64> = [("z".to_string(), 1.0)].into();
        assert!((js_divergence(&a, &c) - std::f64::consts::LN_2).abs() < 1e-9);
    }

    fn pair(i: i64, score: f64, video: &str, hash: &str) -> Pair {
        Pair {
            pool_index: i,
            qa_uid: format!("q{i}"),
            video_uid: video.into(),
            text_hash: hash.into(),
            stratum: 0,
            score,
            base_score: 0.0,
            vds3: 0.0,
            metric_quality: 0.0,
            tie: i as u64,
        }
    }

    #[test]
    fn uni_draw_respects_dedup_then_relaxes() {
        let r = vec![pair(0, 0.0, "v", "h0"), pair(1, 0.0, "v", "h0"), pair(2, 0.0, "v", "h2")];
        // Per-video cap 1: the unique pass takes q0; the text-dup pass still honours the
        // cap; the last pass takes anything.
        let got: Vec<_> = uni_draw(&r, 3, 1).into_iter().map(|(p, pass)| (p.qa_uid.as_str(), pass)).collect();
        assert_eq!(got, vec![("q0", "unique"), ("q1", "any"), ("q2", "any")]);
        let got = uni_draw(&r, 2, 8);
        assert_eq!(got.iter().map(|(p, _)| p.qa_uid.as_str()).collect::<Vec<_>>(), vec!["q0", "q2"]);
    }

    #[test]
    fn candidates_keep_the_best_and_replace_only_strictly_better() {
        let prof = Profile::new(vec![("short_video|short|Temporal|Open|q_short|a_short|g".into(), 10, 0)]).unwrap();
        let mut p = test_params();
        p.oversample = 1.0;
        p.video_oversample = 1.0;
        p.temporal_oversample = 1.0;
        let plan = plan_quotas(&p, &prof, 2);
        let mut c = Candidates::new(&p, &prof, &plan);
        for (i, s) in [0.1, 0.5, 0.3, 0.5, 0.9].iter().enumerate() {
            c.offer(pair(i as i64, *s, "", ""));
        }
        let kept: Vec<i64> = c.into_sorted()[0].iter().map(|p| p.pool_index).collect();
        // Best two by (score, tie): 0.9 (i=4), then the 0.5 with the higher tie (i=3).
        assert_eq!(kept, vec![4, 3]);
    }

    pub(crate) fn test_params() -> GoalParams {
        GoalParams {
            goal: "test".into(),
            min_count: 1,
            max_count: 100,
            min_ratio: 0.0,
            max_ratio: 1.0,
            strata_mult: 1.0,
            coverage_mass: 0.9,
            tail_target: 1.0,
            vds3_target_positive: 1.0,
            vds3_threshold: 0.0,
            vds3_max_mult: 1.0,
            min_video_ratio: 0.0,
            max_video_ratio: 1.0,
            min_temporal_in_video_ratio: 0.0,
            temporal_categories: vec!["Temporal".into()],
            oversample: 1.0,
            video_oversample: 1.0,
            temporal_oversample: 1.0,
            source_group_floor_topk: 0,
            min_source_group_ratio: 0.0,
            source_group_floor_frac_of_expected: 0.0,
            seed: 42,
            max_qa_per_video: 8,
            uni_multiplier: 10.0,
            reservoir_oversample: 1.35,
            count: None,
            ratio: None,
            vds3_budget: true,
        }
    }
}
