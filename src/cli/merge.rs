//! `gdo merge`: descriptor rows into the merged table (robust z, k-means, quality score).

use crate::error::Result;
use crate::stage::Merge;

/// Merge descriptor rows (a gdo descriptor table, Parquet, or the reference's JSONL
/// shards) into one row per qa_uid with cluster scores and the quality score.
///
/// Example: gdo merge --descriptors descriptors/ --out merged/ --cluster-k 4096
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Descriptor inputs: gdo tables, Parquet files or folders, JSONL files (plain or
    /// .gz), folders of JSONL shards (sixd_metrics_rank*.jsonl[.gz]), or a file-name
    /// pattern ('shards/sixd_metrics_rank000[0-3].jsonl.gz', quoted).
    #[arg(long, num_args = 1.., required = true, value_name = "PATH")]
    pub descriptors: Vec<String>,
    /// Output table folder (local path or s3://, gs://, az:// URI). Replaced atomically.
    #[arg(long, value_name = "DIR")]
    pub out: String,
    /// Clusters requested; k = min(max(2, this), rows).
    #[arg(long, default_value_t = 4096)]
    pub cluster_k: usize,
    /// Seed of k-means and of the statistics' reservoir samples.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Rows per k-means mini-batch.
    #[arg(long, default_value_t = 8192)]
    pub batch_size: usize,
    /// Rows per Parquet file.
    #[arg(long, default_value_t = 1_000_000, hide = true)]
    pub rows_per_file: usize,
}

pub async fn run(args: Args) -> Result<()> {
    let r = Merge::new(args.descriptors, args.out)
        .with_cluster_k(args.cluster_k)
        .with_seed(args.seed)
        .with_batch_size(args.batch_size)
        .with_rows_per_file(args.rows_per_file)
        .with_progress(true)
        .await?;
    let bad = if r.bad_rows > 0 {
        let reasons: Vec<String> = r.bad_rows_by_reason.iter().map(|(k, n)| format!("{k} {n}")).collect();
        format!(", {} bad row(s) skipped ({})", r.bad_rows, reasons.join(", "))
    } else {
        String::new()
    };
    let dups = if r.duplicate_qa_uids > 0 {
        format!(", {} duplicate qa_uid(s) (later row kept)", r.duplicate_qa_uids)
    } else {
        String::new()
    };
    if r.cluster_k < r.cluster_k_requested {
        eprintln!(
            "warning: --cluster-k {} is more than the {} rows fit; k = {}{} (the Diverse goal's \
             cluster quotas then group nothing; choose k well below the row count)",
            r.cluster_k_requested,
            r.rows_fit,
            r.cluster_k,
            if r.cluster_k as u64 >= r.rows_fit { ", one cluster per row" } else { "" }
        );
    }
    println!(
        "merged {} rows from {} input(s) into {} version {} (k={}, mean distance {:.4}, SC fallback on {} rows{bad}{dups}) in {:.2}s",
        r.rows_written,
        r.num_inputs,
        r.out,
        r.version.unwrap_or_default(),
        r.cluster_k,
        r.kmeans_mean_dist,
        r.sc_fallback_rows,
        r.seconds
    );
    Ok(())
}
