-- The cheap descriptors of one chunk of the pool (method §3): media (one fetch
-- and decode per frame: amm, frame_diversity, vis_feat and error are fields of one
-- media_descriptors call, made once per row in the inner query; DataFusion keeps a
-- non-trivial column used several times in its own projection, see EXPLAIN), hashed
-- text features, TNC by keyword rule and the lengths.
-- Model columns are NULL here (self_consistency -1: not computed); `gdo describe`
-- fills them when it has a scorer. {lo}, {hi}, {shards}, {shard} are integers put in
-- by the job: the chunk's pool_index range and this shard (row i -> shard i mod N).
SELECT
    qa_uid,
    video_uid,
    bucket,
    CAST(NULL AS DOUBLE) AS loss_video,
    CAST(NULL AS DOUBLE) AS loss_blind,
    CAST(NULL AS DOUBLE) AS vds,
    CAST(NULL AS DOUBLE) AS ppl,
    media['amm'] AS amm,
    media['frame_diversity'] AS frame_diversity,
    tnc_regex(question) AS tnc_score,
    CAST(-1.0 AS DOUBLE) AS self_consistency,
    text_feat(question, answer) AS text_feat,
    media['vis_feat'] AS vis_feat,
    CAST(n_frames AS INT) AS n_frames,
    CAST(token_count(question) AS INT) AS question_len,
    CAST(token_count(answer) AS INT) AS answer_len,
    media['error'] AS error,
    question,
    answer,
    frames
FROM (
    SELECT *, media_descriptors(frames) AS media
    FROM pool
    WHERE pool_index BETWEEN {lo} AND {hi} AND pool_index % {shards} = {shard}
)
ORDER BY pool_index
