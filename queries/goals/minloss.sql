-- Goal MinLoss (method §5.10): the smallest subset: few video pairs, modest floors; the paper's 12.9k MinLoss set.
-- Copy this file and change numbers to make a goal of your own; run it with
--   gdo select --pool POOL --metrics METRICS --goal minloss --out OUT
--   gdo sql --pool POOL --table metrics=METRICS --file queries/goals/minloss.sql
-- goal_select reads the scored pairs, the strata and the metric VDS3 (views from
-- queries/select/score.sql) and returns the selected pairs in selection order;
-- the join brings back each pair's full row. gdo select recognises this query as
-- written here (whatever the goal_select arguments) and fetches those rows in the
-- same pool scan as the Uni-10x rows; edit the query itself and it runs as written.
SELECT p.*, g.score, g.base_score, g.vds3, g.metric_quality, g.stage, g.selection_order
FROM goal_select('gdo_scored', 'gdo_strata', 'gdo_metric_vds3', named_struct(
    'goal', 'minloss',
    'min_count', 12000,
    'max_count', 72000,
    'min_ratio', 0.001,
    'max_ratio', 0.014,
    'strata_mult', 16.0,
    'coverage_mass', 0.93,
    'tail_target', 3.5,
    'vds3_target_positive', 2600,
    'vds3_threshold', 0.0,
    'vds3_max_mult', 1.6,
    'min_video_ratio', 0.15,
    'max_video_ratio', 0.32,
    'min_temporal_in_video_ratio', 0.05,
    'temporal_categories', 'Temporal,Mixed',
    'oversample', 1.15,
    'video_oversample', 1.45,
    'temporal_oversample', 1.55,
    'source_group_floor_topk', 14,
    'min_source_group_ratio', 0.0015,
    'source_group_floor_frac_of_expected', 0.33,
    'seed', 42,
    'max_qa_per_video', 8,
    'uni_multiplier', 10
  )) g
JOIN pool p ON p.pool_index = g.pool_index
ORDER BY g.selection_order;
