-- Question and answer lengths (GDO tokens: [A-Za-z0-9_]+ after lower-casing), per
-- length bucket, with the token range each bucket actually holds.
SELECT 'question' AS field, q_len_bucket AS length_bucket, count(*) AS pairs,
       min(q_tokens) AS min_tokens, max(q_tokens) AS max_tokens,
       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct
FROM pool
GROUP BY q_len_bucket
UNION ALL
SELECT 'answer', a_len_bucket, count(*), min(a_tokens), max(a_tokens),
       round(100.0 * count(*) / sum(count(*)) OVER (), 2)
FROM pool
GROUP BY a_len_bucket
ORDER BY field DESC, min_tokens;
