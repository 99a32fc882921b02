//! Every limit and default size in one place, named with the unit last.
//!
//! A limit that is not here is a limit nobody will find when it bites. The
//! `const _` assertions at the bottom pin down how the limits relate, so a
//! change that breaks an assumption fails to compile instead of corrupting a
//! segment at run time.

/// Direct I/O alignment for positions and lengths. 4096 covers every
/// logical block size in service (512 and 4096); glommio reports the device's
/// own, which must divide this.
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;

/// The largest single record batch a log accepts. Kafka's default
/// `message.max.bytes` is about 1 MiB; 16 MiB leaves room for large batches
/// while keeping one append's memory bounded.
pub const BATCH_BYTES_MAX: usize = 16 << 20;

/// Largest records area a compressed batch may decompress to. Decompression
/// stops with an error at this bound, so a small hostile payload (a
/// "decompression bomb") cannot make the broker allocate without limit. It is
/// four times [`BATCH_BYTES_MAX`] because that limit applies to the
/// compressed bytes and producers' batches commonly compress 3–4:1; clients
/// size batches by their uncompressed bytes (Kafka's `batch.size`, 16 KiB by
/// default), so real batches stay far below it.
pub const DECOMPRESSED_BATCH_BYTES_MAX: usize = 64 << 20;
/// First growth step of a decompression buffer whose final size is unknown
/// (gzip, lz4, zstd); later steps double it, up to the bound.
pub const DECOMPRESS_READ_STEP_BYTES_MIN: usize = 64 << 10;
/// Capacity a thread's validation scratch buffer keeps between batches. It
/// covers common compressed batches without reallocating, while one rare
/// huge batch does not pin [`DECOMPRESSED_BATCH_BYTES_MAX`] per thread.
pub const DECOMPRESS_SCRATCH_KEPT_BYTES_MAX: usize = 4 << 20;

/// Partitions of `__consumer_offsets` (Kafka's `offsets.topic.num.partitions`
/// default). Fixed: a group's coordinator is `murmur2(group) % 50`, so the
/// count cannot change once groups exist.
pub const OFFSETS_TOPIC_PARTITIONS: u32 = 50;
/// Segment size of `__consumer_offsets` (Kafka's `offsets.topic.segment.bytes`).
pub const OFFSETS_TOPIC_SEGMENT_BYTES: u64 = 100 << 20;
/// Longest group id accepted.
pub const GROUP_ID_BYTES_MAX: usize = 255;
/// Members of one group (Kafka's `group.max.size` is unbounded by default;
/// a bound keeps one client from growing a group without limit).
pub const GROUP_MEMBERS_MAX: usize = 1000;
/// Groups one coordinator shard holds.
pub const GROUPS_PER_SHARD_MAX: usize = 100_000;
/// Session timeouts accepted (Kafka's `group.min.session.timeout.ms` and
/// `group.max.session.timeout.ms` defaults).
pub const GROUP_MIN_SESSION_TIMEOUT_MS: i64 = 6_000;
pub const GROUP_MAX_SESSION_TIMEOUT_MS: i64 = 1_800_000;
/// How often coordinators check sessions and rebalance deadlines.
pub const GROUP_TICK_MS: u64 = 100;

/// How often each shard publishes its figures for `/metrics` and the HTTP
/// API (what a scrape or the console sees is at most this old).
pub const METRICS_PUBLISH_MS: u64 = 500;

/// Where `corelog serve` serves HTTP (metrics, admin API, console) unless
/// told otherwise (Redpanda's admin port).
pub const HTTP_LISTEN_DEFAULT: &str = "127.0.0.1:9644";
/// How often a consumer-protocol (KIP-848) member heartbeats (Kafka's
/// `group.consumer.heartbeat.interval.ms`).
pub const GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// A consumer-protocol member silent this long is removed (Kafka's
/// `group.consumer.session.timeout.ms`).
pub const GROUP_CONSUMER_SESSION_TIMEOUT_MS_DEFAULT: u64 = 45_000;
/// Longest commit metadata string (Kafka's `offset.metadata.max.bytes`).
pub const OFFSET_METADATA_BYTES_MAX: usize = 4096;
/// Committed offsets of a group that has been empty this long are deleted
/// (Kafka's `offsets.retention.minutes`, 7 days).
pub const OFFSETS_RETENTION_MS: u64 = 7 * 24 * 3600 * 1000;

/// Largest segment file. Index entries store positions as `u32`, and Kafka
/// caps `segment.bytes` at `i32::MAX`; we do the same.
pub const SEGMENT_BYTES_MAX: u64 = i32::MAX as u64;
/// Smallest accepted `segment.bytes`, so a typo cannot make a file per batch.
pub const SEGMENT_BYTES_MIN: u64 = 64 << 10;
/// Default `segment.bytes` (Kafka's default).
pub const SEGMENT_BYTES_DEFAULT: u64 = 1 << 30;
/// Default `segment.ms`: roll a segment after a week even if not full.
pub const SEGMENT_MS_DEFAULT: u64 = 7 * 24 * 3600 * 1000;

/// Bytes of log between two sparse index entries (Kafka's
/// `index.interval.bytes`). A fetch scans at most this much past the entry
/// it lands on.
pub const INDEX_INTERVAL_BYTES: u64 = 4096;

/// Size of one write-behind chunk: the unit of a direct I/O write on the
/// append path. Large enough to reach the device's sequential bandwidth.
pub const WRITE_CHUNK_BYTES_DEFAULT: usize = 1 << 20;
/// Smallest accepted write chunk.
pub const WRITE_CHUNK_BYTES_MIN: usize = DIRECT_IO_ALIGN_BYTES;
/// Largest accepted write chunk.
pub const WRITE_CHUNK_BYTES_MAX: usize = 8 << 20;
/// How long an executor (a shard, or a client thread) runs ready tasks
/// before it looks at finished I/O again, in microseconds: glommio's own
/// default, 100 ms. A task that stays runnable therefore holds its core's
/// socket and disk completions back for up to that long, so long-running
/// loops must give way with a short timer (not a bare yield). Lower values
/// were tried: at 500 µs the load generator's consumers lost a wake-up
/// about once in three 13-second runs (a fetch answered after 30 s) on
/// glommio 0.9, so the bound stays at the default until that is understood.
pub const EXECUTOR_PREEMPT_MICROS: u64 = 100_000;

/// Full chunks a log may have in flight to the device before appends wait.
/// Generous on purpose: on ext4 an appending direct write is handed by
/// io_uring to a kernel worker thread that shares the shard's core, so one
/// write can take tens of milliseconds to start although the device answers
/// in one; with only 4 MiB in flight every such delay stopped appends (and
/// answered produce requests) for as long. 32 MiB covers ~100 ms at 300
/// MB/s; [`WRITE_INFLIGHT_SHARD_BYTES`] bounds the sum over a shard's logs.
pub const WRITES_INFLIGHT_MAX: usize = 32;
/// Bytes of full write chunks in flight to the device at once over all the
/// logs of one shard (each chunk's buffer lives until its write completes).
pub const WRITE_INFLIGHT_SHARD_BYTES: usize = 128 << 20;

/// Under the `never` fsync policy, data that sits in a partly filled chunk is
/// written to the file at most this long after it was appended, so a process
/// crash loses at most this much of acknowledged-but-unsynced data.
pub const WRITE_BEHIND_MS: u64 = 10;

/// A partition log that failed on a full disk tries to recover its tail
/// (and take writes again) at most this often: from its flusher while idle,
/// or at the next append.
pub const DISK_FULL_RETRY_MS: u64 = 100;

/// How often each shard samples the free space of the data directory's file
/// system (one `statvfs`) for the `--disk-free-min-bytes` watermark.
pub const DISK_FREE_CHECK_MS: u64 = 250;

/// The default free-space watermark: the smaller of this and
/// [`DISK_FREE_MIN_PERCENT_DEFAULT`] of the file system's size.
pub const DISK_FREE_MIN_BYTES_DEFAULT: u64 = 1 << 30;
pub const DISK_FREE_MIN_PERCENT_DEFAULT: u64 = 5;

/// Bytes kept allocated in `.corelog-reserve` in the data directory and
/// given up when the disk is full, so a metadata change (deleting a topic to
/// free space above all) can still be saved.
pub const METADATA_RESERVE_BYTES: u64 = 4 << 20;

/// Per-log cache of the most recent batches, served to tailing consumers
/// without touching the disk. Data not yet written to the file is always
/// kept regardless of this bound (it is bounded by the write chunks).
pub const TAIL_CACHE_BYTES_DEFAULT: usize = 4 << 20;

/// A fetch never asks the disk for more than this in one read.
pub const READ_BYTES_MAX: usize = 8 << 20;

/// Unit of a read of segment data for consumers: one direct-I/O read,
/// aligned to [`DIRECT_IO_ALIGN_BYTES`]. Large enough that a device reaches
/// its sequential bandwidth with a few in flight (the writes use the same
/// size, [`WRITE_CHUNK_BYTES_DEFAULT`]).
pub const READ_BLOCK_BYTES: usize = 1 << 20;

/// How far a forward-reading consumer's reads run ahead of it: after each
/// fetch from disk, the blocks up to this many bytes past its end are read
/// (or in flight), so the next fetch finds its data in memory and the
/// device keeps several reads queued.
pub const READ_AHEAD_BYTES: usize = 8 * READ_BLOCK_BYTES;

/// Read streams (readers followed for read-ahead) a partition keeps: two
/// consumers of one partition each keep their read-ahead; a third reader
/// takes over the least recently used stream.
pub const READ_STREAMS_PER_LOG: usize = 2;

/// Memory one shard may hold in blocks read ahead of its readers, over
/// all its partitions: eight readers at full depth. Blocks a fetch needs
/// itself are always read (a fetch reads at most [`READ_BYTES_MAX`]); only
/// the read-ahead waits for room, so with the budget spent reads go on
/// without it.
pub const READ_AHEAD_SHARD_BYTES: usize = 8 * READ_AHEAD_BYTES;

/// A reader that has not read for this long gives its read-ahead blocks
/// back when another reader of the shard finds the budget spent.
pub const READ_AHEAD_IDLE_MS: u64 = 1_000;

/// Largest frame the broker reads (Kafka's `socket.request.max.bytes` is
/// 100 MiB). Checked before any allocation.
pub const FRAME_BYTES_MAX: usize = 64 << 20;

/// Connections the broker accepts at once (split evenly over shards), unless
/// the file-descriptor budget caps it lower (see
/// [`CONNECTION_FDS_SHARE_PERCENT`]).
pub const CONNECTIONS_MAX_DEFAULT: usize = 10_000;
/// Connections each shard accepts beyond its share of the limit, for
/// metadata, stats and administration only: an operator can always look.
pub const ADMIN_CONNECTIONS_PER_SHARD: u32 = 4;
/// Connections over the limit a shard answers at once (reads the first
/// request, answers it with the limit error, closes); more are closed
/// without an answer.
pub const REFUSALS_ANSWERED_MAX: u32 = 16;
/// How long a refused connection may take to send its first request.
pub const REFUSAL_ANSWER_MS_MAX: u64 = 1_000;
/// At most one log line per shard per this interval about refused
/// connections (with the count since the last line).
pub const REFUSAL_LOG_INTERVAL_MS: u64 = 10_000;
/// Bytes of requests in flight (being received or handled) for the whole
/// broker, split over shards; each shard's share is at least one
/// largest frame. Past it a shard stops reading from sockets.
pub const REQUEST_MEMORY_BYTES_DEFAULT: usize = 256 << 20;

// The file-descriptor budget (`shard::budget`): the open-file limit is
// split into a fixed reserve, the connections' share and the storage share;
// topic creates are checked against the storage share before anything is
// registered.

/// Descriptors a connection holds: its socket and the duplicate its writer
/// half uses.
pub const FDS_PER_CONNECTION: usize = 2;
/// Descriptors an idle partition holds: its active segment's log. Sealed
/// segments open theirs on demand through the shard's open-file cache, and
/// the active segment's indexes live in memory (written whole when it is
/// sealed or the log closes).
pub const FDS_PER_PARTITION: usize = 1;
/// Descriptors reserved for the process itself: standard streams, the data
/// directory lock, metadata writes, the signal thread, logging, the blocking
/// pools' short-lived opens (directory syncs).
pub const FDS_RESERVED_PROCESS: usize = 64;
/// Descriptors reserved for each shard: its executor's rings and event
/// descriptors (a handful), up to four listeners, a connection accepted
/// over the limit before it is closed, the rolls in flight (up to
/// [`ROLLS_IN_FLIGHT_MAX`], two each) and the short-lived opens of producer
/// snapshots, close markers and compaction.
pub const FDS_RESERVED_PER_SHARD: usize = 32;
/// The most of the descriptors left after the reserves that connections
/// may take: `max_connections` is capped so storage keeps the rest.
pub const CONNECTION_FDS_SHARE_PERCENT: usize = 25;
/// The share of the storage descriptors the shards' open-file caches get
/// by default (split evenly over shards); the rest is for partitions.
pub const OPEN_FILES_CACHE_SHARE_PERCENT: usize = 12;
/// Bounds of one shard's open-file cache when derived from the budget.
pub const OPEN_SEGMENT_FILES_PER_SHARD_MIN: usize = 8;
pub const OPEN_SEGMENT_FILES_PER_SHARD_MAX: usize = 1024;
/// Segment rolls per shard whose old segment may be sealing at once (each
/// holds the old log and, briefly, an index file open besides the new
/// log); part of [`FDS_RESERVED_PER_SHARD`]. More wait (backpressure on the
/// appends that roll).
pub const ROLLS_IN_FLIGHT_MAX: usize = 8;
/// The open-file limit the budget assumes when the process's cannot be
/// read or is unlimited.
pub const OPEN_FILE_LIMIT_UNKNOWN: usize = 1 << 20;
/// Capacity of the open-file cache of a data directory opened outside a
/// broker (tools, tests); a broker sizes it from its budget.
pub const OPEN_SEGMENT_FILES_DEFAULT: usize = 256;
/// Requests one connection may have in flight before the broker stops
/// reading from it (backpressure, not an error).
pub const INFLIGHT_PER_CONNECTION_DEFAULT: usize = 128;
/// A connection with no request for this long is closed.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 10 * 60 * 1000;
/// Longest time a frame may take to arrive once its first byte has: a client
/// trickling bytes cannot hold a connection (and its buffer) for the idle
/// timeout.
pub const FRAME_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// How often each shard applies retention (Kafka's default).
pub const RETENTION_CHECK_MS_DEFAULT: u64 = 5 * 60 * 1000;
/// How often each shard's log cleaner looks for compactable segments.
pub const LOG_CLEANER_INTERVAL_MS_DEFAULT: u64 = 15_000;
/// Bytes per second a cleaner pass reads and writes at most.
pub const LOG_CLEANER_BYTES_PER_SEC_DEFAULT: u64 = 64 << 20;
/// Memory of a cleaner pass's key → latest offset map.
pub const LOG_CLEANER_MAP_BYTES_DEFAULT: usize = 32 << 20;
/// Longest a fetch may wait for data, whatever the client asks.
pub const FETCH_WAIT_MS_MAX: u64 = 30_000;
/// Messages queued on each cross-core channel before senders wait.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;
/// Longest shutdown waits for in-flight requests before closing logs.
pub const SHUTDOWN_DRAIN_MS_MAX: u64 = 10_000;

/// Most shards (cores) one broker runs.
pub const CORES_MAX: usize = 256;

/// Largest node id a broker may have. Node ids at or above
/// [`SHARD_BROKER_ID_BASE`] are the shard-brokers' of the shard-aware Kafka
/// mode (`crate::meta::shard_broker_id`), so a plain broker's id can never
/// be mistaken for a shard's in a cluster's metadata.
pub const NODE_ID_MAX: i32 = (1 << 20) - 1;
/// First node id of the shard-brokers (2^20).
pub const SHARD_BROKER_ID_BASE: i32 = NODE_ID_MAX + 1;
/// Node ids reserved for each broker's shards: a block of this many per
/// broker, so two brokers' shards never share an id. Larger than
/// [`CORES_MAX`], so the core limit can grow without renumbering.
pub const SHARD_BROKER_IDS_PER_NODE: i32 = 1024;

/// Most partitions one topic may have.
pub const PARTITIONS_PER_TOPIC_MAX: u32 = 10_000;
/// Longest topic name (Kafka's limit).
pub const TOPIC_NAME_BYTES_MAX: usize = 249;

/// Longest string the Kafka protocol carries. A non-compact string's length
/// is an `i16`; Kafka's own readers refuse longer compact strings too, so a
/// request the JVM broker would reject is rejected here as well.
pub const KAFKA_STRING_BYTES_MAX: usize = i16::MAX as usize;

/// Largest Kafka request other than Produce. The protocol crate's decoders
/// reserve memory by element counts, and the walker only bounds a count by
/// the bytes present (one byte per element); an element can cost 32 bytes
/// or more once decoded, so this cap keeps the worst case near 32 MiB. It
/// still fits a metadata request naming ~50,000 topics or a fetch of
/// ~30,000 partitions. Produce requests may use the whole frame.
pub const KAFKA_REQUEST_BYTES_MAX: usize = 1 << 20;

/// Batches remembered per idempotent producer and partition, to answer a
/// retried batch with its original offsets (Kafka's, and what clients
/// assume: at most five requests in flight per connection).
pub const PRODUCER_BATCHES_KEPT: usize = 5;
/// Idempotent producers remembered per partition; beyond it the least
/// recently seen are forgotten (about 200 bytes each).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 4096;
/// A producer that has not written to a partition for this long is
/// forgotten there (Kafka's `producer.id.expiration.ms` default: a day).
pub const PRODUCER_EXPIRY_MS: u64 = 24 * 3600 * 1000;
/// Producer ids the controller reserves (and persists) at a time, so ids
/// are never reused without a metadata write per producer.
pub const PRODUCER_ID_BLOCK: u64 = 1000;
/// Producer-state snapshots kept per partition (the newest ones).
pub const PRODUCER_SNAPSHOTS_KEPT: usize = 2;

/// Size of the marker file each shard reads with direct I/O at start so
/// glommio probes a non-empty file (NOTES.md, "poll-ring trap").
pub const PROBE_FILE_BYTES: usize = DIRECT_IO_ALIGN_BYTES;

const _: () = assert!(SEGMENT_BYTES_MAX >= BATCH_BYTES_MAX as u64);
// One chunk of the largest size must fit the shard's in-flight budget.
const _: () = assert!(WRITE_INFLIGHT_SHARD_BYTES >= WRITE_CHUNK_BYTES_MAX);
const _: () = assert!(FRAME_BYTES_MAX >= BATCH_BYTES_MAX + 4096);
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
// A batch accepted uncompressed is accepted compressed too.
const _: () = assert!(DECOMPRESSED_BATCH_BYTES_MAX >= BATCH_BYTES_MAX);
const _: () = assert!(SEGMENT_BYTES_MIN >= INDEX_INTERVAL_BYTES);
const _: () = assert!(READ_BLOCK_BYTES.is_multiple_of(DIRECT_IO_ALIGN_BYTES));
const _: () = assert!(READ_AHEAD_SHARD_BYTES >= READ_AHEAD_BYTES);
const _: () = assert!(WRITE_CHUNK_BYTES_MIN.is_multiple_of(DIRECT_IO_ALIGN_BYTES));
const _: () = assert!(WRITE_CHUNK_BYTES_DEFAULT.is_multiple_of(DIRECT_IO_ALIGN_BYTES));
const _: () = assert!(WRITE_CHUNK_BYTES_MAX.is_multiple_of(DIRECT_IO_ALIGN_BYTES));
// Every shard of every valid node id fits its block, and the last block
// ends within Kafka's i32 node ids.
const _: () = assert!(CORES_MAX <= SHARD_BROKER_IDS_PER_NODE as usize);
const _: () = assert!(
    SHARD_BROKER_ID_BASE as i64 + (NODE_ID_MAX as i64 + 1) * SHARD_BROKER_IDS_PER_NODE as i64
        <= i32::MAX as i64 + 1
);

// ---- Cluster: the Raft controller quorum -------------------------------

/// One Raft tick. Elections time out after 10 to 20 ticks (1–2 s) without
/// a leader's heartbeat, sent every 2 ticks.
pub const RAFT_TICK_MS: u64 = 100;
/// Ticks without a heartbeat before a follower campaigns (raft-rs
/// randomizes the timeout between this and twice this).
pub const RAFT_ELECTION_TICKS: usize = 10;
/// Ticks between a leader's heartbeats.
pub const RAFT_HEARTBEAT_TICKS: usize = 2;
/// Applied entries between two snapshots of the metadata (after which
/// the log before them is dropped); `--raft-snapshot-entries` changes it.
pub const RAFT_SNAPSHOT_ENTRIES: u64 = 1024;
/// How long a metadata change waits to be committed and applied before
/// the client is told REQUEST_TIMED_OUT (it may still take effect).
pub const CONTROLLER_COMMIT_TIMEOUT_MS: u64 = 8_000;
/// Raft messages queued for one peer; past it new ones are dropped (Raft
/// resends what is lost).
pub const RAFT_PEER_QUEUE_MAX: usize = 4096;
/// Raft messages received and not yet stepped; past it they are dropped.
pub const RAFT_INBOX_MAX: usize = 8192;
/// Largest Raft message on the wire (a metadata snapshot).
pub const RAFT_MESSAGE_BYTES_MAX: usize = 64 << 20;
/// How long connecting to a peer controller may take.
pub const RAFT_CONNECT_TIMEOUT_MS: u64 = 1_000;
/// A broker the controller leader has not heard from this long is fenced
/// (shown as such in the cluster metadata) until it answers again.
pub const BROKER_SESSION_TIMEOUT_MS: u64 = 4_000;

/// A follower that has not caught up with its leader's log end for this
/// long leaves the partition's in-sync replicas (Kafka's
/// `replica.lag.time.max.ms`; Kafka's default is 30 s, ours is shorter so
/// a stalled follower stops holding `acks=all` writes sooner).
pub const REPLICA_LAG_TIME_MAX_MS: u64 = 10_000;

/// How long a follower's replica fetch waits at the leader for new data.
pub const REPLICA_FETCH_WAIT_MS: u64 = 500;

/// Most bytes one replica fetch brings per partition.
pub const REPLICA_FETCH_BYTES: u32 = 4 << 20;

/// Longest an `acks=all` produce waits for the in-sync replicas before it
/// is answered REQUEST_TIMED_OUT (or NOT_ENOUGH_REPLICAS_AFTER_APPEND when
/// the ISR shrank below `min.insync.replicas` meanwhile).
pub const REPLICATION_ACK_TIMEOUT_MS: u64 = 15_000;

/// How often the controller leader hands partitions back to their
/// preferred leader (the first replica) once it is in sync again (Kafka
/// checks every 300 s; a small cluster rebalances sooner).
pub const PREFERRED_LEADER_CHECK_MS: u64 = 10_000;

/// Longest a cluster broker spends handing its partitions' leadership to
/// other in-sync replicas when asked to stop (SIGTERM) before it stops
/// anyway.
pub const CONTROLLED_SHUTDOWN_MS: u64 = 10_000;
