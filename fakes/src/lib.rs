//! Fakes of the cloud APIs that terraform-provider-aienv talks to, faithful
//! enough to the public wire formats that the real client libraries (and the
//! real Terraform CLI driving the provider) can run against them.

pub mod gce;
