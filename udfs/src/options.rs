//! gdo's session settings (`SET gdo.<name> = <value>`), a DataFusion config extension.
//!
//! They live in the session's `ConfigOptions`, not in process globals, so a fresh
//! session (or a Ballista executor, which ships config with every task) sees them.

use std::any::Any;

use datafusion::common::config_namespace;
use datafusion::config::{ConfigEntry, ConfigExtension, ConfigField, ConfigOptions, ExtensionOptions, Visit};

config_namespace! {
    /// Settings that override a goal's parameters and switch parts of GDO's score off.
    pub struct GdoOptions {
        /// Ablation: drop the VDS3 term (0.95*v) from video scores.
        pub no_vds: bool, default = false
        /// Ablation: drop the text-quality ("PPL-like") term from the base score.
        pub no_ppl: bool, default = false
        /// Ablation: drop the metric-quality terms (m) from every score.
        pub no_sc: bool, default = false
        /// Ablation: skip the VDS3 budget adjustment.
        pub no_vds3_budget: bool, default = false
        /// Seed of every random step (overrides the goal's `seed`).
        pub seed: Option<u64>, default = None
        /// Fixed subset size (overrides the goal's budget rules).
        pub count: Option<u64>, default = None
        /// Fixed subset ratio of the pool (used when no count is set).
        pub ratio: Option<f64>, default = None
        /// Per-video cap (overrides the goal's `max_qa_per_video`).
        pub max_qa_per_video: Option<u64>, default = None
        /// Uni-10x size as a multiple of the goal subset (overrides `uni_multiplier`).
        pub uni_multiplier: Option<f64>, default = None
        /// Size of the uniform baseline drawn by `uni_sample` when the call gives none.
        pub uni_count: Option<u64>, default = None
        /// Where `amm` / `frame_diversity` run: `cpu` (the tuned CPU kernel), `cuda` or
        /// `cuda:N` (the candle path on a GPU; needs the `cuda` feature), or
        /// `candle-cpu` (the candle path on the CPU, for checking it).
        pub motion_device: String, default = "cpu".to_owned()
    }
}

impl ConfigExtension for GdoOptions {
    const PREFIX: &'static str = "gdo";
}

/// By hand rather than with `extensions_options!`, whose entries drop the `gdo.`
/// prefix: Ballista ships a job's settings as these entries and sets each key on the
/// scheduler and the executors, so unprefixed keys were dropped there (an executor
/// then ran with the defaults, `motion_device` included).
impl ExtensionOptions for GdoOptions {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }
    fn set(&mut self, key: &str, value: &str) -> datafusion::common::Result<()> {
        ConfigField::set(self, key, value)
    }
    fn entries(&self) -> Vec<ConfigEntry> {
        struct Entries(Vec<ConfigEntry>);
        impl Visit for Entries {
            fn some<V: std::fmt::Display>(&mut self, key: &str, value: V, description: &'static str) {
                self.0.push(ConfigEntry { key: key.to_owned(), value: Some(value.to_string()), description });
            }
            fn none(&mut self, key: &str, description: &'static str) {
                self.0.push(ConfigEntry { key: key.to_owned(), value: None, description });
            }
        }
        let mut v = Entries(Vec::new());
        ConfigField::visit(self, &mut v, Self::PREFIX, "");
        v.0
    }
}

/// The session's gdo settings (defaults when the extension is not registered).
pub fn gdo_options(config: &ConfigOptions) -> GdoOptions {
    config.extensions.get::<GdoOptions>().cloned().unwrap_or_default()
}
