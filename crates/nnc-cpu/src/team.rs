//! A run's team of threads: the thread that runs a program and helpers that spin beside it
//! for the run's length, taking pieces of each parallel kernel as it is launched.
//!
//! Handing each kernel to a thread pool whose workers went to sleep during the kernels that
//! run inline costs a wake-up per parallel kernel: tens of microseconds in a VM, more than a
//! small model's whole step (lstm2 ran 0.08 ms on one thread and 0.13–0.29 ms on two). A
//! team's helpers are woken once per run and then wait for work by spinning (yielding the core
//! while they wait long), so a launch costs a few atomic operations; ONNX Runtime's pool spins
//! the same way. Nothing waits for a helper to start: the caller claims pieces like any
//! helper, so a launch whose helpers are late or busy elsewhere runs on the caller alone.
//!
//! The protocol: one 64-bit word holds the launch's generation, its piece count and the next
//! piece to claim; a thread owns a piece once its compare-and-swap of that word succeeds, and
//! the caller publishes the next launch only after every piece of this one has finished, so the
//! launch's description a piece's owner reads cannot change under it.

use crate::abi::KernelFn;
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Spins before a waiting thread starts yielding its core between checks.
const SPINS_BEFORE_YIELD: u32 = 256;

/// One launch: a kernel over `groups` workgroups, cut into `pieces` contiguous ranges.
#[derive(Clone, Copy)]
struct Launch {
    function: KernelFn,
    args: *const *mut u8,
    groups: u64,
    pieces: u64,
}

/// The state shared by a run's caller and its helpers.
pub(crate) struct Team {
    /// Generation (high 32 bits), piece count (16 bits), next piece to claim (low 16 bits).
    claims: AtomicU64,
    /// Pieces of the current launch that have finished.
    finished: AtomicU32,
    /// The first nonzero status of the current launch's pieces.
    status: AtomicU32,
    /// Set when the run ends: helpers return.
    over: AtomicBool,
    launch: UnsafeCell<Launch>,
}

// SAFETY: `launch` is written only by the caller, between launches (when no piece is owned,
// see the module doc), and read only by a piece's owner; the kernels' buffers are shared as
// the pool shared them before (disjoint writes within a launch, the scheduler's contract).
unsafe impl Sync for Team {}
unsafe impl Send for Team {}

/// Most pieces one launch may have (the width of the word's piece fields).
const MAX_PIECES: u64 = u16::MAX as u64;

fn pack(generation: u32, pieces: u64, next: u64) -> u64 {
    (u64::from(generation) << 32) | (pieces << 16) | next
}

fn unpack(word: u64) -> (u32, u64, u64) {
    ((word >> 32) as u32, (word >> 16) & 0xffff, word & 0xffff)
}

extern "C" fn no_kernel(_: *const *mut u8, _: u64, _: u64) -> u32 {
    0
}

impl Team {
    pub(crate) fn new() -> Team {
        Team {
            claims: AtomicU64::new(pack(0, 0, 0)),
            finished: AtomicU32::new(0),
            status: AtomicU32::new(0),
            over: AtomicBool::new(false),
            launch: UnsafeCell::new(Launch { function: no_kernel, args: std::ptr::null(), groups: 0, pieces: 0 }),
        }
    }

    /// Runs `function` over `groups` workgroups in `pieces` ranges (at most [`MAX_PIECES`]),
    /// on the calling thread and whichever helpers are waiting, and returns the first nonzero
    /// status. Only the run's caller launches, one launch at a time.
    ///
    /// # Safety
    /// `args` must cover every buffer the kernel accesses, and its pieces must write disjoint
    /// elements, as for calling `function` directly.
    pub(crate) unsafe fn run(&self, function: KernelFn, args: &[*mut u8], groups: u64, pieces: u64) -> u32 {
        let pieces = pieces.clamp(1, MAX_PIECES);
        let (generation, ..) = unpack(self.claims.load(Ordering::Relaxed));
        // SAFETY: every piece of the previous launch has finished, so no thread reads `launch`.
        unsafe { *self.launch.get() = Launch { function, args: args.as_ptr(), groups, pieces } };
        self.finished.store(0, Ordering::Relaxed);
        self.status.store(0, Ordering::Relaxed);
        // Release: a helper that claims a piece sees the launch written above.
        self.claims.store(pack(generation.wrapping_add(1), pieces, 0), Ordering::Release);
        while self.claim_and_run() {}
        let mut spins = 0;
        while u64::from(self.finished.load(Ordering::Acquire)) < pieces {
            wait(&mut spins);
        }
        self.status.load(Ordering::Relaxed)
    }

    /// Claims one piece of the current launch and runs it; false when none is left.
    fn claim_and_run(&self) -> bool {
        let mut word = self.claims.load(Ordering::Acquire);
        loop {
            let (generation, pieces, next) = unpack(word);
            if next >= pieces {
                return false;
            }
            match self.claims.compare_exchange_weak(
                word,
                pack(generation, pieces, next + 1),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => word = now,
            }
        }
        let (_, pieces, piece) = unpack(word);
        // SAFETY: this thread owns a piece, so the caller waits before writing `launch` again.
        let l = unsafe { *self.launch.get() };
        debug_assert_eq!(l.pieces, pieces);
        let (lo, hi) = (l.groups * piece / pieces, l.groups * (piece + 1) / pieces);
        // SAFETY: `run`'s contract; the ranges of distinct pieces are disjoint.
        let status = unsafe { (l.function)(l.args, lo, hi) };
        if status != 0 {
            let _ = self.status.compare_exchange(0, status, Ordering::Relaxed, Ordering::Relaxed);
        }
        // Release: the caller, seeing every piece finished, sees what this one wrote.
        self.finished.fetch_add(1, Ordering::Release);
        true
    }

    /// A helper's part: runs pieces of launches until the run is over.
    pub(crate) fn help(&self) {
        let mut spins = 0;
        while !self.over.load(Ordering::Acquire) {
            if self.claim_and_run() {
                spins = 0;
            } else {
                wait(&mut spins);
            }
        }
    }

    /// Ends the run: waiting helpers return (none owns a piece: the last launch finished).
    pub(crate) fn end(&self) {
        self.over.store(true, Ordering::Release);
    }
}

/// Ends a team's run when dropped, so its helpers return however the run leaves (an error, or
/// a panic unwinding through it).
pub(crate) struct EndsRun<'a>(pub(crate) &'a Team);

impl Drop for EndsRun<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// One step of waiting: a spin hint at first, then giving the core away.
fn wait(spins: &mut u32) {
    if *spins < SPINS_BEFORE_YIELD {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Adds one to each `u32` of the workgroups' range; fails (status 7) on workgroup 13 of a
    /// buffer marked by a second argument.
    extern "C" fn add_one(args: *const *mut u8, lo: u64, hi: u64) -> u32 {
        // SAFETY: the tests pass one `u32` buffer of at least `hi` elements, and a flag.
        unsafe {
            let data = *args as *mut u32;
            let fail = **args.add(1) != 0;
            for i in lo..hi {
                if fail && i == 13 {
                    return 7;
                }
                *data.add(i as usize) += 1;
            }
        }
        0
    }

    #[test]
    fn every_workgroup_runs_once_per_launch_with_helpers_joining_late_or_never() {
        let team = Arc::new(Team::new());
        let helpers: Vec<_> = (0..3)
            .map(|_| {
                let t = team.clone();
                std::thread::spawn(move || t.help())
            })
            .collect();
        let mut data = vec![0u32; 1000];
        let mut flag = 0u8;
        let args = [data.as_mut_ptr() as *mut u8, &mut flag as *mut u8];
        for launch in 0..500u64 {
            // SAFETY: `data` has 1000 elements and the pieces are disjoint ranges.
            let status = unsafe { team.run(add_one, &args, 1 + launch % 1000, 1 + launch % 9) };
            assert_eq!(status, 0);
        }
        team.end();
        for h in helpers {
            h.join().unwrap();
        }
        for (i, &d) in data.iter().enumerate() {
            // Element i runs in every launch with more than i groups.
            let want = (0..500u64).filter(|l| 1 + l % 1000 > i as u64).count() as u32;
            assert_eq!(d, want, "element {i}");
        }
    }

    #[test]
    fn a_failing_piece_reports_its_status_and_a_lone_caller_runs_everything() {
        let team = Team::new();
        let mut data = vec![0u32; 40];
        let mut flag = 1u8;
        let args = [data.as_mut_ptr() as *mut u8, &mut flag as *mut u8];
        // SAFETY: as above.
        assert_eq!(unsafe { team.run(add_one, &args, 40, 4) }, 7);
        flag = 0;
        let args = [data.as_mut_ptr() as *mut u8, &mut flag as *mut u8];
        // SAFETY: as above.
        assert_eq!(unsafe { team.run(add_one, &args, 40, 4) }, 0);
        assert!(data[..10].iter().all(|&d| d == 2), "{data:?}");
        assert_eq!(data[13], 1, "the failing workgroup stopped its piece");
        team.end();
    }
}
