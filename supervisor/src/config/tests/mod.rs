//! Loader tests on whole config files (written to temp dirs): every key's
//! parsing and default, every error kind with its position, includes,
//! replicas, `depends_on`, networks.

mod checks;
mod errors;
mod helpers;
mod includes;
mod ini;
mod ini_errors;
mod networks;
mod programs;
mod replicas;
mod supervisor;
