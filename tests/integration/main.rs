//! Integration tests against real parts: SeaweedFS as the backend, the built `s3torrent`
//! binary, and real clients (boto3, the aws CLI, curl, libtorrent as the independent checker).

mod authz;
mod bittorrent;
mod cache;
mod cli;
mod cluster;
mod demo;
mod directories;
mod errors;
mod faults;
mod formats;
#[allow(dead_code)]
mod harness;
mod hostile;
mod ops;
mod passthrough;
mod seeder;
mod store;
mod torrents;
mod upload;
mod warm;
