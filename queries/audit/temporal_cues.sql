-- Temporal cues in the questions, per bucket and temporal category: how many questions
-- name an order in time (gdo's tnc_regex: before, after, then, first, next, ...), so a
-- reader sees how far the pool's temporal labels agree with what the questions ask.
SELECT bucket, temporal_category, count(*) AS pairs,
       CAST(sum(tnc_regex(question)) AS BIGINT) AS with_temporal_cue,
       round(100.0 * avg(tnc_regex(question)), 2) AS pct_with_temporal_cue
FROM pool
GROUP BY bucket, temporal_category
ORDER BY bucket, temporal_category;
