/**
 * Every limit in one place. Names carry units, last. Each says why.
 * Relationships between limits are asserted when the module loads.
 */
import assert from "node:assert/strict";

/** x86 target page size: QEMU 7.2 TARGET_PAGE_BITS = 12. */
export const PAGE_SIZE_BYTES = 4096;
/** Pages per stored chunk: one compression frame, one read, one hash. 64 × 4 KiB = 256 KiB. */
export const CHUNK_PAGES_MAX = 64;
/** Device state (FULL sections) is small (~100s of KiB); more means a stream we do not understand. */
export const DEVICE_STATE_BYTES_MAX = 64 * 1024 * 1024;
/** RAM blocks per VM: QEMU has about ten; thousands is a corrupt stream. */
export const RAM_BLOCKS_MAX = 1024;
/** Largest RAM block we accept: 1 TiB. */
export const RAM_BLOCK_BYTES_MAX = 2 ** 40;
/** QMP replies are small; bigger is a bug or an attack. */
export const QMP_LINE_BYTES_MAX = 1 << 20;
/** Default time to wait for one QMP command's reply. */
export const QMP_COMMAND_TIMEOUT_MS = 30_000;
/** How long QEMU may take to connect to the save socket after `migrate`. */
export const SAVE_CONNECT_TIMEOUT_MS = 30_000;
/**
 * A save spools QEMU's stream to a file (save/spool.ts, ADR 0033) only when the store's disk has
 * this many times the guest's RAM free, plus the margin: room for the stream (at most the RAM
 * and its record headers, more when a live save sends pages again) and for the checkpoint
 * written from it while it is still there. Else it streams over the socket.
 */
export const SAVE_SPOOL_ROOM_FACTOR = 2;
export const SAVE_SPOOL_ROOM_MARGIN_BYTES = 256 * 2 ** 20;
/** The spool is read in 1 MiB pieces (few reads; the parser copies only across pieces). */
export const SAVE_SPOOL_READ_BYTES = 2 ** 20;
/** Saves go to a local receiver: do not let QEMU's 128 MiB/s default throttle them (1 TB/s). */
export const MIGRATE_MAX_BANDWIDTH_BYTES_PER_S = 1_000_000_000_000;
/** A manifest is JSON of a few KiB; bound what we read before trusting it. */
export const MANIFEST_BYTES_MAX = 16 * 1024 * 1024;

assert(CHUNK_PAGES_MAX * PAGE_SIZE_BYTES <= 2 ** 31, "chunk length fits its u32 field");
assert(Number.isSafeInteger(RAM_BLOCK_BYTES_MAX * RAM_BLOCKS_MAX), "total RAM fits a JS number");

/** QMP events kept until someone waits for them; when full, the oldest is dropped. */
export const QMP_EVENTS_QUEUED_MAX = 256;
/** Time for a just-spawned QEMU to open its QMP socket and greet; TCG start-up on 2 shared cores is slow. */
export const QMP_CONNECT_TIMEOUT_MS = 15_000;
/**
 * Pause between attempts to reach a QMP socket that does not exist yet. Short: a restore waits
 * on it (QEMU listens ~70–120 ms after exec), and a refused connect costs one syscall.
 */
export const QMP_CONNECT_RETRY_MS = 5;
/** Pause between query-migrate polls: migration progress is reported, not pushed. */
export const MIGRATION_POLL_MS = 50;
/** Default bound on waiting for a migration: a 64 GiB guest at 200 MB/s takes ~6 min. */
export const MIGRATION_WAIT_TIMEOUT_MS = 15 * 60_000;
/** Bytes of QEMU's log quoted in an error: its last complaint, short enough to read. */
export const QEMU_LOG_TAIL_BYTES_MAX = 4096;
/** sun_path is 108 bytes including the NUL; QEMU refuses longer Unix socket paths. */
export const UNIX_SOCKET_PATH_BYTES_MAX = 107;
/** A VM spec is a small hand-written JSON file. */
export const VM_SPEC_BYTES_MAX = 1 << 20;
/** Guest RAM accepted in a spec: QEMU's pc machine will not boot below 16 MiB; 1 TiB is plenty. */
export const VM_MEMORY_MIB_MIN = 16;
export const VM_MEMORY_MIB_MAX = 1 << 20;
/** vCPUs per VM: QEMU's pc machine allows 255 (288 with x2apic). */
export const VM_SMP_MAX = 255;
/** `-L` data directories a VM spec's qemu field may name. */
export const QEMU_DATA_DIRS_MAX = 8;
/** Disks per VM: virtio-blk-pci needs a PCI slot each; a pc machine has 32 minus the built-ins. */
export const VM_DISKS_MAX = 16;
/** Extra QEMU arguments in a spec: an escape hatch, not a second command line language. */
export const VM_EXTRA_ARGS_MAX = 256;
/** Time for QEMU to exit after QMP `quit` before it is killed. */
export const VM_STOP_TIMEOUT_MS = 10_000;
/** Time `listVms` waits for a VM's status: its single QMP connection may be held by someone else. */
export const VM_STATUS_TIMEOUT_MS = 1_000;
/** How often to check whether a QEMU we did not spawn is still alive. */
export const VM_PID_POLL_MS = 100;

assert(VM_MEMORY_MIB_MIN < VM_MEMORY_MIB_MAX, "memory range is not empty");
assert(QMP_CONNECT_RETRY_MS < QMP_CONNECT_TIMEOUT_MS, "connect retries more than once");

// QEMU migration streams (src/bytes, src/qemu/migration).
/** One ByteSource read; callers bound their own reads well below this (largest: RECV_BITMAP). */
export const BYTE_SOURCE_READ_BYTES_MAX = 64 * 1024 * 1024;
/** The configuration section names the machine type ("pc-i440fx-7.2") with a be32 length. */
export const MACHINE_NAME_BYTES_MAX = 256;
/** Validated capabilities listed in the configuration section: 7.2 knows one, later QEMUs two. */
export const CONFIG_CAPABILITIES_MAX = 64;
/** QEMU's own cap on a return-path message payload (migration.c source_return_path_thread). */
export const RETURN_PATH_PAYLOAD_BYTES_MAX = 512;
/** A RECV_BITMAP answer covers one block: one bit per 4 KiB page of the largest block (32 MiB). */
export const RECV_BITMAP_BYTES_MAX = RAM_BLOCK_BYTES_MAX / PAGE_SIZE_BYTES / 8;
/** A migration command's payload length is a be16. */
export const MIGRATION_COMMAND_PAYLOAD_BYTES_MAX = 0xffff;
/** The stream writer hands its sink batches of about this size, so pages cost no syscall each. */
export const MIGRATION_WRITE_BATCH_BYTES = 256 * 1024;

assert(RECV_BITMAP_BYTES_MAX <= BYTE_SOURCE_READ_BYTES_MAX, "a RECV_BITMAP fits one read");
assert(DEVICE_STATE_BYTES_MAX <= 0xffff_ffff, "device state fits one PACKAGED blob (be32 length)");
assert(PAGE_SIZE_BYTES * 4 <= MIGRATION_WRITE_BATCH_BYTES, "a batch holds several page records");

/** Guest pages in one checkpoint: 1 TiB of 4 KiB pages; bounds the page map (4 B a page: 1 GiB). */
export const CHECKPOINT_PAGES_MAX = 2 ** 28;
/** Chunks in one checkpoint: the page map's 23-bit chunk field (2 TiB of distinct page contents). */
export const CHECKPOINT_CHUNKS_MAX = 2 ** 23;
/** Largest decompressed checkpoint index: 48 B of chunk table a chunk + 4 B of page map a page. */
export const INDEX_BYTES_MAX = CHECKPOINT_CHUNKS_MAX * 48 + CHECKPOINT_PAGES_MAX * 4;
/** Pack bytes gathered before one write; two such buffers alternate, so compression overlaps I/O. */
export const PACK_WRITE_BUFFER_BYTES = 1 << 20;
/** Pack bytes written between background fsyncs, so the final fsync of a save is short. */
export const PACK_SYNC_AHEAD_BYTES = 32 << 20;
/** Problems one checkpoint verify() describes; past that it only counts them. */
export const VERIFY_PROBLEMS_MAX = 100;
/** QEMU RAM block ids are at most 256 bytes (RAMBlock.idstr[256]). */
export const RAM_BLOCK_NAME_BYTES_MAX = 256;

assert(CHUNK_PAGES_MAX <= 64, "a chunk slot fits the page map's 6-bit slot field");
assert(
  PACK_WRITE_BUFFER_BYTES >= CHUNK_PAGES_MAX * PAGE_SIZE_BYTES,
  "a whole chunk fits one write",
);
assert(CHECKPOINT_PAGES_MAX <= 2 ** 32, "a global page index fits a u32");

/** A working set beyond 1 Mi pages (4 GiB) is no longer a working set; it bounds refinement. */
export const WORKING_SET_PAGES_MAX = 1 << 20;
/**
 * An estimate that holds more than this share of the guest memory it was chosen from predicts
 * little (accessed bits read with no clean window: docs/accessed-bits.md); auto and a partial
 * restore without --working-set do not pick it. Measured: bits since boot held 100% of a 512 MiB
 * guest's pages and made partial 2× slower than lazy to the first output.
 */
export const WORKING_SET_BROAD_SHARE = 0.5;
/**
 * Page-table pages a checkpoint's accessed-bit walk may list for a restore to reset: a 64 GiB
 * guest's 4 KiB mappings need ~32k; more is not a page table set we trust ourselves to edit.
 */
export const PAGE_TABLE_PAGES_MAX = 1 << 17;
/** A JSON file of src/wss (page-tables.json, a version-1 working set): ≤ 1 Mi entries of ~25 B. */
export const WORKING_SET_FILE_BYTES_MAX = 64 * 1024 * 1024;
/** A working-set file's header line (src/wss/file.ts): a few names, counts and one hash. */
export const WORKING_SET_HEADER_BYTES_MAX = 4096;

// Lazy and partial restore: snapwake as QEMU's postcopy source (src/restore/postcopy).
/** Decompressed chunks kept for requests and locality pushes: 64 × 256 KiB = 16 MiB of pages. */
export const RESTORE_CHUNK_CACHE_CHUNKS = 64;
/**
 * Working-set chunks a partial restore's prelude asks the chunk workers for ahead of the one it
 * sends: enough to keep both workers busy, well inside the cache (the one being sent is held).
 */
export const PRELUDE_READ_AHEAD_CHUNKS = 8;
/**
 * Working-set chunks a partial restore loads before QEMU is ready (~0.1 s of QMP start-up),
 * half of the cache; they decode on the page server's thread (ADR 0021), and the prelude then
 * finds them verified. The attach to QEMU waits behind those decodes; starting them after it
 * brought RUN no sooner (docs/bench.md, "The floors under a restore").
 */
export const PRELUDE_EARLY_CHUNKS = 32;
/**
 * Pages (a working set's pages and their chunk neighbours) a partial restore sends before the
 * guest runs, 32 MiB. QEMU takes them at 4 KiB a fault (docs/bench.md, "The floors under a
 * restore"): 375–513 ms at 4 GiB on the bench host (2,048 pages: 151–175 ms; 4,096 pages:
 * 308–368 ms), ~100 ms for 2,880 pages at 512 MiB. The rest of the working set goes
 * first in the background fill, which runs beside the guest: a prelude of all of a guest that
 * sweeps its memory was an eager restore (measured slower than lazy), and a 4 GiB guest's
 * 17,000-page prelude gained nothing over lazy (docs/restore.md, "A bounded prelude").
 */
export const PRELUDE_PAGES_MAX = 8192;
/**
 * Bytes queued in our socket before background fill waits. The socket is FIFO: a requested
 * page queues behind this much at most (256 KiB ≈ 25–250 µs at local socket speeds; the
 * kernel's own socket buffer keeps QEMU busy while we refill it).
 */
export const RESTORE_QUEUED_BYTES_MAX = 256 * 1024;
/**
 * Batch size of the postcopy channel's stream writer: a pushed part (RESTORE_PUSH_PAGES_MAX
 * pages) and its headers, so a pooled buffer is not much bigger than what it carries.
 */
export const RESTORE_WRITE_BATCH_BYTES = 64 * 1024;
/** Free pooled write buffers the postcopy channel keeps (≈ 69 KiB each, ADR 0010). */
export const RESTORE_WRITE_BUFFERS_KEPT = 32;
/** Chunk worker threads of a lazy or partial restore's page server (decode and verify). */
export const RESTORE_POSTCOPY_WORKERS = 2;
/**
 * Chunk reads a lazy or partial restore's loader has in flight on the store at once (ADR 0017),
 * apart from the decode threads: on network storage a read is mostly waiting, and 200 MB/s
 * with 5 ms a read holds ~1 MB, ~5 stored chunks of ~200 KiB, in flight; two reads left the
 * link ~80 % idle. Measured: 8 filled no faster than 5 and queued a request's read behind
 * more fill bytes (p50 10.5 ms against 7.5). Each holds a 256 KiB stored-bytes buffer. Reads
 * go through libuv's pool (4 threads unless UV_THREADPOOL_SIZE says more).
 */
export const RESTORE_READS_IN_FLIGHT_CHUNKS = 5;
/** Chunks the background fill asks for ahead of the one it sends: enough to keep those reads busy. */
export const RESTORE_FILL_READ_AHEAD_CHUNKS = RESTORE_READS_IN_FLIGHT_CHUNKS;
/**
 * A page read alone for a request (ADR 0020) blocks the page server's thread for the read: on a
 * local store ~10 µs from the page cache, ~0.1 ms from a disk. Reads slower than this,
 * RESTORE_SLOW_ALONE_READS_MAX in a row, mean a store where a whole chunk's asynchronous read
 * serves requests better: from then on pages are not read alone. (In a row: on two busy cores
 * a read now and then spans a wait for the core, ~3–14 ms at the p99 of request service.)
 */
export const RESTORE_ALONE_READ_SLOW_MS = 2;
export const RESTORE_SLOW_ALONE_READS_MAX = 3;
/** Evicted chunk buffers (256 KiB each) a lazy restore's loader keeps for its next loads. */
export const RESTORE_CHUNK_BUFFERS_KEPT = 16;
/**
 * Of those, the last ones are for decodes on the page server's thread (a request's chunk, the
 * prelude's): the fill's workers take a fresh buffer instead, whose first touch (~64 page faults
 * of 5–15 µs on the bench hosts) is then theirs, off the request's path (ADR 0029).
 */
export const RESTORE_CHUNK_BUFFERS_HERE = 4;
/** Pages of a buffer touched in one turn of the event loop (buffer-warmer.ts): 0.1–0.25 ms. */
export const RESTORE_WARM_SLICE_PAGES = 16;
/** Pages in one pushed (unrequested) RAM PART; requests are looked at between parts. */
export const RESTORE_PUSH_PAGES_MAX = 16;
/**
 * Chunks whose remaining pages wait for a locality push after a request, newest pushed first;
 * past this the oldest is left to the background fill.
 */
export const RESTORE_LOCALITY_CHUNKS_MAX = 48;
/** Chunks the background looks past for its read-ahead: chunks whose pages are all sent. */
export const RESTORE_READAHEAD_SCAN_CHUNKS = 64;
/** Requests queued and not yet served; QEMU asks once per missing page, so more is a fault. */
export const RESTORE_REQUESTS_QUEUED_MAX = 1 << 20;
/** Page requests kept in a restore's trace (≈50 B each in JSON); later ones are only counted. */
export const RESTORE_TRACE_REQUESTS_MAX = 262_144;
/** Service latencies kept for the p50/p99; later ones are only counted. */
export const RESTORE_LATENCIES_MAX = 262_144;
/** From the postcopy package until the guest runs: device state loads, faulting pages. */
export const RESTORE_RUN_TIMEOUT_MS = 120_000;
/** From RAM END + EOF until QEMU answers SHUT and reports the migration completed. */
export const RESTORE_COMPLETE_TIMEOUT_MS = 60_000;
/** QMP `stop` before the kill on a failed fill: a vCPU blocked on a missing page never stops. */
export const RESTORE_STOP_TIMEOUT_MS = 2_000;
/** Pause between query-status polls while waiting for the restored guest to run. */
export const RESTORE_STATUS_POLL_MS = 20;
/** A restore reports progress every this many pages placed, sent or imaged (32 MiB). */
export const RESTORE_PROGRESS_EVERY_PAGES = 8192;

assert(
  RESTORE_PUSH_PAGES_MAX * PAGE_SIZE_BYTES < RESTORE_QUEUED_BYTES_MAX,
  "a pushed part fits well inside the queued-bytes bound",
);
assert(
  PRELUDE_READ_AHEAD_CHUNKS + 1 < RESTORE_CHUNK_CACHE_CHUNKS,
  "the prelude's read-ahead never evicts the chunk it is sending",
);
assert(
  RESTORE_LOCALITY_CHUNKS_MAX + 1 + RESTORE_FILL_READ_AHEAD_CHUNKS + 4 <=
    RESTORE_CHUNK_CACHE_CHUNKS,
  "the fill's chunk, its read-ahead and a few requests' fit beside the locality chunks",
);
assert(
  RESTORE_LOCALITY_CHUNKS_MAX + 16 <= RESTORE_CHUNK_CACHE_CHUNKS,
  "chunks waiting for a locality push stay cached, with the background's, its read-ahead and " +
    "those requests wait for (more still works: an evicted chunk is read again)",
);

// Frozen disk layers and disk-duplicate references (src/disk, docs/adr/0006).
/** Guest clusters of one layer mapped in memory (8 B each): 16 Mi × 64 KiB clusters = 1 TiB. */
export const LAYER_GUEST_CLUSTERS_MAX = 1 << 24;
/** qcow2 L1 table: QEMU's own QCOW_MAX_L1_SIZE (32 MiB). */
export const QCOW2_L1_BYTES_MAX = 32 * 1024 * 1024;
/** Distinct non-zero 4 KiB blocks one layer index holds (16 B each): 1 GiB of index, 256 GiB of data. */
export const LAYER_INDEX_BLOCKS_MAX = 1 << 26;
/** One sequential read while a layer is indexed: large enough to stream, small enough to hold. */
export const LAYER_READ_BYTES = 1 << 20;
/** Layers in one disk's chain: a save adds one or two; past this, flatten the chain. */
export const DISK_CHAIN_LAYERS_MAX = 256;
/** Layers one checkpoint may name (every disk's chain). */
export const CHECKPOINT_LAYERS_MAX = 1024;
/** A layer's sidecar or a VM's hold file is a few hundred bytes of JSON. */
export const LAYER_RECORD_BYTES_MAX = 64 * 1024;
/** qemu-img create of an empty overlay takes milliseconds; a stuck one is killed. */
export const QEMU_IMG_TIMEOUT_MS = 60_000;

assert(LAYER_READ_BYTES % PAGE_SIZE_BYTES === 0, "index reads are whole blocks");
/** Disk references in one checkpoint: each is a distinct page content, so at most one a page. */
export const CHECKPOINT_DISK_REFS_MAX = CHECKPOINT_PAGES_MAX;
/** A profiling trace longer than 10 minutes is no longer a start-up working set. */
export const PROFILE_SECONDS_MAX = 600;
/**
 * Bound of a profiling window that closes when the trace settles (docs/restore.md). Demand
 * paging under TCG places ~1 500 pages/s, so a guest that sweeps 384 MiB needs ~65 s; under
 * KVM faults are cheaper. A guest that never settles runs demand-paged this long.
 */
export const PROFILE_WINDOW_DEFAULT_MS = 120_000;
/** The settle rule counts new pages in buckets of this many ms (VEE'11-style rate windows). */
export const PROFILE_BUCKET_MS = 250;
/**
 * A trace has settled once this long brought (almost) no new pages: longer than the period of
 * a periodic scan we want to see (the sweeping test guest uses ≤ 2 s), short enough that a
 * quiet guest is profiled in a few seconds.
 */
export const PROFILE_QUIET_MS = 4_000;
/** "Almost no new pages": a mean rate over the quiet span of at most 2 % of the peak bucket's. */
export const PROFILE_SETTLE_RATIO = 0.02;
assert(PROFILE_QUIET_MS % PROFILE_BUCKET_MS === 0, "the quiet span is whole buckets");
assert(
  PROFILE_QUIET_MS < PROFILE_WINDOW_DEFAULT_MS &&
    PROFILE_WINDOW_DEFAULT_MS <= PROFILE_SECONDS_MAX * 1000,
  "a default window can settle, within the profiling bound",
);
/** `inspect --restores` lists the newest 1000 restore records. */
export const RESTORE_RECORDS_LISTED_MAX = 1000;
/** A layout's `source` label in the manifest (e.g. "trace"): a short word, not a document. */
export const LAYOUT_SOURCE_BYTES_MAX = 64;
/**
 * Distinct pages an incremental save indexes from the checkpoints it shares with (2^21 pages,
 * 8 GiB of distinct content; ~44 bytes of memory each, ~90 MiB). Beyond it pages are stored.
 */
export const SHARED_INDEX_PAGES_MAX = 2 ** 21;
/** A pack's page-digest cache file is read only up to this size (256 MiB: 8M pages). */
export const DIGEST_CACHE_BYTES_MAX = 256 * 1024 * 1024;
/**
 * A QEMU install's cached machine-type list is read only up to this size (1 MiB): `-machine
 * help` names ~100 types in ~5 KiB; a bigger file is not ours and QEMU is asked again.
 */
export const MACHINE_TYPES_CACHE_BYTES_MAX = 1024 * 1024;
/** Chunks a relayout keeps decoded while it gathers the working set in access order (16 MiB). */
export const RELAYOUT_CHUNK_CACHE_MAX = 64;

// The emulated slow store (src/checkpoint/read/read-throttle.ts): a bench and test facility.
/** Bandwidth accepted in SNAPWAKE_STORE_THROTTLE: 1 MB/s (a crawl) to 100 GB/s (no limit). */
export const STORE_THROTTLE_MBPS_MIN = 1;
export const STORE_THROTTLE_MBPS_MAX = 100_000;
/** Latency per read accepted there: 0 to 1 s (a slow object store's first byte). */
export const STORE_THROTTLE_LATENCY_MS_MAX = 1000;

// Chunk workers (src/checkpoint/read/chunk-workers.ts, ADR 0002 "Parallel decode").
/** Chunks a parallel walk has in flight (read, decoded, verified ahead): 2 MiB of pages. */
export const CHUNK_WORKER_QUEUE_CHUNKS = 8;
/** Chunk workers of an eager restore: they decode while this thread and QEMU move the bytes. */
export const RESTORE_EAGER_WORKERS = 1;
/** Chunk workers of an eager restore that writes guest RAM itself (ADR 0034). */
export const RESTORE_EAGER_RAM_WORKERS = 2;
/** How often an eager restore looks for QEMU's guest-RAM memfd while QEMU starts (ADR 0034). */
export const QEMU_MEMFD_POLL_MS = 2;
/**
 * Alignment of guest RAM in a RAM directory (ADR 0035): an x86 huge page, so that QEMU's
 * mapping lines up with the tmpfs's 2 MiB pages and maps each with one entry.
 */
export const RAM_DIR_ALIGN_BYTES = 2 * 2 ** 20;
/** Bytes an eager restore lets wait in its socket to QEMU before it waits for a drain. */
export const RESTORE_EAGER_QUEUED_BYTES_MAX = 1 << 20;
/**
 * A mapped restore's RAM image (restore/ram-image.ts, ADR 0032): one BLAKE3 per region of
 * 2 MiB, checked before every restore; the images of all checkpoints together are kept within
 * RAM_IMAGES_BYTES_MAX of disk (allocated bytes), the least recently used removed first.
 */
export const RAM_IMAGE_REGION_BYTES = 2 * 1024 * 1024;
export const RAM_IMAGES_BYTES_MAX = 32 * 1024 ** 3;
/** A RAM image's sums file is read only up to this size (1 MiB: ~15,000 regions, 30 GiB). */
export const RAM_IMAGE_SUMS_BYTES_MAX = 1024 * 1024;
/** Region digests a RAM image check keeps in flight on the chunk workers (16 MiB). */
export const RAM_IMAGE_REGIONS_IN_FLIGHT = 8;
/** Chunk workers of a mapped restore: they build the image, or check it while QEMU starts. */
export const RESTORE_MAPPED_WORKERS = 2;
/** The eager stream's loopback connection to itself (ADR 0030): it takes a millisecond. */
export const INCOMING_PAIR_TIMEOUT_MS = 5_000;
/**
 * Chunk workers of a checkpoint writer: they hash pages and compress chunks while this thread
 * parses the stream and deduplicates, then verify the written pack (ADR 0013, "Save").
 */
export const WRITE_WORKERS = 2;
/** Pages a writer gathers before one hashing job (256 KiB): a worker message per 64 pages. */
export const WRITE_BATCH_PAGES = 64;
/**
 * Page records (data and zero) one batch holds in stream order: zero records ride in the batch
 * so a page's last record still wins (up to 16 KiB of bookkeeping a batch).
 */
export const WRITE_BATCH_RECORDS_MAX = 4096;
/** Hashing batches in flight before putPage waits: 1 MiB of pages. */
export const WRITE_BATCHES_IN_FLIGHT_MAX = 4;
/** Chunks being compressed before the writer waits: 1 MiB of pages. */
export const WRITE_CHUNKS_IN_FLIGHT_MAX = 4;

// The store lock (src/store/lock.ts, ADR 0009).
/**
 * How long taking the lock waits for another process to finish taking or changing its hold
 * (held for milliseconds; a crashed holder's entry is taken over at once): 5 s.
 */
export const STORE_LOCK_ENTRY_WAIT_MS = 5000;
