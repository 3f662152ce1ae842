//! Everything S3 about the sidecar, independent of torrents: which request names which
//! object ([`route`], [`object`], [`uri`]), who is asking ([`sigv4`], [`sigv2`]), how errors are said
//! ([`error`], [`request_id`]), and how the sidecar itself talks to the backend
//! ([`upstream`], [`forwarded`]).

pub mod client_addr;
pub mod error;
pub mod forwarded;
pub mod listing;
pub mod object;
pub mod request_id;
pub mod route;
pub mod sigv2;
pub mod sigv4;
pub mod upstream;
pub mod uri;
pub mod xml;

pub use error::{Code, S3Error};
pub use object::ObjectRef;
