//! Wiring: builds shared state, spawns tasks, owns shutdown.
