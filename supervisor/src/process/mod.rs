//! Spawning programs and reaping children.
