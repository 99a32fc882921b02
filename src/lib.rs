//! corelog: an event-streaming broker in the family of Kafka, Redpanda and
//! Iggy, built thread-per-core on glommio and io_uring.
//!
//! # Module map
//!
//! | module | owns | I/O |
//! |---|---|---|
//! | [`constants`] | every limit and default size | none |
//! | [`types`] | newtypes: offsets, timestamps, ids | none |
//! | [`config`] | broker configuration: defaults, TOML file, validation | reads the file |
//! | [`record`] | the Kafka record-batch v2 codec | none |
//! | [`protocol`] | framing; the native (flatbuffers) and Kafka adapters | reads/writes frames |
//! | [`storage`] | one partition's log: segments, indexes, recovery, retention, durability | glommio direct I/O |
//! | [`meta`] | topics, placement of partitions on shards, the metadata file | the metadata file |
//! | [`error`] | protocol-neutral error kinds clients are answered with | none |
//! | [`cluster`] | the Raft controller quorum that replicates metadata across brokers | the Raft files, controller sockets |
//! | [`shard`] | executors, cross-core messages, routing, the controller | through storage |
//! | [`broker`] | the protocol-neutral core: what each request means | through shards |
//! | [`server`] | listeners and connections, generic over the protocol | sockets |
//! | [`client`] | producer, consumer, admin | sockets |
//! | [`cli`] | the `corelog` command line | |
//! | [`alloc`] | allocator tuning for the binaries | |
//!
//! # Threading model
//!
//! One glommio executor per core; each partition log is owned by exactly one
//! executor and is `!Send`. Nothing in a log is shared with another core;
//! other cores reach it with messages. No `RefCell` borrow is held across an
//! `.await` (clippy's `await_holding_refcell_ref` is denied below).
#![deny(clippy::await_holding_refcell_ref)]

pub mod alloc;
pub mod bench;
pub mod broker;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod constants;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod http;
pub mod meta;
pub mod metrics;
pub mod order;
pub mod protocol;
pub mod record;
pub mod security;
pub mod server;
pub mod shard;
pub mod storage;
pub mod support;
pub mod trace;
pub mod types;
