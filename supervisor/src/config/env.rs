//! `${NAME}` / `${NAME:-default}` / `$$` interpolation of string values.
