//! What stands in locally for the AWS side of the deployment: provisioning
//! of the table and bucket from `template.yaml`, the local API Gateway
//! that calls the functions exactly as AWS would, and the stand-in for the
//! CDN the docs page loads its renderer from.
//!
//! Not for production: on AWS, CloudFormation and API Gateway do this.

pub mod admin;
pub mod bench;
pub mod calls;
pub mod cdn;
pub mod dev_data;
mod event;
pub mod filter;
pub mod functions;
pub mod migrate;
pub mod provision;
pub mod rest;
pub mod schedule;
pub mod streams;
mod sync;
pub mod template;
pub mod ws;
