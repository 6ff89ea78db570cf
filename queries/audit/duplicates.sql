-- Duplicate question-answer texts: exact duplicates share a text_hash (sha1 of
-- "question|||answer"); near duplicates agree after lower-casing and dropping
-- punctuation. GDO's selection keeps one pair per text_hash.
WITH keyed AS (
    SELECT qa_uid, question, answer, text_hash,
           regexp_replace(lower(question || ' ||| ' || answer), '[^a-z0-9| ]+', '', 'g') AS near_key
    FROM pool
)
SELECT 'exact' AS kind, count(*) AS pairs, count(DISTINCT qa_uid) - count(DISTINCT text_hash) AS redundant_pairs,
       min(question) AS example_question, min(qa_uid) AS example_qa_uid
FROM keyed
WHERE text_hash IN (SELECT text_hash FROM pool GROUP BY text_hash HAVING count(*) > 1)
UNION ALL
SELECT 'near', count(*), count(DISTINCT qa_uid) - count(DISTINCT near_key),
       min(question), min(qa_uid)
FROM keyed
WHERE near_key IN (SELECT near_key FROM keyed GROUP BY near_key HAVING count(*) > 1)
ORDER BY kind;
