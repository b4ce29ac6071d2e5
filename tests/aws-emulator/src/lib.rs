//! An AWS emulator for tests: Redshift, DocumentDB and ElastiCache snapshot APIs (and
//! STS GetCallerIdentity and AssumeRole, with roles' trust and temporary credentials
//! checked on every call) over
//! the AWS Query protocol, close enough to AWS that the official SDKs cannot tell,
//! with fault injection and an admin API. Everything is kept in memory.

pub mod children;
pub mod docdb;
pub mod elasticache;
pub mod presign;
pub mod query;
pub mod redshift;
pub mod server;
pub mod state;
pub mod sts;

pub use server::{Options, start};
