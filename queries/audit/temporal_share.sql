-- Temporal share among video pairs, per source group: how much of the video data asks
-- for temporal reasoning (GDO's Temp goals draw on the Temporal category).
SELECT source_group,
       count(*) AS video_pairs,
       sum(CASE WHEN temporal_category = 'Temporal' THEN 1 ELSE 0 END) AS temporal_pairs,
       round(100.0 * avg(CASE WHEN temporal_category = 'Temporal' THEN 1.0 ELSE 0.0 END), 2) AS pct_temporal
FROM pool
WHERE bucket = 'short_video'
GROUP BY source_group
UNION ALL
SELECT '(all video)', count(*),
       sum(CASE WHEN temporal_category = 'Temporal' THEN 1 ELSE 0 END),
       round(100.0 * avg(CASE WHEN temporal_category = 'Temporal' THEN 1.0 ELSE 0.0 END), 2)
FROM pool
WHERE bucket = 'short_video'
ORDER BY video_pairs DESC, source_group;
