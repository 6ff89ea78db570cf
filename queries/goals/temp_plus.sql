-- Goal Temp+ (method §5.10): the strongest temporal focus: half the subset video, 38% of it temporal; the paper's best goal.
-- Copy this file and change numbers to make a goal of your own; run it with
--   gdo select --pool POOL --metrics METRICS --goal temp_plus --out OUT
--   gdo sql --pool POOL --table metrics=METRICS --file queries/goals/temp_plus.sql
-- goal_select reads the scored pairs, the strata and the metric VDS3 (views from
-- queries/select/score.sql) and returns the selected pairs in selection order;
-- the join brings back each pair's full row. gdo select recognises this query as
-- written here (whatever the goal_select arguments) and fetches those rows in the
-- same pool scan as the Uni-10x rows; edit the query itself and it runs as written.
SELECT p.*, g.score, g.base_score, g.vds3, g.metric_quality, g.stage, g.selection_order
FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3', named_struct(
    'goal', 'temp_plus',
    'min_count', 16000,
    'max_count', 110000,
    'min_ratio', 0.001,
    'max_ratio', 0.018,
    'strata_mult', 22.0,
    'coverage_mass', 0.95,
    'tail_target', 16.0,
    'vds3_target_positive', 9000,
    'vds3_threshold', 0.0,
    'vds3_max_mult', 3.2,
    'min_video_ratio', 0.50,
    'max_video_ratio', 0.64,
    'min_temporal_in_video_ratio', 0.38,
    'temporal_categories', 'Temporal,Mixed',
    'oversample', 1.35,
    'video_oversample', 2.9,
    'temporal_oversample', 4.2,
    'source_group_floor_topk', 16,
    'min_source_group_ratio', 0.0025,
    'source_group_floor_frac_of_expected', 0.38,
    'seed', 42,
    'max_qa_per_video', 8,
    'uni_multiplier', 10
  )) g
JOIN pool p ON p.pool_index = g.pool_index
ORDER BY g.selection_order;
