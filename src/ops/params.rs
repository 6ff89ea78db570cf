//! A goal's parameters (method §5.4-5.10): what a goal file passes to
//! `goal_select(...)` as a `named_struct`, with session overrides (`SET gdo.*`).

use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::Expr;
use serde::{Deserialize, Serialize};

use gdo_udfs::GdoOptions;

/// Every parameter of one goal. Serializable, so a plan holding it can travel (EXPLAIN
/// shows it; a Ballista codec can ship it as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoalParams {
    /// Name shown in reports (`temp_plus`, ...).
    pub goal: String,
    pub min_count: u64,
    pub max_count: u64,
    pub min_ratio: f64,
    pub max_ratio: f64,
    pub strata_mult: f64,
    pub coverage_mass: f64,
    pub tail_target: f64,
    pub vds3_target_positive: f64,
    pub vds3_threshold: f64,
    pub vds3_max_mult: f64,
    pub min_video_ratio: f64,
    pub max_video_ratio: f64,
    pub min_temporal_in_video_ratio: f64,
    /// Temporal categories that count toward the temporal floor (`Temporal,Mixed`).
    pub temporal_categories: Vec<String>,
    pub oversample: f64,
    pub video_oversample: f64,
    pub temporal_oversample: f64,
    pub source_group_floor_topk: u64,
    pub min_source_group_ratio: f64,
    pub source_group_floor_frac_of_expected: f64,
    /// Shared defaults (method §5.10): seed 42, 8 pairs per video, Uni multiplier 10.
    pub seed: u64,
    pub max_qa_per_video: u64,
    pub uni_multiplier: f64,
    /// The reservoir holds max(R, ceil(R * reservoir_oversample)) pairs (1.35).
    pub reservoir_oversample: f64,
    /// Fixed size or ratio instead of the automatic budget.
    pub count: Option<u64>,
    pub ratio: Option<f64>,
    /// The VDS3 budget adjustment (off: the `no_vds3_budget` ablation).
    pub vds3_budget: bool,
}

/// Names a goal file must set (everything without a shared default).
const REQUIRED: &[&str] = &[
    "min_count",
    "max_count",
    "min_ratio",
    "max_ratio",
    "strata_mult",
    "coverage_mass",
    "tail_target",
    "vds3_target_positive",
    "vds3_threshold",
    "vds3_max_mult",
    "min_video_ratio",
    "max_video_ratio",
    "min_temporal_in_video_ratio",
    "temporal_categories",
    "oversample",
    "video_oversample",
    "temporal_oversample",
    "source_group_floor_topk",
    "min_source_group_ratio",
    "source_group_floor_frac_of_expected",
];

/// Names with a default.
const OPTIONAL: &[&str] =
    &["goal", "seed", "max_qa_per_video", "uni_multiplier", "reservoir_oversample", "count", "ratio", "vds3_budget"];

/// A literal argument value.
#[derive(Debug, Clone)]
enum Value {
    Num(f64),
    Str(String),
    Bool(bool),
}

fn literal(expr: &Expr) -> Option<Value> {
    match expr {
        Expr::Literal(v, _) => scalar(v),
        Expr::Negative(inner) => match literal(inner)? {
            Value::Num(x) => Some(Value::Num(-x)),
            _ => None,
        },
        Expr::Cast(c) => literal(&c.expr),
        Expr::TryCast(c) => literal(&c.expr),
        _ => None,
    }
}

fn scalar(v: &ScalarValue) -> Option<Value> {
    if let Some(Some(s)) = v.try_as_str() {
        return Some(Value::Str(s.to_string()));
    }
    match v {
        ScalarValue::Boolean(Some(b)) => Some(Value::Bool(*b)),
        ScalarValue::Float64(Some(x)) => Some(Value::Num(*x)),
        ScalarValue::Float32(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::Int64(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::Int32(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::Int16(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::Int8(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::UInt64(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::UInt32(Some(x)) => Some(Value::Num(*x as f64)),
        ScalarValue::Decimal128(Some(x), _, scale) => Some(Value::Num(*x as f64 / 10f64.powi(*scale as i32))),
        _ => None,
    }
}

/// Read `named_struct('key', value, ...)` (literal keys and values) into pairs.
pub fn named_struct_args(expr: &Expr, func: &str) -> Result<Vec<(String, Expr)>> {
    // The SQL planner folds a literal named_struct into one struct literal.
    if let Some(pairs) = struct_literal_args(expr) {
        return Ok(pairs);
    }
    let Expr::ScalarFunction(f) = expr else {
        return plan_err!("{func}: parameters must be named_struct('name', value, ...), got {expr}");
    };
    if f.name() != "named_struct" {
        return plan_err!("{func}: parameters must be named_struct('name', value, ...), got {}(...)", f.name());
    }
    if f.args.len() % 2 != 0 {
        return plan_err!("{func}: named_struct needs name/value pairs");
    }
    let mut out = Vec::new();
    for pair in f.args.chunks(2) {
        let Some(Value::Str(key)) = literal(&pair[0]) else {
            return plan_err!("{func}: parameter names must be string literals, got {}", pair[0]);
        };
        out.push((key, pair[1].clone()));
    }
    Ok(out)
}

fn num(func: &str, key: &str, e: &Expr) -> Result<f64> {
    match literal(e) {
        Some(Value::Num(x)) if x.is_finite() => Ok(x),
        _ => plan_err!("{func}: parameter {key} must be a finite number, got {e}"),
    }
}

fn count(func: &str, key: &str, e: &Expr) -> Result<u64> {
    let x = num(func, key, e)?;
    if x < 0.0 || x.fract() != 0.0 || x > 9.0e15 {
        return plan_err!("{func}: parameter {key} must be a non-negative whole number, got {x}");
    }
    Ok(x as u64)
}

/// The closest known name, for "did you mean" in errors.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known.into_iter().map(|k| (distance(name, k), k)).filter(|(d, _)| *d <= 3).min().map(|(_, k)| k)
}

impl GoalParams {
    /// Parse the `named_struct` of a goal file, then apply the session's `SET gdo.*`
    /// overrides. Unknown names (typos) and missing names are plan errors.
    pub fn from_named_struct(expr: &Expr, options: &GdoOptions) -> Result<Self> {
        const F: &str = "goal_select";
        let args = named_struct_args(expr, F)?;
        let mut seen = std::collections::HashSet::new();
        for (key, _) in &args {
            if !REQUIRED.contains(&key.as_str()) && !OPTIONAL.contains(&key.as_str()) {
                let hint = closest(key, REQUIRED.iter().chain(OPTIONAL).copied())
                    .map(|k| format!(" (did you mean {k}?)"))
                    .unwrap_or_default();
                return plan_err!("{F}: unknown parameter {key:?}{hint}");
            }
            if !seen.insert(key.clone()) {
                return plan_err!("{F}: parameter {key:?} given twice");
            }
        }
        let missing: Vec<&str> = REQUIRED.iter().copied().filter(|k| !seen.contains(*k)).collect();
        if !missing.is_empty() {
            return plan_err!("{F}: missing parameters: {}", missing.join(", "));
        }
        let get = |k: &str| args.iter().find(|(key, _)| key == k).map(|(_, e)| e);
        let n = |k: &str| num(F, k, get(k).expect("required parameter present"));
        let c = |k: &str| count(F, k, get(k).expect("required parameter present"));
        let temporal_categories = match literal(get("temporal_categories").expect("required")) {
            Some(Value::Str(s)) => s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect(),
            _ => {
                return plan_err!("{F}: temporal_categories must be a string like 'Temporal,Mixed'");
            }
        };
        let mut p = GoalParams {
            goal: match get("goal").map(literal) {
                Some(Some(Value::Str(s))) => s,
                Some(_) => return plan_err!("{F}: goal must be a string"),
                None => "custom".to_string(),
            },
            min_count: c("min_count")?,
            max_count: c("max_count")?,
            min_ratio: n("min_ratio")?,
            max_ratio: n("max_ratio")?,
            strata_mult: n("strata_mult")?,
            coverage_mass: n("coverage_mass")?,
            tail_target: n("tail_target")?,
            vds3_target_positive: n("vds3_target_positive")?,
            vds3_threshold: n("vds3_threshold")?,
            vds3_max_mult: n("vds3_max_mult")?,
            min_video_ratio: n("min_video_ratio")?,
            max_video_ratio: n("max_video_ratio")?,
            min_temporal_in_video_ratio: n("min_temporal_in_video_ratio")?,
            temporal_categories,
            oversample: n("oversample")?,
            video_oversample: n("video_oversample")?,
            temporal_oversample: n("temporal_oversample")?,
            source_group_floor_topk: c("source_group_floor_topk")?,
            min_source_group_ratio: n("min_source_group_ratio")?,
            source_group_floor_frac_of_expected: n("source_group_floor_frac_of_expected")?,
            seed: match get("seed") {
                Some(e) => count(F, "seed", e)?,
                None => 42,
            },
            max_qa_per_video: match get("max_qa_per_video") {
                Some(e) => count(F, "max_qa_per_video", e)?,
                None => 8,
            },
            uni_multiplier: match get("uni_multiplier") {
                Some(e) => num(F, "uni_multiplier", e)?,
                None => 10.0,
            },
            reservoir_oversample: match get("reservoir_oversample") {
                Some(e) => num(F, "reservoir_oversample", e)?,
                None => 1.35,
            },
            count: get("count").map(|e| count(F, "count", e)).transpose()?,
            ratio: get("ratio").map(|e| num(F, "ratio", e)).transpose()?,
            vds3_budget: match get("vds3_budget").map(literal) {
                Some(Some(Value::Bool(b))) => b,
                Some(_) => return plan_err!("{F}: vds3_budget must be true or false"),
                None => true,
            },
        };
        p.apply_options(options);
        p.validate()?;
        Ok(p)
    }

    /// Session settings win over the goal file (the CLI's flags become settings).
    pub fn apply_options(&mut self, o: &GdoOptions) {
        if let Some(seed) = o.seed {
            self.seed = seed;
        }
        if let Some(c) = o.count {
            self.count = Some(c);
        }
        if let Some(r) = o.ratio {
            self.ratio = Some(r);
        }
        if let Some(m) = o.max_qa_per_video {
            self.max_qa_per_video = m;
        }
        if let Some(m) = o.uni_multiplier {
            self.uni_multiplier = m;
        }
        if o.no_vds3_budget {
            self.vds3_budget = false;
        }
    }

    fn validate(&self) -> Result<()> {
        const F: &str = "goal_select";
        if self.min_count > self.max_count {
            return plan_err!("{F}: min_count {} is above max_count {}", self.min_count, self.max_count);
        }
        if !(0.0..=1.0).contains(&self.coverage_mass) {
            return plan_err!("{F}: coverage_mass must lie in [0, 1], got {}", self.coverage_mass);
        }
        if self.min_ratio < 0.0 || self.max_ratio < 0.0 {
            return plan_err!("{F}: min_ratio and max_ratio must not be negative");
        }
        if let Some(r) = self.ratio
            && !(r > 0.0 && r <= 1.0)
        {
            return plan_err!("{F}: ratio must lie in (0, 1], got {r}");
        }
        if self.uni_multiplier < 0.0 || !self.uni_multiplier.is_finite() {
            return plan_err!("{F}: uni_multiplier must be a non-negative number");
        }
        if self.temporal_categories.is_empty() {
            return plan_err!("{F}: temporal_categories is empty");
        }
        Ok(())
    }

    /// One line for EXPLAIN.
    pub fn explain(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| format!("{self:?}"))
    }
}
/// The struct literal (`named_struct(...)` after constant folding) as name/value pairs.
pub fn struct_literal_args(expr: &Expr) -> Option<Vec<(String, Expr)>> {
    let Expr::Literal(ScalarValue::Struct(s), _) = expr else {
        return None;
    };
    let mut out = Vec::new();
    for (field, col) in s.fields().iter().zip(s.columns()) {
        let value = ScalarValue::try_from_array(col.as_ref(), 0).ok()?;
        out.push((field.name().clone(), Expr::Literal(value, None)));
    }
    Some(out)
}
