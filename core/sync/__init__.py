"""The sync runtime: the engine (start, work, finish), streams per entity, the window, runs and their lock, cooldowns,
the scheduler's tick and the client factory."""
