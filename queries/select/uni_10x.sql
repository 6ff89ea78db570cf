-- The Uni-10x baseline (method §5.8): a seeded uniform sample of the scored pool,
-- drawn with the goal subsets' dedup rules. Size, seed and per-video cap come from the
-- session (SET gdo.uni_count / gdo.seed / gdo.max_qa_per_video). `gdo select` draws the
-- same rows from the reservoir its goal pass already filled (no second pass); with the
-- goal report's uni_target_count, seed and max_qa_per_video set here, this query gives
-- them in the same order (tests/integration/select_parity.rs checks it).
-- `stage` says which dedup pass took the pair.
SELECT p.*, u.score, u.base_score, u.vds3, u.metric_quality, u.pass AS stage, u.sample_order AS selection_order
FROM uni_sample('gdo_scored') u
JOIN pool p ON p.pool_index = u.pool_index
ORDER BY u.sample_order;
