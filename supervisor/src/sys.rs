//! The only module with `unsafe`: raw syscalls behind safe functions (DESIGN rule 4).
#![allow(unsafe_code)]
