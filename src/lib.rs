//! `shopstream`: the binary a user runs. All roles in one process
//! (`serve`), plus the operator commands (`migrate`, `token`, `openapi`).
//!
//! # Layout
//! - `cli`: the command line (clap), one variant per subcommand, each with only the setting groups it uses.
//! - `config`: the setting groups (store, auth, HTTP, Kafka, saga, telemetry,
//!   limits) from flags and `SHOPSTREAM_*` variables, and the JWT secret kept
//!   in the data directory.
//! - `platform`: one start-up and one shutdown for whichever roles a process runs.
//! - `projections`: the projection role, `projections status|rebuild`, the admin endpoint.
//! - `admin`: the admin endpoints (projection status, rebuilds over HTTP).
//! - `rebuilds`: rebuilds started over HTTP (admin), with their progress and diff.
//! - `saga`: the order–payment saga and the simulated payment provider.
//! - `seed`: realistic, deterministic demo data (`shopstream seed`).
//! - `healthcheck`: `shopstream healthcheck`, the container's probe of its own `/livez`.

/// Every shopstream binary allocates through mimalloc: request handling,
/// JSON and row decoding allocate many short-lived objects, which glibc's
/// allocator served at a tenth of the server's CPU in profiles.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The tokio runtime every binary runs on: multi-threaded, and each worker
/// hands its allocator's freed pages back to the system when it goes idle.
/// mimalloc purges lazily, when a thread allocates again; a worker that
/// served a burst (a connection flood) and then sat idle kept its freed
/// pages for good (measured: +36 % RSS after 3,000 connections came and
/// went; with this, back to the baseline — `shopstream-bench --only flood`).
///
/// # Errors
/// When the runtime cannot be built (no threads).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(release_freed_memory)
        .build()
}

/// On a worker going idle: at most once a second per thread, let mimalloc
/// return this thread's freed pages (cheap when there are none).
fn release_freed_memory() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    LAST.with(|last| {
        let now = Instant::now();
        if last
            .get()
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        last.set(Some(now));
        // SAFETY: `mi_collect` only walks and frees the calling thread's
        // own heap pages; it takes no pointers and is safe to call at any
        // time from a thread that allocates through mimalloc.
        unsafe { libmimalloc_sys::mi_collect(false) };
    });
}

/// mimalloc's `mi_option_purge_delay`: the same index in its v2 and v3
/// headers (`mimalloc.h`, `mi_option_e`); the Rust bindings do not name it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// From now on, memory freed in this process goes back to the system at
/// once instead of after mimalloc's purge delay (1 s by default), unless
/// the operator chose a delay (`MIMALLOC_PURGE_DELAY`). For a bulk job
/// bounded by its resident memory (`projections rebuild --rebuild-memory`):
/// with the delay, a spill's freed pages stayed resident until the next
/// batches reused them, and the bound did not hold. And for processes that
/// serve no requests ([`platform::Roles::purge_at_once`]).
pub fn purge_freed_memory_at_once() {
    purge_freed_memory_after(0);
}

/// From now on, memory freed in this process goes back to the system
/// `ms` milliseconds after it was freed (see
/// [`purge_freed_memory_at_once`]), unless the operator chose a delay
/// (`MIMALLOC_PURGE_DELAY`).
pub fn purge_freed_memory_after(ms: std::ffi::c_long) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table;
    // it takes no pointers and may be called at any time.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}

pub mod admin;
pub mod cli;
pub mod config;
pub mod healthcheck;
pub mod platform;
pub mod projections;
pub mod rebuilds;
pub mod saga;
pub mod seed;

#[cfg(test)]
mod tests {
    use libmimalloc_sys::{mi_option_get, mi_option_set};

    use super::MI_OPTION_PURGE_DELAY;

    #[test]
    fn freed_memory_is_purged_at_once_unless_the_operator_chose_a_delay() {
        // SAFETY: reading and writing mimalloc's option table (integers).
        let get = || unsafe { mi_option_get(MI_OPTION_PURGE_DELAY) };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // The index names the purge delay: mimalloc v3's default, 1 s.
            assert_eq!(get(), 1000);
            super::purge_freed_memory_at_once();
            assert_eq!(get(), 0);
            super::purge_freed_memory_after(100);
            assert_eq!(get(), 100);
            // SAFETY: as above.
            unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
        } else {
            let chosen = get();
            super::purge_freed_memory_at_once();
            assert_eq!(get(), chosen);
            super::purge_freed_memory_after(100);
            assert_eq!(get(), chosen);
        }
    }
}
