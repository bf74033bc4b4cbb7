//! Listeners, candidate selection, session registry and cancel routing.
