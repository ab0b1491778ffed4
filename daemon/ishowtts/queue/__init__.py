"""The queue and the ledger: utterances waiting for the voice, in priority order, and the one
terminal log line every received event ends in."""
