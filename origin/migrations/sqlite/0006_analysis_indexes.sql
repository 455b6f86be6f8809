-- Covering indexes for experiment analysis (sqlite): the first exposure
-- per user and the per-user metric sums read only the index.
DROP INDEX exposures_analysis;
CREATE INDEX exposures_analysis ON exposures (environment, flag_key, user_key, time_ms, variant);
DROP INDEX metric_events_analysis;
CREATE INDEX metric_events_analysis ON metric_events (environment, name, user_key, time_ms, value);
