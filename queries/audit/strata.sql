-- Pairs per stratum (the 7 stratification fields joined with '|'), in first-seen
-- order: the order GDO's quotas and fill stages use to break ties.
SELECT stratum, count(*) AS pairs, min(pool_index) AS first_seen
FROM pool
GROUP BY stratum
ORDER BY first_seen;
