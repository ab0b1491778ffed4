"""The pipeline: a received chat event is normalised, filtered, deduped and merged, then
queued as an utterance or dropped with a logged reason."""
