//! SQL shipped with gdo, embedded from `queries/` so the CLI, the demo and the tests run
//! the same text. `gdo sql --query NAME` runs one; `gdo sql --list-queries` lists them.

/// The scoring views (method §5.1, 5.2, 5.3), run in sessions that have `pool` and `metrics`.
pub const SCORE_SQL: &str = include_str!("../queries/select/score.sql");

/// An embedded query: its name (path below `queries/`, without `.sql`) and text.
pub struct Query {
    pub name: &'static str,
    pub sql: &'static str,
}

impl Query {
    /// The leading comment of the query: what it answers.
    pub fn summary(&self) -> String {
        self.sql.lines().map_while(|l| l.strip_prefix("--")).map(str::trim).collect::<Vec<_>>().join(" ")
    }
}

macro_rules! query {
    ($name:literal) => {
        Query { name: $name, sql: include_str!(concat!("../queries/", $name, ".sql")) }
    };
}

/// The audit queries a data engineer runs first on a pool (`pool`, `pool_rejects`).
pub const AUDIT: &[Query] = &[
    query!("audit/composition"),
    query!("audit/temporal_share"),
    query!("audit/temporal_cues"),
    query!("audit/duplicates"),
    query!("audit/pairs_per_video"),
    query!("audit/length_distribution"),
    query!("audit/strata"),
    query!("audit/rejects"),
];

/// Every embedded query.
pub fn all() -> impl Iterator<Item = &'static Query> {
    AUDIT.iter()
}

/// Find an embedded query by name (`audit/composition`, or just `composition`).
pub fn find(name: &str) -> Option<&'static Query> {
    let name = name.trim_end_matches(".sql");
    all().find(|q| q.name == name || q.name.rsplit('/').next() == Some(name))
}
