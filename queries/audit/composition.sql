-- Pool composition: pairs per bucket, source group and duration bucket, with shares.
SELECT bucket,
       source_group,
       duration_bucket,
       count(*) AS pairs,
       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct_of_pool
FROM pool
GROUP BY bucket, source_group, duration_bucket
ORDER BY pairs DESC, bucket, source_group, duration_bucket;
