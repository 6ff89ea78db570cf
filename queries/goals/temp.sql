-- Goal Temp (method §5.10): a temporal focus: a third of the subset video, a fifth of it temporal.
-- Copy this file and change numbers to make a goal of your own; run it with
--   gdo select --pool POOL --metrics METRICS --goal temp --out OUT
--   gdo sql --pool POOL --table metrics=METRICS --file queries/goals/temp.sql
-- goal_select reads the scored pairs, the strata and the metric VDS3 (views from
-- queries/select/score.sql) and returns the selected pairs in selection order;
-- the join brings back each pair's full row. gdo select recognises this query as
-- written here (whatever the goal_select arguments) and fetches those rows in the
-- same pool scan as the Uni-10x rows; edit the query itself and it runs as written.
SELECT p.*, g.score, g.base_score, g.vds3, g.metric_quality, g.stage, g.selection_order
FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3', named_struct(
    'goal', 'temp',
    'min_count', 15000,
    'max_count', 90000,
    'min_ratio', 0.001,
    'max_ratio', 0.016,
    'strata_mult', 20.0,
    'coverage_mass', 0.95,
    'tail_target', 10.0,
    'vds3_target_positive', 6500,
    'vds3_threshold', 0.0,
    'vds3_max_mult', 2.4,
    'min_video_ratio', 0.35,
    'max_video_ratio', 0.50,
    'min_temporal_in_video_ratio', 0.20,
    'temporal_categories', 'Temporal,Mixed',
    'oversample', 1.30,
    'video_oversample', 2.2,
    'temporal_oversample', 3.0,
    'source_group_floor_topk', 18,
    'min_source_group_ratio', 0.0022,
    'source_group_floor_frac_of_expected', 0.38,
    'seed', 42,
    'max_qa_per_video', 8,
    'uni_multiplier', 10
  )) g
JOIN pool p ON p.pool_index = g.pool_index
ORDER BY g.selection_order;
