-- Pairs per video: how many videos carry how many QA pairs, and which exceed GDO's
-- per-video cap of 8 pairs (max_qa_per_video), whose extra pairs selection never takes.
WITH per_video AS (
    SELECT video_uid, count(*) AS pairs
    FROM pool
    WHERE bucket = 'short_video'
    GROUP BY video_uid
)
SELECT pairs AS pairs_per_video,
       count(*) AS videos,
       pairs > 8 AS over_cap,
       min(video_uid) AS example_video_uid
FROM per_video
GROUP BY pairs
ORDER BY pairs_per_video DESC;
