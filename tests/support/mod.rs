//! Test-support library shared by the acceptance tests (`mod support;` in each test file).
//!
//! Everything here drives REAL parts: the Terraform CLI and the moto EC2 emulator
//! installed by `scripts/install-tools.sh`, plus a loopback fault-injecting proxy.
#![allow(dead_code)]

pub mod clouds;
pub mod ec2;
pub mod fault_proxy;
pub mod hcl;
pub mod moto;
pub mod processes;
pub mod terraform;
pub mod tools;
