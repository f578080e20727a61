//! Resources, one file each, plus the input parsers they share.
pub mod gpu_workstation;
pub mod validate;
