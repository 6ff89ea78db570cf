-- The cheap descriptors of one chunk of the pool (spec section 2): media (one fetch
-- and decode per frame: amm, frame_diversity and vis_feat are fields of one
-- media_descriptors call), hashed text features, TNC by keyword rule and the lengths.
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
    amm(frames) AS amm,
    frame_diversity(frames) AS frame_diversity,
    tnc_regex(question) AS tnc_score,
    CAST(-1.0 AS DOUBLE) AS self_consistency,
    text_feat(question, answer) AS text_feat,
    vis_feat(frames) AS vis_feat,
    CAST(n_frames AS INT) AS n_frames,
    CAST(token_count(question) AS INT) AS question_len,
    CAST(token_count(answer) AS INT) AS answer_len,
    media_descriptors(frames)['error'] AS error,
    question,
    answer,
    frames
FROM pool
WHERE pool_index BETWEEN {lo} AND {hi} AND pool_index % {shards} = {shard}
ORDER BY pool_index
