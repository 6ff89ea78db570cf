-- GDO's per-pair score (method §5.1, 5.2 and 5.3) as views over two tables:
--   pool     the pool table (`gdo ingest`)
--   metrics  merged descriptors, one row per qa_uid: loss_video, loss_blind,
--            frame_diversity, vds, quality_score (non-finite values already NULL)
-- gdo creates these views in every session that has both tables. The goal files
-- (queries/goals/*.sql) feed `gdo_scored`, `gdo_strata` and `gdo_metric_vds3` to the
-- goal_select operator. Ablations: SET gdo.no_vds / gdo.no_ppl / gdo.no_sc = true.

-- 4.2: mean and sample standard deviation of each metric over its finite values;
-- a std is 1.0 when there is at most one value or the variance is <= 1e-12.
CREATE OR REPLACE VIEW gdo_metric_stats AS
SELECT
  avg(loss_video) AS lv_mean,
  CASE WHEN count(loss_video) <= 1 OR var_samp(loss_video) <= 1e-12 THEN 1.0
       ELSE stddev_samp(loss_video) END AS lv_std,
  avg(loss_blind) AS lb_mean,
  CASE WHEN count(loss_blind) <= 1 OR var_samp(loss_blind) <= 1e-12 THEN 1.0
       ELSE stddev_samp(loss_blind) END AS lb_std,
  avg(frame_diversity) AS fd_mean,
  CASE WHEN count(frame_diversity) <= 1 OR var_samp(frame_diversity) <= 1e-12 THEN 1.0
       ELSE stddev_samp(frame_diversity) END AS fd_std,
  avg(vds) AS vds_mean,
  CASE WHEN count(vds) <= 1 OR var_samp(vds) <= 1e-12 THEN 1.0
       ELSE stddev_samp(vds) END AS vds_std,
  avg(quality_score) AS q_mean,
  CASE WHEN count(quality_score) <= 1 OR var_samp(quality_score) <= 1e-12 THEN 1.0
       ELSE stddev_samp(quality_score) END AS q_std
FROM metrics;

-- z-scores capped at +-4 (NULL stays NULL: an absent metric is not a zero).
CREATE OR REPLACE VIEW gdo_metric_z AS
SELECT
  m.qa_uid,
  CASE WHEN m.loss_video IS NULL THEN NULL
       ELSE greatest(-4.0, least(4.0, (m.loss_video - s.lv_mean) / s.lv_std)) END AS z_lv,
  CASE WHEN m.loss_blind IS NULL THEN NULL
       ELSE greatest(-4.0, least(4.0, (m.loss_blind - s.lb_mean) / s.lb_std)) END AS z_lb,
  CASE WHEN m.frame_diversity IS NULL THEN NULL
       ELSE greatest(-4.0, least(4.0, (m.frame_diversity - s.fd_mean) / s.fd_std)) END AS z_fd,
  CASE WHEN m.vds IS NULL THEN NULL
       ELSE greatest(-4.0, least(4.0, (m.vds - s.vds_mean) / s.vds_std)) END AS z_vds,
  CASE WHEN m.quality_score IS NULL THEN NULL
       ELSE greatest(-4.0, least(4.0, (m.quality_score - s.q_mean) / s.q_std)) END AS z_q
FROM metrics m CROSS JOIN gdo_metric_stats s;

-- VDS3 and metric quality of every metric row (the budget adjustment of 4.3 counts
-- positive VDS3 over all of them, including rows whose pair is not in the pool).
CREATE OR REPLACE VIEW gdo_metric_vds3 AS
SELECT
  qa_uid,
  CASE WHEN z_lv IS NOT NULL AND z_lb IS NOT NULL AND z_fd IS NOT NULL THEN -z_lv + z_lb + z_fd
       WHEN z_vds IS NOT NULL AND z_fd IS NOT NULL THEN z_vds + 0.5 * z_fd
       WHEN z_vds IS NOT NULL THEN z_vds
       ELSE 0.0 END AS vds3,
  coalesce(z_q, 0.0) AS metric_quality
FROM gdo_metric_z;

-- 4.1: the strata in first-seen order (pool_index of their first pair).
CREATE OR REPLACE VIEW gdo_strata AS
SELECT stratum, count(*) AS pairs, min(pool_index) AS first_seen
FROM pool
GROUP BY stratum;

-- The share of each value of the six alignment fields. Every field is part of the
-- stratum (`bucket|duration|temporal|form|q_len|a_len|source_group`), so the shares
-- come from the small strata table, not from another pass over the pool.
CREATE OR REPLACE VIEW gdo_field_shares AS
WITH strata AS (SELECT stratum, pairs FROM gdo_strata),
     total AS (SELECT sum(pairs) AS n FROM strata),
     per_value AS (
       SELECT 2 AS part, split_part(stratum, '|', 2) AS value, pairs FROM strata
       UNION ALL SELECT 3, split_part(stratum, '|', 3), pairs FROM strata
       UNION ALL SELECT 4, split_part(stratum, '|', 4), pairs FROM strata
       UNION ALL SELECT 5, split_part(stratum, '|', 5), pairs FROM strata
       UNION ALL SELECT 6, split_part(stratum, '|', 6), pairs FROM strata
       UNION ALL SELECT 7, split_part(stratum, '|', 7), pairs FROM strata)
SELECT part, value, CAST(sum(pairs) AS DOUBLE) / CAST(max(total.n) AS DOUBLE) AS share
FROM per_value CROSS JOIN total
GROUP BY part, value;

-- 4.5 alignment per stratum: mean of ln(max(share, 1e-9)) over the six fields.
CREATE OR REPLACE VIEW gdo_stratum_alignment AS
SELECT s.stratum,
  (ln(greatest(f2.share, 1e-9)) + ln(greatest(f3.share, 1e-9)) + ln(greatest(f4.share, 1e-9))
   + ln(greatest(f5.share, 1e-9)) + ln(greatest(f6.share, 1e-9)) + ln(greatest(f7.share, 1e-9))) / 6.0
  AS alignment
FROM gdo_strata s
JOIN gdo_field_shares f2 ON f2.part = 2 AND f2.value = split_part(s.stratum, '|', 2)
JOIN gdo_field_shares f3 ON f3.part = 3 AND f3.value = split_part(s.stratum, '|', 3)
JOIN gdo_field_shares f4 ON f4.part = 4 AND f4.value = split_part(s.stratum, '|', 4)
JOIN gdo_field_shares f5 ON f5.part = 5 AND f5.value = split_part(s.stratum, '|', 5)
JOIN gdo_field_shares f6 ON f6.part = 6 AND f6.value = split_part(s.stratum, '|', 6)
JOIN gdo_field_shares f7 ON f7.part = 7 AND f7.value = split_part(s.stratum, '|', 7);

-- 4.5 source prior: ln((total + 1) / (pairs of the raw data_source + 1)).
CREATE OR REPLACE VIEW gdo_source_prior AS
WITH per_source AS (SELECT data_source, count(*) AS pairs FROM pool GROUP BY data_source)
SELECT data_source,
  ln((CAST(sum(pairs) OVER () AS DOUBLE) + 1.0) / (CAST(pairs AS DOUBLE) + 1.0)) AS source_prior
FROM per_source;

-- 4.5: the score of every pair and its parts.
CREATE OR REPLACE VIEW gdo_scored AS
WITH parts AS (
  SELECT
    p.pool_index, p.qa_uid, p.video_uid, p.bucket, p.data_source, p.source_group,
    p.temporal_category, p.stratum, p.text_hash,
    -- text quality ("PPL-like" term): lengths near 14 / 16 tokens, varied answers
    - abs(ln(CAST(greatest(p.q_tokens, 1) AS DOUBLE)) - ln(14.0))
      + 1.25 * (- abs(ln(CAST(greatest(p.a_tokens, 1) AS DOUBLE)) - ln(16.0)))
      - 1.2 * greatest(0.0, 0.55 - CAST(distinct_token_count(p.answer) AS DOUBLE)
                                   / CAST(greatest(p.a_tokens, 1) AS DOUBLE))
      AS text_quality,
    -- difficulty: a bell around 22 "effective" tokens
    exp(- power(abs(ln(greatest(1.0, CAST(p.q_tokens AS DOUBLE) + 0.5 * CAST(p.a_tokens AS DOUBLE)))
                    - ln(22.0)), 2) / (2.0 * 0.85 * 0.85)) AS difficulty,
    a.alignment,
    CASE p.temporal_category WHEN 'Temporal' THEN 1.0 WHEN 'Mixed' THEN 0.2 ELSE -0.5 END AS temporal_bonus,
    sp.source_prior,
    m.qa_uid IS NOT NULL AS has_metric,
    coalesce(m.vds3, 0.0) AS vds3,
    coalesce(m.metric_quality, 0.0) AS metric_quality
  -- The lookups and the metrics (three narrow columns) are on the left, the side a
  -- hash join builds when gdo keeps this view (it is then planned as written): the
  -- pool streams through all three joins in parallel instead of being collected into
  -- one hash table. Outer joins, so DataFusion does not regroup them; every stratum and
  -- source has its lookup row (both are grouped from the pool), and pairs without a
  -- stratum or source are left out, as an inner join would.
  FROM gdo_source_prior sp
  RIGHT JOIN (gdo_stratum_alignment a
              RIGHT JOIN (gdo_metric_vds3 m
                          RIGHT JOIN (SELECT * FROM pool
                                      WHERE stratum IS NOT NULL AND data_source IS NOT NULL) p
                          ON m.qa_uid = p.qa_uid)
              ON a.stratum = p.stratum)
  ON sp.data_source = p.data_source
),
based AS (
  SELECT *,
    CASE WHEN bucket = 'image_qa' THEN
           CASE WHEN gdo_flag('no_ppl') THEN 0.0 ELSE 1.1 * text_quality END
           + 0.85 * difficulty + 0.9 * alignment + 0.15 * source_prior
         ELSE
           CASE WHEN gdo_flag('no_ppl') THEN 0.0 ELSE 1.0 * text_quality END
           + 0.85 * difficulty + 0.9 * alignment + 0.55 * temporal_bonus + 0.15 * source_prior
    END AS base_score
  FROM parts
)
SELECT
  pool_index, qa_uid, video_uid, bucket, data_source, source_group, temporal_category,
  stratum, text_hash, base_score, vds3, metric_quality, has_metric,
  CASE WHEN bucket = 'image_qa' THEN
         0.9 * tanh(base_score / 3.0)
         + CASE WHEN has_metric AND NOT gdo_flag('no_sc')
                THEN 0.15 * (greatest(-4.0, least(4.0, metric_quality)) / 4.0) ELSE 0.0 END
       ELSE
         0.35 * tanh(base_score / 3.0)
         + CASE WHEN NOT has_metric THEN -0.15
                ELSE CASE WHEN gdo_flag('no_vds') THEN 0.0
                          ELSE 0.95 * (greatest(-4.0, least(4.0, vds3)) / 4.0) END
                   + CASE WHEN gdo_flag('no_sc') THEN 0.0
                          ELSE 0.35 * (greatest(-4.0, least(4.0, metric_quality)) / 4.0) END
           END
  END AS score
FROM based;
