"""What a person can do: connect a partner (and backfill it), run a manual fetch, keep auto-pay rules; each checked for
access and audited."""
