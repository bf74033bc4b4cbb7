//! Configuration model, defaults, validation and loading. Imports nothing internal.
