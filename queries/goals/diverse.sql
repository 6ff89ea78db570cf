-- Goal Diverse (method §5.10): the widest coverage: most strata, many source-group floors.
-- Copy this file and change numbers to make a goal of your own; run it with
--   gdo select --pool POOL --metrics METRICS --goal diverse --out OUT
--   gdo sql --pool POOL --table metrics=METRICS --file queries/goals/diverse.sql
-- goal_select reads the scored pairs, the strata and the metric VDS3 (views from
-- queries/select/score.sql) and returns the selected pairs in selection order;
-- the join brings back each pair's full row. gdo select recognises this query as
-- written here (whatever the goal_select arguments) and fetches those rows in the
-- same pool scan as the Uni-10x rows; edit the query itself and it runs as written.
SELECT p.*, g.score, g.base_score, g.vds3, g.metric_quality, g.stage, g.selection_order
FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3', named_struct(
    'goal', 'diverse',
    'min_count', 14000,
    'max_count', 95000,
    'min_ratio', 0.001,
    'max_ratio', 0.016,
    'strata_mult', 26.0,
    'coverage_mass', 0.97,
    'tail_target', 8.0,
    'vds3_target_positive', 5000,
    'vds3_threshold', 0.0,
    'vds3_max_mult', 2.4,
    'min_video_ratio', 0.25,
    'max_video_ratio', 0.45,
    'min_temporal_in_video_ratio', 0.15,
    'temporal_categories', 'Temporal,Mixed',
    'oversample', 1.28,
    'video_oversample', 1.9,
    'temporal_oversample', 2.2,
    'source_group_floor_topk', 28,
    'min_source_group_ratio', 0.0030,
    'source_group_floor_frac_of_expected', 0.45,
    'seed', 42,
    'max_qa_per_video', 8,
    'uni_multiplier', 10
  )) g
JOIN pool p ON p.pool_index = g.pool_index
ORDER BY g.selection_order;
