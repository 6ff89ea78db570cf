-- Input lines ingest rejected, per file and reason, with the first offending line.
SELECT source_file, reason, count(*) AS lines, min(source_line) AS first_line,
       first_value(detail ORDER BY source_line) AS first_detail
FROM pool_rejects
GROUP BY source_file, reason
ORDER BY source_file, lines DESC, reason;
